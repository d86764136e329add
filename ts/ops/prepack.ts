/**
 * Prepacking (SPEC §6): "Prepacking: A Simple Method for Fast Prefilling and Increased Throughput
 * in Large Language Models" (Zhao et al., 2024), §3.
 *
 * - `packSequences`: bin-packing of prompt lengths into packs of `capacity` tokens, first-fit
 *   decreasing (the paper's choice) or best-fit decreasing; O(n log n), deterministic.
 * - `prepack`: the packed batch: input ids, restarting position ids, segment ids, the restore
 *   indices of each prompt's last token, FlashAttention-varlen `cuSeqlens`, and `holdLast`.
 * - `attentionMask`: the block-diagonal causal mask `[P,L,L]` (for frameworks that need it dense).
 * - `unpack`: packed `[P,L,D]` rows back to the left-padded `[n, maxLen, D]` batch.
 * - `packedAttention`: causal attention restricted to segments, GQA, never materialising `[L,L]`.
 */
import { defineOp, opNative, type Gen } from '../async.js';
import type { NativeCore } from '../native.js';
import * as ref from '../reference/prepack.js';
import { readFloat, type Tensor, type AnyTensor, type TensorLike } from '../tensor.js';
import { f32Data, INT, LOGITS, OpArgs, type CommonOptions } from '../validate.js';

type I32 = Int32Array;
interface PrepackNative extends NativeCore {
  packSequences(n: number, lengths: I32, capacity: number, algorithm: number, packOf: I32, offsetOf: I32, packLengths: I32): number;
  prepackFill(
    n: number, P: number, L: number, total: number, tokens: I32, srcLengths: I32, lengths: I32, packOf: I32, offsetOf: I32,
    inputIds: I32, positionIds: I32, segmentIds: I32, restore: I32, cuSeqlens: I32, order: I32, held: I32, padId: number, holdLast: boolean,
  ): void;
  attentionMask(P: number, L: number, seg: I32, mask: Uint8Array | Float32Array, format: number, cuda: boolean): void;
  unpack(n: number, P: number, L: number, D: number, maxLen: number, packed: Float32Array, packOf: I32, offsetOf: I32, lengths: I32, rows: Float32Array, cuda: boolean): void;
  packedAttention(
    P: number, L: number, H: number, Hkv: number, Dh: number, dtype: number, q: Float32Array | Uint16Array, k: Float32Array | Uint16Array,
    v: Float32Array | Uint16Array, seg: I32, out: Float32Array, scale: number, cuda: boolean,
  ): { tilesComputed: number; tilesSkipped: number };
}
const nat = () => opNative<PrepackNative>();

type Out<K extends string> = { out?: Partial<Record<K, AnyTensor>> };

export type PackAlgorithm = ref.PackAlgorithm;
export const PACK_ALGORITHMS: readonly PackAlgorithm[] = ['ffd', 'bfd'];
const INT32_MAX = 2 ** 31 - 1;

function capacityOption(a: OpArgs): number {
  return a.num('capacity', { integer: true, min: 1, max: INT32_MAX });
}

function checkLengths(a: OpArgs, lengths: ArrayLike<number>, capacity: number, what = 'lengths', shift = 0) {
  for (let i = 0; i < lengths.length; i++) {
    const l = lengths[i];
    if (l < 0) a.rangeError(`input '${what}'[${i}] = ${l} is negative`);
    if (l - shift > capacity) a.rangeError(`input '${what}'[${i}] = ${l} exceeds capacity ${capacity}${shift ? ' (after holdLast)' : ''}`);
  }
}

/**
 * Runs the packing (js or native; the cuda backend uses the CPU algorithm: pure bookkeeping),
 * writing packOf/offsetOf straight into the op's output tensors (host tensors for device inputs,
 * uploaded by OpArgs.deliver).
 */
function* pack(a: OpArgs, lengths: Int32Array, capacity: number, algorithm: PackAlgorithm, backend: string): Gen<{ packOf: Tensor<'i32'>; offsetOf: Tensor<'i32'>; loads: Int32Array }> {
  const n = lengths.length;
  const packOf = a.hostOut('packOf', 'i32', [n]), offsetOf = a.hostOut('offsetOf', 'i32', [n]);
  let loads: Int32Array;
  if (backend === 'js') {
    const r = ref.packSequences(lengths, capacity, algorithm);
    packOf.data.set(r.packOf);
    offsetOf.data.set(r.offsetOf);
    loads = r.packLengths;
  } else {
    const buf = new Int32Array(n);
    const P = (yield nat().packSequences(n, lengths, capacity, algorithm === 'bfd' ? 1 : 0, packOf.data, offsetOf.data, buf)) as number;
    loads = buf.subarray(0, P);
  }
  return { packOf, offsetOf, loads };
}

