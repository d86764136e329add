/**
 * Checks a packing conformance case (cases with `invariants`; conformance README, "Packing"):
 * the SPEC §6 invariants of any valid layout, then, when the layout is the reference one, every
 * expected output exactly (entries listed in `open` excepted).
 */
import { expect } from 'vitest';

type Layout = { packOf: ArrayLike<number>; offsetOf: ArrayLike<number> };

function fail(c: any, msg: string): never {
  expect.fail(`${c.op} (${c.note}): ${msg}`);
}

function i32Tensor(c: any, res: any, name: string, shape: number[]): ArrayLike<number> {
  const t = res[name];
  if (!t || !t.shape) fail(c, `missing output '${name}'`);
  if (t.dtype !== 'i32') fail(c, `output '${name}' has dtype ${t.dtype}, expected i32`);
  if (JSON.stringify(Array.from(t.shape)) !== JSON.stringify(shape)) fail(c, `output '${name}' has shape [${t.shape}], expected [${shape}]`);
  return t.data;
}

const sortedKey = (xs: number[]) => JSON.stringify([...xs].sort((a, b) => a - b));

/** The invariants shared by packSequences and prepack; returns the sequences of each pack by offset. */
function checkLayout(c: any, lay: Layout, lengths: number[], capacity: number, P: number): number[][] {
  const inv = c.invariants;
  const n = lengths.length;
  if (inv.packCount !== undefined && P !== inv.packCount) fail(c, `${P} packs, expected ${inv.packCount}`);
  const packs: number[][] = Array.from({ length: P }, () => []);
  for (let i = 0; i < n; i++) {
    if (lengths[i] === 0) continue;
    const p = lay.packOf[i], o = lay.offsetOf[i];
    if (!Number.isInteger(p) || p < 0 || p >= P) fail(c, `packOf[${i}] = ${p} is not a pack in [0, ${P})`);
    if (!Number.isInteger(o) || o < 0 || o + lengths[i] > capacity) fail(c, `sequence ${i} (offset ${o}, length ${lengths[i]}) exceeds capacity ${capacity}`);
    packs[p].push(i);
  }
  for (const [p, seqs] of packs.entries()) {
    seqs.sort((x, y) => lay.offsetOf[x] - lay.offsetOf[y]);
    let end = 0, load = 0;
    for (const i of seqs) {
      if (lay.offsetOf[i] < end) fail(c, `sequence ${i} overlaps the previous one in pack ${p}`);
      end = lay.offsetOf[i] + lengths[i];
      load += lengths[i];
    }
    if (load > capacity) fail(c, `pack ${p} holds ${load} > capacity ${capacity} tokens`);
  }
  const loads = packs.map((s) => s.reduce((acc, i) => acc + lengths[i], 0));
  if (inv.ffdPackLengthMultisets) {
    const got = packs.map((s) => sortedKey(s.map((i) => lengths[i]))).sort();
    const want = (inv.ffdPackLengthMultisets as number[][]).map(sortedKey).sort();
    if (JSON.stringify(got) !== JSON.stringify(want)) fail(c, `per-pack length multisets ${got} != ${want}`);
  }
  if (inv.bfdPackLoads) {
    if (sortedKey(loads) !== sortedKey(inv.bfdPackLoads)) fail(c, `pack loads ${loads} != ${inv.bfdPackLoads} (as multisets)`);
  }
  return packs;
}

/** Whether the layout equals the reference one on every entry that `open` does not exempt. */
function isReferenceLayout(c: any, lay: Layout): boolean {
  if (!c.expected?.packOf || !c.expected?.offsetOf) return false;
  const open = c.open ?? {};
  const skip = (name: string, i: number) => (open[name] ?? []).includes(i);
  const ep = c.expected.packOf.data, eo = c.expected.offsetOf.data;
  for (let i = 0; i < ep.length; i++) {
    if (!skip('packOf', i) && lay.packOf[i] !== ep[i]) return false;
    if (!skip('offsetOf', i) && lay.offsetOf[i] !== eo[i]) return false;
  }
  return true;
}

function exactCompare(c: any, res: any) {
  const open = c.open ?? {};
  const emptyInOrder: number[] = open.emptyInOrder ?? [];
  for (const [name, exp] of Object.entries<any>(c.expected)) {
    const got = res[name];
    if (!got) fail(c, `missing output '${name}'`);
    let g = Array.from(got.data as ArrayLike<number>), e = Array.from(exp.data as number[]);
    if (name === 'order') {
      g = g.filter((i) => !emptyInOrder.includes(i));
      e = e.filter((i) => !emptyInOrder.includes(i));
    } else if (name === 'cuSeqlens') {
      const dedup = (xs: number[]) => xs.filter((x, k) => k === 0 || x !== xs[k - 1]);
      g = dedup(g);
      e = dedup(e);
    }
    for (let i = 0; i < e.length; i++) {
      if ((open[name] ?? []).includes(i)) continue;
      if (g[i] !== e[i]) fail(c, `reference layout, but ${name}[${i}] = ${g[i]}, expected ${e[i]}`);
    }
    if (g.length !== e.length) fail(c, `${name} has ${g.length} entries, expected ${e.length}`);
  }
}

