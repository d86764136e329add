/**
 * `js` backend of the prepacking family (SPEC §6), float64 for the attention, and the same
 * O(n log n) packing algorithms as the native backend (so the layouts are identical).
 * Inputs are already validated.
 */
type Arr = ArrayLike<number>;

export type PackAlgorithm = 'ffd' | 'bfd';

/** Input indices sorted by length, longest first, ties by input index (stable). */
function byLengthDesc(lengths: Arr): Int32Array {
  const idx = Int32Array.from({ length: lengths.length }, (_, i) => i);
  return idx.sort((a, b) => lengths[b] - lengths[a] || a - b);
}

/** A treap of (remaining, pack) pairs ordered lexicographically: BFD's "fullest pack that fits". */
class PairTreap {
  private key: number[] = [];
  private pack: number[] = [];
  private pri: number[] = [];
  private left: number[] = [];
  private right: number[] = [];
  private root = -1;
  private seed = 0x9e3779b9;
  private free: number[] = [];

  private rand(): number {
    let x = this.seed;
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    this.seed = x >>> 0;
    return this.seed;
  }
  private less(ak: number, ap: number, bk: number, bp: number) {
    return ak < bk || (ak === bk && ap < bp);
  }
  /** Splits t into (< (k,p)) and (≥ (k,p)). */
  private split(t: number, k: number, p: number): [number, number] {
    if (t < 0) return [-1, -1];
    if (this.less(this.key[t], this.pack[t], k, p)) {
      const [a, b] = this.split(this.right[t], k, p);
      this.right[t] = a;
      return [t, b];
    }
    const [a, b] = this.split(this.left[t], k, p);
    this.left[t] = b;
    return [a, t];
  }
  private merge(a: number, b: number): number {
    if (a < 0) return b;
    if (b < 0) return a;
    if (this.pri[a] > this.pri[b]) {
      this.right[a] = this.merge(this.right[a], b);
      return a;
    }
    this.left[b] = this.merge(a, this.left[b]);
    return b;
  }
  insert(k: number, p: number) {
    const n = this.free.length ? this.free.pop()! : this.key.length;
    this.key[n] = k; this.pack[n] = p; this.pri[n] = this.rand(); this.left[n] = -1; this.right[n] = -1;
    const [a, b] = this.split(this.root, k, p);
    this.root = this.merge(this.merge(a, n), b);
  }
  /** Removes and returns the pack of the smallest pair with key ≥ k, or -1. */
  takeLowerBound(k: number): { remaining: number; pack: number } | null {
    let t = this.root, best = -1;
    while (t >= 0) {
      if (this.key[t] >= k) { best = t; t = this.left[t]; } else t = this.right[t];
    }
    if (best < 0) return null;
    const res = { remaining: this.key[best], pack: this.pack[best] };
    const [a, b] = this.split(this.root, res.remaining, res.pack);
    const [, c] = this.split(b, res.remaining, res.pack + 1);
    this.free.push(best);
    this.root = this.merge(a, c);
    return res;
  }
}

/** Prepacking §3 bin packing: FFD (segment tree of remaining room) or BFD (ordered set). */
export function packSequences(lengths: Arr, capacity: number, algorithm: PackAlgorithm) {
  const n = lengths.length;
  const packOf = new Int32Array(n), offsetOf = new Int32Array(n);
  const idx = byLengthDesc(lengths);
  let placed = 0;
  while (placed < n && lengths[idx[placed]] > 0) placed++;
  const loads: number[] = [];
  if (algorithm === 'ffd') {
    let size = 1;
    while (size < placed) size *= 2;
    const t = new Float64Array(2 * size).fill(capacity);
    for (let k = 0; k < placed; k++) {
      const i = idx[k], len = lengths[i];
      let node = 1;
      while (node < size) node = t[2 * node] >= len ? 2 * node : 2 * node + 1;
      const pack = node - size;
      packOf[i] = pack;
      offsetOf[i] = capacity - t[node];
      t[node] -= len;
      for (node >>= 1; node; node >>= 1) t[node] = Math.max(t[2 * node], t[2 * node + 1]);
      while (loads.length <= pack) loads.push(0);
      loads[pack] = capacity - t[size + pack];
    }
  } else {
    const open = new PairTreap();
    for (let k = 0; k < placed; k++) {
      const i = idx[k], len = lengths[i];
      const hit = open.takeLowerBound(len);
      const pack = hit ? hit.pack : loads.length;
      if (!hit) loads.push(0);
      packOf[i] = pack;
      offsetOf[i] = loads[pack];
      loads[pack] += len;
      if (capacity - loads[pack] > 0) open.insert(capacity - loads[pack], pack);
    }
  }
  return { packOf, offsetOf, packLengths: Int32Array.from(loads) };
}

export interface PrepackBuffers {
  inputIds: Int32Array; positionIds: Int32Array; segmentIds: Int32Array;
  restore: Int32Array; cuSeqlens: Int32Array; order: Int32Array; held: Int32Array | null;
}