export interface PackSequencesInputs { lengths: TensorLike }
export interface PackSequencesOptions extends CommonOptions, Out<'packOf' | 'offsetOf' | 'packLengths'> {
  /** tokens per pack (an integer in [1, 2^31 − 1]) */
  capacity: number;
  /** 'ffd' (default) first-fit decreasing, 'bfd' best-fit decreasing */
  algorithm?: PackAlgorithm;
}
export interface PackSequencesResult { packOf: Tensor<'i32'>; offsetOf: Tensor<'i32'>; packLengths: Tensor<'i32'> }

/**
 * Prepacking §3: packs sequence lengths into bins of `capacity` tokens. Sequences are placed longest
 * first (ties by input order); FFD puts each into the first pack with room, BFD into the fullest pack
 * with room (ties: lowest pack index); a sequence is appended after the pack's earlier sequences.
 * Zero-length sequences occupy nothing (packOf 0, offsetOf 0). O(n log n).
 */
export const packSequences = defineOp('packSequences', function* packSequences(inputs: PackSequencesInputs, options: PackSequencesOptions): Gen<PackSequencesResult> {
  const a = new OpArgs('packSequences', inputs, options);
  const lengths = a.tensor('lengths', INT, { rank: 1 });
  const capacity = capacityOption(a);
  const algorithm = a.oneOf('algorithm', PACK_ALGORITHMS, 'ffd');
  const backend = a.backend();
  const lens = a.values(lengths) as Int32Array; // device inputs: read back (host bookkeeping)
  checkLengths(a, lens, capacity);
  const r = yield* pack(a, lens, capacity, algorithm, backend);
  const packLengths = a.hostOut('packLengths', 'i32', [r.loads.length]);
  packLengths.data.set(r.loads);
  return a.deliver({ packOf: r.packOf, offsetOf: r.offsetOf, packLengths });
});

export interface PrepackInputs { tokens: TensorLike; lengths: TensorLike }
export interface PrepackOptions extends CommonOptions,
  Out<'inputIds' | 'positionIds' | 'segmentIds' | 'packOf' | 'offsetOf' | 'restore' | 'cuSeqlens' | 'order' | 'held'> {
  capacity: number;
  algorithm?: PackAlgorithm;
  /** token id of padding positions (an int32, default 0) */
  padId?: number;
  /** pack each sequence without its last token and return those tokens in `held` (default false) */
  holdLast?: boolean;
}
export interface PrepackResult {
  inputIds: Tensor<'i32'>; positionIds: Tensor<'i32'>; segmentIds: Tensor<'i32'>;
  packOf: Tensor<'i32'>; offsetOf: Tensor<'i32'>; restore: Tensor<'i32'>; cuSeqlens: Tensor<'i32'>; order: Tensor<'i32'>;
  held?: Tensor<'i32'>;
}

/**
 * Prepacking §3: packs the prompts `tokens` (concatenated in input order, `lengths` each) into
 * `[P, capacity]` rows. Positions restart at 0 per prompt; segment ids are 1..m per pack in
 * placement order, 0 on padding; `restore_i` is the flat index of prompt i's last packed token
 * (−1 if empty); `order`/`cuSeqlens` give the prompts in packed order with FlashAttention-varlen
 * boundaries. `holdLast` holds back each prompt's last token (returned in `held`) for the first
 * decode step.
 */
