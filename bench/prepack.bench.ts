/**
 * Benchmarks of the prepacking family (SPEC §6), reproducing the Prepacking paper's comparison
 * (Zhao et al. 2024, §4): prefill attention over a batch of prompts padded to the longest one,
 * versus the same prompts prepacked (FFD) into bins of that length with block-diagonal causal
 * masks. For each length list in bench/data/ (first 64 prompts) it reports the attention tiles
 * and FLOPs computed, the wall time of packedAttention, and the memory of q/k/v/out (+ the dense
 * [P,L,L] mask a framework without segment-aware attention would need).
 *
 *   npm run bench -- --family prepack --quick               # through the CLI
 *   node --import tsx bench/prepack.bench.ts                 # standalone: prints the padded/prepacked ratios
 *
 * Padded baseline: each prompt is one causal segment spanning the whole padded row (a dense
 * kernel computes the padding positions too); "padded, pad masked" marks padding as segment 0 so
 * our kernel skips it (a stronger baseline than the paper's).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as rk from '../ts/index.js';
import { packedAttentionImpl } from '../ts/ops/prepack.js';
import { lastOnly, randn, TRANSCENDENTAL_FLOPS as TX, type OpCase, type OpSpec } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const H = 8, Hkv = 2, Dh = 64, NPROMPTS = 64;

export function loadLengths(name: string, n = NPROMPTS): number[] {
  const doc = JSON.parse(readFileSync(join(here, 'data', `${name}.json`), 'utf8'));
  return (doc.lengths as number[]).slice(0, n);
}

export interface Layout {
  label: string;
  P: number;
  L: number;
  segmentIds: rk.Tensor<'i32'>;
}

/** The three layouts of one batch of prompts. */
export function layouts(lengths: number[]): Layout[] {
  const L = Math.max(...lengths);
  const B = lengths.length;
  const dense = new Int32Array(B * L).fill(1);
  const masked = new Int32Array(B * L);
  lengths.forEach((len, b) => masked.fill(1, b * L, b * L + len)); // right-padded, pad = segment 0
  const tokens = rk.tensor(new Int32Array(lengths.reduce((a, b) => a + b, 0)).fill(1), [lengths.reduce((a, b) => a + b, 0)], 'i32');
  const pk = rk.prepack({ tokens, lengths: rk.tensor(Int32Array.from(lengths), [B], 'i32') }, { capacity: L });
  return [
    { label: 'padded', P: B, L, segmentIds: rk.tensor(dense, [B, L], 'i32') },
    { label: 'padded, pad masked', P: B, L, segmentIds: rk.tensor(masked, [B, L], 'i32') },
    { label: 'prepacked', P: pk.segmentIds.shape[0], L, segmentIds: pk.segmentIds },
  ];
}

/** Exact causal-within-segment attention FLOPs (QKᵀ and PV: 4·Dh per (query, key, head)). */
export function usefulFlops(seg: ArrayLike<number>, P: number, L: number, heads: number, dh: number): number {
  let pairs = 0;
  for (let p = 0; p < P; p++) {
    let run = 0;
    for (let i = 0; i < L; i++) {
      const s = seg[p * L + i];
      run = s !== 0 && i > 0 && seg[p * L + i - 1] === s ? run + 1 : s !== 0 ? 1 : 0;
      pairs += run;
    }
  }
  return 4 * dh * heads * pairs;
}

function inputs(lay: Layout) {
  const nq = lay.P * lay.L * H * Dh, nk = lay.P * lay.L * Hkv * Dh;
  return {
    q: rk.tensor(randn(nq, 1, 0.5), [lay.P, lay.L, H, Dh]),
    k: rk.tensor(randn(nk, 2, 0.5), [lay.P, lay.L, Hkv, Dh]),
    v: rk.tensor(randn(nk, 3, 0.5), [lay.P, lay.L, Hkv, Dh]),
    segmentIds: lay.segmentIds,
  };
}

/** Figures of one layout: tiles, FLOPs, memory. */
export function figures(lay: Layout, x = inputs(lay)) {
  const { tiles } = packedAttentionImpl(x, { backend: 'cpu' });
  const G = H / Hkv;
  const bq = Math.max(16, Math.min(64, Math.floor(64 / G))); // CPU query tile (positions) per head
  const tileFlops = bq * 64 * 4 * Dh;
  const qkvoBytes = lay.P * lay.L * (H * Dh * 4 * 2 + Hkv * Dh * 4 * 2);
  return {
    packs: lay.P,
    tilesComputed: tiles.tilesComputed,
    tilesSkipped: tiles.tilesSkipped,
    gflopComputed: +((tiles.tilesComputed * tileFlops) / 1e9).toFixed(2),
    gflopUseful: +(usefulFlops(lay.segmentIds.data, lay.P, lay.L, H, Dh) / 1e9).toFixed(2),
    qkvoMiB: +(qkvoBytes / 2 ** 20).toFixed(1),
    denseMaskMiB: +((lay.P * lay.L * lay.L) / 2 ** 20).toFixed(1),
  };
}

const family = 'prepack';

/** Inputs of one layout of a length list ("heavy-tailed", "near-uniform"), kept until the next. */
const layoutInputs = lastOnly((key: string) => {
  const [name, label] = key.split('|');
  const lay = layouts(loadLengths(name)).find((l) => l.label === label)!;
  const x = inputs(lay);
  return { lay, x, f: figures(lay, x), o: { out: rk.zeros([lay.P, lay.L, H, Dh], 'f32') } };
});

const dataSet = (size: string) => {
  if (!['heavy-tailed', 'near-uniform'].includes(size)) throw new RangeError(`size '${size}': expected a length list of bench/data (heavy-tailed, near-uniform)`);
  return size;
};

