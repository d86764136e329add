/** Package foundation: tensors, backends(), backend selection, the loader's fallback, CJS/ESM entry. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

describe('tensor()', () => {
  it('infers dtypes and validates lengths', () => {
    expect(rk.tensor(new Float32Array(6), [2, 3]).dtype).toBe('f32');
    expect(rk.tensor(new Float64Array(2), [2]).dtype).toBe('f64');
    expect(rk.tensor(new Int32Array(1), [1]).dtype).toBe('i32');
    expect(rk.tensor(new Uint8Array(4), [2, 2]).dtype).toBe('u8');
    expect(rk.tensor(new Uint16Array(4), [4], 'bf16').dtype).toBe('bf16');
    expect(rk.tensor([1, 2, 3], [3]).data).toBeInstanceOf(Float32Array);
    expect(rk.tensor([1, 2], [2], 'i32').data).toBeInstanceOf(Int32Array);
    expect(() => rk.tensor(new Uint16Array(4), [4])).toThrow(TypeError);
    expect(() => rk.tensor(new Float32Array(5), [2, 3])).toThrow(RangeError);
    expect(() => rk.tensor(new Float32Array(4), [2, 2], 'i32')).toThrow(TypeError);
    expect(() => rk.tensor(new Float32Array(4), [2, -2])).toThrow(RangeError);
    expect(() => rk.tensor(new Float32Array(4), [2.5, 2])).toThrow(RangeError);
    expect(() => rk.tensor(new Int16Array(4) as any, [4])).toThrow(TypeError);
    expect(() => rk.tensor(new Float32Array(4), [4], 'f8' as any)).toThrow(RangeError);
    expect(() => rk.tensor('abc' as any, [3])).toThrow(TypeError);
    expect(rk.tensor(new Float32Array(0), [0, 5]).shape).toEqual([0, 5]);
  });

  it('converts onnxruntime-style tensors, and rejects mismatched ones', () => {
    const t = rk.toTensor({ data: new Float32Array(6), dims: [2, 3], type: 'float32' }, 'x');
    expect(t.dtype).toBe('f32');
    expect(t.shape).toEqual([2, 3]);
    expect(rk.toTensor({ data: new Uint16Array(2), dims: [2], type: 'bfloat16' }, 'x').dtype).toBe('bf16');
    expect(rk.toTensor({ data: new Uint8Array(2), dims: [2], type: 'bool' }, 'x').dtype).toBe('u8');
    expect(() => rk.toTensor({ data: new Float32Array(6), dims: [2, 2], type: 'float32' }, 'x')).toThrow(RangeError);
    expect(() => rk.toTensor({ data: new Float64Array(6), dims: [6], type: 'float32' }, 'x')).toThrow(TypeError);
    expect(() => rk.toTensor({ data: new Float32Array(6), dims: [6], type: 'string' }, 'x')).toThrow(TypeError);
    expect(() => rk.toTensor(42, 'x')).toThrow(TypeError);
  });

  it('f16 and bf16 conversions round-trip and match known bit patterns', () => {
    expect(rk.bf16ToFloat(0x3f80)).toBe(1);
    expect(rk.f16ToFloat(0x3c00)).toBe(1);
    expect(rk.f16ToFloat(0xc000)).toBe(-2);
    expect(rk.f16ToFloat(0x7c00)).toBe(Infinity);
    expect(rk.f16ToFloat(0x0001)).toBe(2 ** -24);
    for (const x of [0, 1, -1, 0.1, 3.14159, 65504, -1e-5, 1e4]) {
      expect(rk.f16ToFloat(rk.floatToF16(rk.f16ToFloat(rk.floatToF16(x))))).toBe(rk.f16ToFloat(rk.floatToF16(x)));
      expect(Math.abs(rk.f16ToFloat(rk.floatToF16(x)) - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -11 + 2 ** -25);
      expect(Math.abs(rk.bf16ToFloat(rk.floatToBf16(x)) - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -8);
    }
  });
});

describe('backends()', () => {
  it('reports the native build and its SIMD level', () => {
    const b = rk.backends();
    expect(typeof b.cpu).toBe('boolean');
    expect(typeof b.simd).toBe('string');
    expect(Array.isArray(b.cuda.devices)).toBe(true);
    expect(typeof b.cuda.available).toBe('boolean');
    if (b.cpu) {
      expect(['avx512', 'avx2', 'scalar']).toContain(b.simd);
      expect(b.addonPath).toMatch(/(rlhf_kernels\.node|rlhf-kernels(\.[a-z0-9]+)*\.node)$/); // a build, or the prebuild after npm pack
      expect(b.threads).toBeGreaterThanOrEqual(1);
    }
    if (!b.cuda.available) expect(b.cuda.reason).toBeTruthy();
  });

  it.skipIf(!rk.backends().cpu)('setSimd and setThreads change what the kernels use, and results stay equal', () => {
    const x = rk.tensor(Float32Array.from({ length: 70000 }, (_, i) => Math.sin(i)), [7, 10000]);
    const y = rk.tensor(Float32Array.from({ length: 70000 }, (_, i) => Math.cos(i)), [7, 10000]);
    const ref = rk.klPenalty({ logp: x, refLogp: y }, { estimator: 'k3' }).kl.data;
    const threads = rk.backends().threads;
    try {
      expect(rk.setThreads(1)).toBe(1);
      expect(rk.backends().threads).toBe(1);
      expect(Array.from(rk.klPenalty({ logp: x, refLogp: y }, { estimator: 'k3' }).kl.data)).toEqual(Array.from(ref));
      expect(() => rk.setThreads(0)).toThrow(RangeError);
    } finally {
      rk.setThreads(threads);
    }
    expect(() => rk.setSimd('sse' as any)).toThrow(RangeError);
  });
});

describe('the loader', () => {
  it('falls back to js with one warning when the addon cannot load, and ops still work', () => {
    const script = `
      import * as rk from './ts/index.ts';
      const warnings = [];
      process.on('warning', (w) => warnings.push(w.message));
      const kl = rk.klPenalty({ logp: rk.tensor([1, 2], [1, 2]), refLogp: rk.tensor([0.5, 1], [1, 2]) }).kl;
      let cpuError = '';
      try { rk.klPenalty({ logp: rk.tensor([1], [1, 1]), refLogp: rk.tensor([1], [1, 1]) }, { backend: 'cpu' }); } catch (e) { cpuError = e.message; }
      setTimeout(() => console.log(JSON.stringify({ kl: Array.from(kl.data), cpu: rk.backends().cpu, warnings, cpuError })), 10);
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      env: { ...process.env, RLHF_KERNELS_ADDON: '/nonexistent/rlhf_kernels.node', RLHF_KERNELS_REQUIRE_NATIVE: '' },
      encoding: 'utf8',
    });
    const r = JSON.parse(out.trim().split('\n').pop()!);
    expect(r.kl).toEqual([0.5, 1]);
    expect(r.cpu).toBe(false);
    expect(r.warnings.length).toBe(1);
    expect(r.warnings[0]).toMatch(/falling back/);
    expect(r.cpuError).toMatch(/backend 'cpu' unavailable/);
  });

  it.skipIf(!existsSync(resolve(root, 'dist', 'index.js')))('the built package loads from require() and import', () => {
    const cjs = execFileSync(process.execPath, ['-e', "const rk = require('./dist/index.js'); console.log(typeof rk.klPenalty, typeof rk.tensor)"], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(cjs.trim()).toBe('function function');
    const esm = execFileSync(process.execPath, ['--input-type=module', '-e', "import * as rk from './dist/index.js'; console.log(typeof rk.backends)"], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(esm.trim()).toBe('function');
  });
});