export const prepack = defineOp('prepack', function* prepack(inputs: PrepackInputs, options: PrepackOptions): Gen<PrepackResult> {
  const a = new OpArgs('prepack', inputs, options);
  const tokens = a.tensor('tokens', INT, { rank: 1 });
  const lengths = a.tensor('lengths', INT, { rank: 1 });
  const capacity = capacityOption(a);
  const algorithm = a.oneOf('algorithm', PACK_ALGORITHMS, 'ffd');
  const padId = a.num('padId', { default: 0, integer: true, min: -(2 ** 31), max: INT32_MAX });
  const holdLast = a.bool('holdLast', false);
  const backend = a.backend();
  const src = a.values(lengths) as Int32Array; // device inputs: read back (host bookkeeping)
  const toks = a.values(tokens) as Int32Array;
  const n = src.length;
  checkLengths(a, src, capacity, 'lengths', holdLast ? 1 : 0);
  let total = 0;
  for (let i = 0; i < n; i++) total += src[i];
  if (total !== toks.length)
    a.rangeError(`input 'tokens' has ${toks.length} elements but the lengths sum to ${total}`);
  if (total > INT32_MAX) a.rangeError(`the lengths sum to ${total}, more than cuSeqlens (int32) can hold`);
  const packed = holdLast ? Int32Array.from(src, (l) => Math.max(0, l - 1)) : src;
  const L = capacity;
  const r = yield* pack(a, packed, capacity, algorithm, backend);
  const P = r.loads.length;
  if (P * L > INT32_MAX) a.rangeError(`${P} packs of ${L} tokens exceed the int32 range of restore indices`);
  const res: PrepackResult = {
    inputIds: a.hostOut('inputIds', 'i32', [P, L]),
    positionIds: a.hostOut('positionIds', 'i32', [P, L]),
    segmentIds: a.hostOut('segmentIds', 'i32', [P, L]),
    packOf: r.packOf,
    offsetOf: r.offsetOf,
    restore: a.hostOut('restore', 'i32', [n]),
    cuSeqlens: a.hostOut('cuSeqlens', 'i32', [n + 1]),
    order: a.hostOut('order', 'i32', [n]),
  };
  const held = holdLast ? a.hostOut('held', 'i32', [n]) : undefined;
  if (backend === 'js') {
    ref.prepackFill(toks, src, packed, r.packOf.data, r.offsetOf.data, P, L, padId, {
      inputIds: res.inputIds.data, positionIds: res.positionIds.data, segmentIds: res.segmentIds.data, restore: res.restore.data,
      cuSeqlens: res.cuSeqlens.data, order: res.order.data, held: held ? held.data : null,
    });
  } else {
    yield nat().prepackFill(n, P, L, total, toks, src, packed, r.packOf.data, r.offsetOf.data, res.inputIds.data, res.positionIds.data,
      res.segmentIds.data, res.restore.data, res.cuSeqlens.data, res.order.data, held ? held.data : new Int32Array(n), padId, holdLast);
  }
  if (held) res.held = held;
  return a.deliver(res);
});

export type MaskFormat = 'bool' | 'additive';
export interface AttentionMaskInputs { segmentIds: TensorLike }
export interface AttentionMaskOptions extends CommonOptions, Out<'mask'> {
  /** 'bool' (default): u8 1/0; 'additive': f32 0/−∞ */
  format?: MaskFormat;
}

/**
 * The block-diagonal causal mask of Prepacking §3: `mask[p,i,j] = (seg_i = seg_j ≠ 0 ∧ j ≤ i)`.
 * Output-bound; `packedAttention` consumes the compact `segmentIds` instead.
 */
export const attentionMask = defineOp('attentionMask', function* attentionMask(inputs: AttentionMaskInputs, options?: AttentionMaskOptions): Gen<{ mask: Tensor<'u8'> | Tensor<'f32'> }> {
  const a = new OpArgs('attentionMask', inputs, options);
  const seg = a.tensor('segmentIds', INT, { rank: 2 });
  const format = a.oneOf('format', ['bool', 'additive'] as const, 'bool');
  const backend = a.backend();
  const [P, L] = seg.shape as [number, number];
  const mask = format === 'bool' ? a.out('mask', 'u8', [P, L, L]) : a.out('mask', 'f32', [P, L, L]);
  if (backend === 'js') ref.attentionMask(seg.data, P, L, mask.data, format === 'additive');
  else yield nat().attentionMask(P, L, seg.data as I32, mask.data, format === 'additive' ? 1 : 0, backend === 'cuda');
  return { mask };
});

export interface UnpackInputs { packed: TensorLike; packOf: TensorLike; offsetOf: TensorLike; lengths: TensorLike }
export interface UnpackOptions extends CommonOptions, Out<'rows'> {}

/**
 * Restores per-prompt rows (a KV cache or hidden states) from the packed layout to the left-padded
 * batch: `rows[i, maxLen − len_i + t] = packed[packOf_i, offsetOf_i + t]`, zeros before.
 */