const attentionOp = (label: string, sets: string[], explicit: string[] = []): OpSpec => ({
  family, op: `packedAttention(${label})`, sizes: () => ({ other: sets }), explicitSizes: explicit,
  make(size): OpCase {
    const { lay, x, f, o } = layoutInputs(`${dataSet(size)}|${label}`);
    return {
      bytes: lay.P * lay.L * (H * Dh * 4 * 2 + Hkv * Dh * 4 * 2),
      // the useful causal-within-segment work: QKᵀ and PV (4·Dh per pair and head) and one exp per score
      flops: f.gflopUseful * 1e9 * (1 + TX / (4 * Dh)),
      note: `${NPROMPTS} prompts as ${lay.P}x${lay.L}, H${H}/${Hkv} Dh${Dh}`,
      extra: f,
      out: { cpu: () => rk.packedAttention(x, { backend: 'cpu', out: o }) },
      alloc: { cpu: () => rk.packedAttention(x, { backend: 'cpu' }) },
    };
  },
});

/** The bookkeeping ops on 1024 prompts of a length list. */
const packs = lastOnly((size: string) => {
  const m = /^(heavy-tailed|near-uniform)\/(\d+)$/.exec(size);
  if (!m) throw new RangeError(`size '${size}': expected <length list>/<prompts>, e.g. heavy-tailed/1024`);
  const lengths = loadLengths(m[1], Number(m[2]));
  const total = lengths.reduce((a, b) => a + b, 0);
  const tokens = rk.tensor(new Int32Array(total).fill(7), [total], 'i32');
  const lens = rk.tensor(Int32Array.from(lengths), [lengths.length], 'i32');
  const cap = Math.max(...lengths);
  const pk = rk.prepack({ tokens, lengths: lens }, { capacity: cap });
  return { lengths, total, tokens, lens, cap, pk };
});

export const ops: OpSpec[] = [
  // the padded baseline computes every padding position (~1–2 s per call): only with an explicit
  // --size (npm run bench -- --op 'packedAttention(padded)' --size heavy-tailed), or standalone below
  attentionOp('padded', [], ['heavy-tailed', 'near-uniform']),
  attentionOp('padded, pad masked', ['heavy-tailed', 'near-uniform']),
  attentionOp('prepacked', ['heavy-tailed', 'near-uniform']),
  {
    family, op: 'prepack(ffd)', sizes: () => ({ other: ['heavy-tailed/1024'] }),
    make(size): OpCase {
      const { total, tokens, lens, cap } = packs(size);
      return {
        bytes: total * 4 * 2, flops: 0,
        out: {
          cpu: () => rk.prepack({ tokens, lengths: lens }, { capacity: cap, backend: 'cpu' }),
          js: () => rk.prepack({ tokens, lengths: lens }, { capacity: cap, backend: 'js' }),
        },
      };
    },
  },
  {
    family, op: 'attentionMask(bool)', sizes: () => ({ other: ['heavy-tailed/1024'] }),
    make(size): OpCase {
      const { pk } = packs(size);
      const [P, L] = pk.segmentIds.shape;
      const m = { mask: rk.zeros([P, L, L], 'u8') };
      return {
        bytes: P * L * L + P * L * 4, flops: 0, note: `${P}x${L}x${L}`,
        out: { cpu: () => rk.attentionMask({ segmentIds: pk.segmentIds }, { backend: 'cpu', out: m }) },
        alloc: { cpu: () => rk.attentionMask({ segmentIds: pk.segmentIds }, { backend: 'cpu' }) },
      };
    },
  },
  {
    family, op: 'unpack', sizes: () => ({ other: ['heavy-tailed/1024'] }),
    make(size): OpCase {
      const { pk, lengths, lens, total } = packs(size);
      const [P, L] = pk.segmentIds.shape;
      const D = 512, maxLen = Math.max(...lengths);
      const packed = rk.tensor(randn(P * L * D, 5), [P, L, D]);
      const rows = { rows: rk.zeros([lengths.length, maxLen, D], 'f32') };
      const x = { packed, packOf: pk.packOf, offsetOf: pk.offsetOf, lengths: lens };
      return {
        bytes: total * D * 4 + lengths.length * maxLen * D * 4, flops: 0, note: `${P}x${L}x${D} → ${lengths.length}x${maxLen}x${D}`,
        // (no alloc form: a fresh 2 GiB output per call measures the page faults only)
        out: { cpu: () => rk.unpack(x, { backend: 'cpu', out: rows }) },
      };
    },
  },
];

// Standalone: the paper's comparison with ratios.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const time = (fn: () => unknown, reps = 3) => {
    fn();
    const ts: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      fn();
      ts.push(performance.now() - t0);
    }
    return ts.sort((a, b) => a - b)[reps >> 1] / 1e3;
  };
  console.log(`packedAttention, ${NPROMPTS} prompts, H=${H}, Hkv=${Hkv}, Dh=${Dh}, f32, ${rk.backends().threads} threads (${rk.backends().simd})`);
  for (const name of ['heavy-tailed', 'near-uniform']) {
    const lengths = loadLengths(name);
    const rowsOut: Record<string, number | string>[] = [];
    let base = 0;
    for (const lay of layouts(lengths)) {
      const x = inputs(lay);
      const f = figures(lay, x);
      const s = time(() => rk.packedAttention(x, { backend: 'cpu' }));
      if (!base) base = s;
      rowsOut.push({ layout: lay.label, ...f, seconds: +s.toFixed(4), speedupVsPadded: +(base / s).toFixed(2) });
    }
    console.log(`\n${name} (Σlen ${lengths.reduce((a, b) => a + b, 0)}, max ${Math.max(...lengths)})`);
    console.table(rowsOut);
  }
}