/** The packed layout (SPEC §6) for a placement of the packed `lengths` (after holdLast). */
export function prepackFill(
  tokens: Arr, srcLengths: Arr, lengths: Arr, packOf: Arr, offsetOf: Arr, P: number, L: number,
  padId: number, out: PrepackBuffers,
) {
  const n = lengths.length;
  const start = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) start[i + 1] = start[i] + srcLengths[i];
  const nonEmpty: number[] = [], empty: number[] = [];
  for (let i = 0; i < n; i++) (lengths[i] > 0 ? nonEmpty : empty).push(i);
  nonEmpty.sort((a, b) => packOf[a] - packOf[b] || offsetOf[a] - offsetOf[b]);
  out.inputIds.fill(padId);
  out.positionIds.fill(0);
  out.segmentIds.fill(0);
  let k = 0, cu = 0, prevPack = -1, segNo = 0;
  out.cuSeqlens[0] = 0;
  for (const i of nonEmpty) {
    out.order[k++] = i;
    cu += lengths[i];
    out.cuSeqlens[k] = cu;
    segNo = packOf[i] === prevPack ? segNo + 1 : 1;
    prevPack = packOf[i];
    const base = packOf[i] * L + offsetOf[i];
    for (let t = 0; t < lengths[i]; t++) {
      out.inputIds[base + t] = tokens[start[i] + t];
      out.positionIds[base + t] = t;
      out.segmentIds[base + t] = segNo;
    }
  }
  for (const i of empty) {
    out.order[k++] = i;
    out.cuSeqlens[k] = cu;
  }
  for (let i = 0; i < n; i++) {
    out.restore[i] = lengths[i] > 0 ? packOf[i] * L + offsetOf[i] + lengths[i] - 1 : -1;
    if (out.held) out.held[i] = srcLengths[i] > 0 ? tokens[start[i + 1] - 1] : padId;
  }
}

/** mask[p,i,j] = (seg_i = seg_j ≠ 0 ∧ j ≤ i). */
export function attentionMask(seg: Arr, P: number, L: number, mask: Uint8Array | Float32Array, additive: boolean) {
  for (let p = 0; p < P; p++)
    for (let i = 0; i < L; i++) {
      const si = seg[p * L + i];
      for (let j = 0; j < L; j++) {
        const on = si !== 0 && seg[p * L + j] === si && j <= i;
        mask[(p * L + i) * L + j] = additive ? (on ? 0 : -Infinity) : on ? 1 : 0;
      }
    }
}

/** rows[i, maxLen − len_i + t] = packed[packOf_i, offsetOf_i + t], left-padded with 0. */
export function unpack(packed: Arr, packOf: Arr, offsetOf: Arr, lengths: Arr, L: number, D: number, maxLen: number, rows: Float32Array) {
  rows.fill(0);
  for (let i = 0; i < lengths.length; i++) {
    const len = lengths[i];
    for (let t = 0; t < len; t++)
      for (let d = 0; d < D; d++)
        rows[(i * maxLen + maxLen - len + t) * D + d] = packed[((packOf[i] * L) + offsetOf[i] + t) * D + d];
  }
}

/**
 * Causal attention restricted to segments (SPEC §6), float64, one query row at a time: row i of
 * head h attends keys j ≤ i with seg_j = seg_i ≠ 0 through kv head ⌊h / (H/Hkv)⌋; padding rows
 * are zeros. Masked keys are never read.
 */
export function packedAttention(
  q: Arr, k: Arr, v: Arr, seg: Arr, P: number, L: number, H: number, Hkv: number, Dh: number, scale: number, out: Float32Array,
) {
  const G = H / Hkv;
  const s = new Float64Array(L);
  const acc = new Float64Array(Dh);
  for (let p = 0; p < P; p++)
    for (let i = 0; i < L; i++) {
      const si = seg[p * L + i];
      for (let h = 0; h < H; h++) {
        const ob = ((p * L + i) * H + h) * Dh;
        if (si === 0) { out.fill(0, ob, ob + Dh); continue; }
        const g = Math.floor(h / G);
        let m = -Infinity;
        for (let j = 0; j <= i; j++) {
          if (seg[p * L + j] !== si) continue;
          const kb = ((p * L + j) * Hkv + g) * Dh;
          let dot = 0;
          for (let d = 0; d < Dh; d++) dot += q[ob + d] * k[kb + d];
          s[j] = scale * dot;
          if (!(s[j] <= m)) m = s[j]; // NaN-propagating max
        }
        let z = 0;
        acc.fill(0);
        for (let j = 0; j <= i; j++) {
          if (seg[p * L + j] !== si) continue;
          const e = Math.exp(s[j] - m);
          z += e;
          const vb = ((p * L + j) * Hkv + g) * Dh;
          for (let d = 0; d < Dh; d++) acc[d] += e * v[vb + d];
        }
        for (let d = 0; d < Dh; d++) out[ob + d] = acc[d] / z;
      }
    }
}