export const unpack = defineOp('unpack', function* unpack(inputs: UnpackInputs, options?: UnpackOptions): Gen<{ rows: Tensor<'f32'> }> {
  const a = new OpArgs('unpack', inputs, options);
  const packed = a.float('packed', { rank: 3 });
  const [P, L, D] = packed.shape as [number, number, number];
  const lengths = a.tensor('lengths', INT, { rank: 1 });
  const n = lengths.shape[0];
  const packOf = a.tensor('packOf', INT, { shape: [n] });
  const offsetOf = a.tensor('offsetOf', INT, { shape: [n] });
  const backend = a.backend();
  let maxLen = 0;
  // device inputs: the layout (3n int32) is read back for these checks; packed stays on the device
  const lenV = a.values(lengths), packV = a.values(packOf), offV = a.values(offsetOf);
  for (let i = 0; i < n; i++) {
    const len = lenV[i], p = packV[i], o = offV[i];
    if (len < 0) a.rangeError(`input 'lengths'[${i}] = ${len} is negative`);
    if (len === 0) continue;
    if (p < 0 || p >= P) a.rangeError(`input 'packOf'[${i}] = ${p} is outside [0, ${P})`);
    if (o < 0 || o + len > L) a.rangeError(`sequence ${i} (offsetOf ${o}, length ${len}) does not fit in ${L} positions`);
    if (len > maxLen) maxLen = len;
  }
  const rows = a.out('rows', 'f32', [n, maxLen, D]);
  if (backend === 'js') ref.unpack(packed.data, packOf.data, offsetOf.data, lengths.data, L, D, maxLen, rows.data);
  else
    yield nat().unpack(n, P, L, D, maxLen, f32Data(packed), packOf.data as I32, offsetOf.data as I32, lengths.data as I32, rows.data, backend === 'cuda');
  return { rows };
});

export interface PackedAttentionInputs { q: TensorLike; k: TensorLike; v: TensorLike; segmentIds: TensorLike }
export interface PackedAttentionOptions extends CommonOptions, Out<'out'> {
  /** softmax scale (finite; default 1/√Dh) */
  scale?: number;
}

const DT_CODE = { f32: 0, f64: 0, f16: 1, bf16: 2 } as const;

/**
 * Prepacking §3 attention over packed prompts: `out[p,i,h] = Σ_j softmax_j(scale·q[p,i,h]·k[p,j,g]) v[p,j,g]`
 * over keys j ≤ i of the same segment, `g = ⌊h/(H/Hkv)⌋` (GQA as in FlashAttention); padding rows
 * (segment 0) are zeros. q, k, v in f32/f64/f16/bf16 (one dtype); f32 out. Tiled with an online
 * softmax: the `[L,L]` scores are never materialised and masked-out tiles are never touched.
 */
export const packedAttention = defineOp('packedAttention', function* packedAttention(inputs: PackedAttentionInputs, options?: PackedAttentionOptions): Gen<{ out: Tensor<'f32'> }> {
  return (yield* attention(inputs, options)).res;
});

/** packedAttention plus the native kernel's tile counts (for tests and the bench). */
export const packedAttentionImpl = defineOp('packedAttentionImpl', attention);

function* attention(inputs: PackedAttentionInputs, options?: PackedAttentionOptions): Gen<{ res: { out: Tensor<'f32'> }; tiles: { tilesComputed: number; tilesSkipped: number } }> {
  const a = new OpArgs('packedAttention', inputs, options);
  const q = a.tensor('q', LOGITS, { rank: 4 });
  const [P, L, H, Dh] = q.shape as [number, number, number, number];
  const k = a.tensor('k', LOGITS, { rank: 4 });
  if (k.dtype !== q.dtype) a.typeError(`input 'k' must have the dtype of q ('${q.dtype}'), got '${k.dtype}'`);
  const Hkv = k.shape[2];
  a.expectShape(k, 'k', [P, L, Hkv, Dh]);
  const v = a.tensor('v', LOGITS, { shape: k.shape });
  if (v.dtype !== q.dtype) a.typeError(`input 'v' must have the dtype of q ('${q.dtype}'), got '${v.dtype}'`);
  const seg = a.tensor('segmentIds', INT, { shape: [P, L] });
  if (Hkv < 1 || H % Hkv !== 0) a.rangeError(`the kv heads of k (${Hkv}) must divide the query heads of q (${H})`);
  const scale = a.num('scale', { default: Dh > 0 ? 1 / Math.sqrt(Dh) : 1 });
  const backend = a.backend();
  const out = a.out('out', 'f32', [P, L, H, Dh]);
  let tiles = { tilesComputed: NaN, tilesSkipped: NaN };
  if (backend === 'js') ref.packedAttention(readFloat(q), readFloat(k), readFloat(v), seg.data, P, L, H, Hkv, Dh, scale, out.data);
  else {
    const data = (t: Tensor) => (t.dtype === 'f16' || t.dtype === 'bf16' ? (t.data as Uint16Array) : f32Data(t));
    tiles = (yield nat().packedAttention(P, L, H, Hkv, Dh, DT_CODE[q.dtype as 'f32'], data(q), data(k), data(v), seg.data as I32, out.data,
      scale, backend === 'cuda')) as typeof tiles;
  }
  return { res: { out }, tiles };
}
