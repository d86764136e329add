/**
 * Peers outside the package, measured in the same run with `--peers` when installed:
 * onnxruntime-node running the log-softmax + gather graph that computes `logprobs`
 * (LogSoftmax(axis = −1) over [N,V] f32 logits, then GatherElements(axis = 1) at the labels).
 * onnxruntime-node is not a dependency: it is imported dynamically, and the peer is skipped with a
 * note when it is missing. The ONNX model is encoded here (a few protobuf fields), so no other
 * package is needed.
 */

// ----- minimal protobuf writer (the fields of onnx.proto this graph needs) ------------------

function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n; // int64 two's complement (10 bytes)
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}
const key = (field: number, wire: number) => varint((field << 3) | wire);
const int = (field: number, v: number) => [...key(field, 0), ...varint(v)];
const bytes = (field: number, b: number[] | Uint8Array) => [...key(field, 2), ...varint(b.length), ...b];
const str = (field: number, s: string) => bytes(field, [...new TextEncoder().encode(s)]);
const msg = (field: number, parts: number[][]) => bytes(field, parts.flat());

const FLOAT = 1, INT64 = 7, ATTR_INT = 2;

/** ValueInfoProto {name, type: TypeProto{tensor_type{elem_type, shape{dim*}}}}; dims as names (dim_param). */
function valueInfo(field: number, name: string, elemType: number, dimNames: string[]) {
  const dims = dimNames.map((d) => msg(1, [/^\d+$/.test(d) ? int(1, Number(d)) : str(2, d)]));
  return msg(field, [str(1, name), msg(2, [msg(1, [int(1, elemType), msg(2, dims)])])]);
}
/** NodeProto {input*, output*, name, op_type, attribute*{name, i, type = INT}}. */
function node(inputs: string[], outputs: string[], name: string, opType: string, intAttrs: Record<string, number>) {
  return msg(1, [
    ...inputs.map((s) => str(1, s)),
    ...outputs.map((s) => str(2, s)),
    str(3, name),
    str(4, opType),
    ...Object.entries(intAttrs).map(([k, v]) => msg(5, [str(1, k), int(3, v), int(20, ATTR_INT)])),
  ]);
}

/**
 * ModelProto bytes of logp[N,1] = GatherElements(LogSoftmax(logits[N,V], axis=-1), labels[N,1], axis=1)
 * (ONNX IR version 8, default opset 17).
 */
export function logSoftmaxGatherModel(): Uint8Array {
  const graph = msg(7, [
    node(['logits'], ['logsm'], 'logsoftmax', 'LogSoftmax', { axis: -1 }),
    node(['logsm', 'labels'], ['logp'], 'gather', 'GatherElements', { axis: 1 }),
    str(2, 'logprobs'),
    valueInfo(11, 'logits', FLOAT, ['N', 'V']),
    valueInfo(11, 'labels', INT64, ['N', '1']),
    valueInfo(12, 'logp', FLOAT, ['N', '1']),
  ]);
  return Uint8Array.from([...int(1, 8), ...str(2, 'rlhf-kernels-bench'), ...graph, ...msg(8, [str(1, ''), int(2, 17)])]);
}

// ----- onnxruntime-node -------------------------------------------------------------------

/** The parts of onnxruntime-node's API the peer uses. */
export interface OrtLike {
  InferenceSession: { create(model: Uint8Array, options?: Record<string, unknown>): Promise<{ run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown }>> }> };
  Tensor: new (type: string, data: unknown, dims: number[]) => unknown;
}

let ortModule: Promise<OrtLike | null> | null = null;
/** Tests: replaces the dynamic import (a mock module, or null for "not installed"). */
export function setOrtLoader(load: (() => Promise<OrtLike | null>) | null) {
  ortModule = load ? load() : null;
}
export function loadOrt(): Promise<OrtLike | null> {
  if (!ortModule) {
    const name = 'onnxruntime-node'; // a variable: bundlers and tsc must not resolve it
    ortModule = import(name).then(
      (m: { default?: OrtLike } & OrtLike) => (m.InferenceSession ? m : (m.default ?? null)),
      () => null,
    );
  }
  return ortModule;
}

/**
 * The onnxruntime peer of `logprobs` (f32): returns the async call (session.run on the same logits,
 * zero-copy) or null when onnxruntime-node is not installed.
 */
export async function peerLogSoftmaxGather(logits: Float32Array, labels: Int32Array, N: number, V: number): Promise<(() => Promise<unknown>) | null> {
  const ort = await loadOrt();
  if (!ort) return null;
  const session = await ort.InferenceSession.create(logSoftmaxGatherModel(), { graphOptimizationLevel: 'all' });
  const lab = new BigInt64Array(N);
  for (let i = 0; i < N; i++) lab[i] = BigInt(labels[i]);
  const feeds = { logits: new ort.Tensor('float32', logits, [N, V]), labels: new ort.Tensor('int64', lab, [N, 1]) };
  return () => session.run(feeds);
}