export function checkPackingCase(c: any, res: any, _doc: any): void {
  if (!c.invariants) fail(c, 'not a packing case');
  const srcLengths: number[] = Array.from(c.inputs.lengths.data);
  const n = srcLengths.length;
  const capacity: number = c.options.capacity;
  const packOf = i32Tensor(c, res, 'packOf', [n]);
  const offsetOf = i32Tensor(c, res, 'offsetOf', [n]);
  const lay = { packOf, offsetOf };

  if (c.op === 'packSequences') {
    const P = res.packLengths?.shape?.[0];
    const packLengths = i32Tensor(c, res, 'packLengths', [P]);
    const packs = checkLayout(c, lay, srcLengths, capacity, P);
    for (let p = 0; p < P; p++) {
      const load = packs[p].reduce((acc, i) => acc + srcLengths[i], 0);
      if (packLengths[p] !== load) fail(c, `packLengths[${p}] = ${packLengths[p]}, but its sequences hold ${load} tokens`);
    }
  } else if (c.op === 'prepack') {
    const holdLast = c.options.holdLast === true;
    const padId = c.options.padId ?? 0;
    const lengths = srcLengths.map((l) => (holdLast ? Math.max(0, l - 1) : l));
    if (c.invariants.packedLengths && JSON.stringify(lengths) !== JSON.stringify(c.invariants.packedLengths))
      fail(c, `test bug: packed lengths ${lengths} != invariants.packedLengths`);
    const ids = res.inputIds;
    if (!ids?.shape || ids.shape.length !== 2) fail(c, `inputIds must be [P, L]`);
    const P = ids.shape[0], L = capacity;
    const inputIds = i32Tensor(c, res, 'inputIds', [P, L]);
    const positionIds = i32Tensor(c, res, 'positionIds', [P, L]);
    const segmentIds = i32Tensor(c, res, 'segmentIds', [P, L]);
    const restore = i32Tensor(c, res, 'restore', [n]);
    const cuSeqlens = i32Tensor(c, res, 'cuSeqlens', [n + 1]);
    const order = i32Tensor(c, res, 'order', [n]);
    const packs = checkLayout(c, lay, lengths, capacity, P);
    // Token layout as the SPEC defines it.
    const tokens: number[] = Array.from(c.inputs.tokens.data);
    const start = [0];
    for (const l of srcLengths) start.push(start[start.length - 1] + l);
    const wantIds = new Array(P * L).fill(padId), wantPos = new Array(P * L).fill(0), wantSeg = new Array(P * L).fill(0);
    for (const [p, seqs] of packs.entries())
      seqs.forEach((i, rank) => {
        for (let t = 0; t < lengths[i]; t++) {
          const at = p * L + offsetOf[i] + t;
          wantIds[at] = tokens[start[i] + t];
          wantPos[at] = t;
          wantSeg[at] = rank + 1;
        }
      });
    for (let x = 0; x < P * L; x++) {
      if (inputIds[x] !== wantIds[x]) fail(c, `inputIds[${x}] = ${inputIds[x]}, the layout says ${wantIds[x]}`);
      if (positionIds[x] !== wantPos[x]) fail(c, `positionIds[${x}] = ${positionIds[x]}, the layout says ${wantPos[x]}`);
      if (segmentIds[x] !== wantSeg[x]) fail(c, `segmentIds[${x}] = ${segmentIds[x]}, the layout says ${wantSeg[x]}`);
    }
    for (let i = 0; i < n; i++) {
      const want = lengths[i] > 0 ? packOf[i] * L + offsetOf[i] + lengths[i] - 1 : -1;
      if (restore[i] !== want) fail(c, `restore[${i}] = ${restore[i]}, the layout says ${want}`);
    }
    // order: a permutation; the non-empty sequences pack by pack, by offset; cuSeqlens its cumulative lengths.
    if (sortedKey(Array.from(order)) !== sortedKey([...Array(n).keys()])) fail(c, `order is not a permutation of 0..${n - 1}`);
    const nonEmptyOrder = Array.from(order).filter((i) => lengths[i] > 0);
    const wantOrder = packs.flat();
    if (JSON.stringify(nonEmptyOrder) !== JSON.stringify(wantOrder)) fail(c, `order ${Array.from(order)} is not the packed order ${wantOrder}`);
    if (cuSeqlens[0] !== 0) fail(c, `cuSeqlens[0] = ${cuSeqlens[0]}`);
    for (let k = 0; k < n; k++)
      if (cuSeqlens[k + 1] - cuSeqlens[k] !== lengths[order[k]]) fail(c, `cuSeqlens step ${k} is ${cuSeqlens[k + 1] - cuSeqlens[k]}, expected ${lengths[order[k]]}`);
    if (holdLast) {
      const held = i32Tensor(c, res, 'held', [n]);
      for (let i = 0; i < n; i++) {
        if ((c.open?.held ?? []).includes(i) || srcLengths[i] === 0) continue;
        if (held[i] !== tokens[start[i + 1] - 1]) fail(c, `held[${i}] = ${held[i]}, expected the last token ${tokens[start[i + 1] - 1]}`);
      }
    } else if (res.held !== undefined) fail(c, `held returned without holdLast`);
  } else {
    fail(c, `no invariant checker for op ${c.op}`);
  }
  if (isReferenceLayout(c, lay)) exactCompare(c, res);
}
