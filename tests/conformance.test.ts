/**
 * The conformance vectors (tests/conformance/, copies of the contract's vectors; or
 * $RLHF_KERNELS_CONFORMANCE) on every
 * backend this build has. A floor under the per-family tests, not a substitute.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { checkPackingCase } from './packing-invariants.js';

const here = dirname(fileURLToPath(import.meta.url));
const dir = process.env.RLHF_KERNELS_CONFORMANCE ?? resolve(here, 'conformance');

/** Families whose ops are implemented: all seven once every SPEC section has landed. */
export const FAMILIES = ['rewards', 'sampling', 'ppo', 'advantages', 'prepack', 'logprobs', 'preference'];

const ARRAY: Record<string, any> = { f32: Float32Array, f64: Float64Array, f16: Uint16Array, bf16: Uint16Array, i32: Int32Array, u8: Uint8Array };
const num = (v: any) => (v === null ? NaN : v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v);
const build = (t: any) => rk.tensor(ARRAY[t.dtype].from(t.data, num), t.shape, t.dtype);
const backendsHere = (): string[] => {
  const b = rk.backends();
  return ['js', ...(b.cpu ? ['cpu'] : []), ...(b.cuda.available ? ['cuda'] : [])];
};

function same(got: number, exp: number, S: number, exact: boolean): boolean {
  if (Number.isNaN(exp)) return Number.isNaN(got);
  if (exact || !Number.isFinite(exp)) return got === exp;
  return Math.abs(got - exp) <= 1e-5 * (1 + S);
}

/** Compares one output; returns a failure message or null. */
export function compareOutput(got: any, exp: any, S: any, tolerance: string): string | null {
  if (typeof exp !== 'object' || exp === null) {
    if (typeof got !== 'number') return `expected a JS number, got ${typeof got}`;
    return same(got, num(exp), typeof S === 'number' ? S : 0, false) ? null : `got ${got}, expected ${exp}`;
  }
  if (!got || !got.shape) return `missing tensor output`;
  if (JSON.stringify(Array.from(got.shape)) !== JSON.stringify(exp.shape)) return `shape [${got.shape}] != [${exp.shape}]`;
  if (got.dtype !== exp.dtype) return `dtype ${got.dtype} != ${exp.dtype}`;
  const exact = tolerance !== 'SPEC precision' || exp.dtype !== 'f32';
  for (let i = 0; i < exp.data.length; i++) {
    const s = S ? num(Array.isArray(S) ? S[i] : S) : 0;
    if (!same(got.data[i], num(exp.data[i]), s, exact)) return `[${i}] = ${got.data[i]}, expected ${exp.data[i]}`;
  }
  return null;
}

function buildInputs(c: any, useAlternatives: boolean) {
  const src = { ...c.inputs, ...(useAlternatives ? c.input_alternatives : {}) };
  return Object.fromEntries(Object.entries(src).map(([k, t]) => [k, build(t)]));
}

// A missing vector file is a failing test, never a silently smaller suite.
{
  for (const family of FAMILIES) {
    const file = join(dir, `${family}.json`);
    if (!existsSync(file)) {
      describe(`conformance: ${family}`, () => {
        it(`vector file ${file} exists`, () => expect.fail(`conformance vectors missing: ${file} (set RLHF_KERNELS_CONFORMANCE or restore tests/conformance/)`));
      });
      continue;
    }
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    describe(`conformance: ${family}`, () => {
      for (const [ci, c] of doc.cases.entries()) {
        for (const backend of backendsHere()) {
          it(`#${ci} ${c.op} [${backend}]: ${c.note}`, () => {
            const fn = (rk as any)[c.op];
            expect(typeof fn, `${c.op} is exported`).toBe('function');
            let res: any;
            try {
              res = fn(buildInputs(c, false), { ...c.options, backend });
            } catch (e) {
              if (!(e instanceof TypeError) || !c.input_alternatives) throw e;
              res = fn(buildInputs(c, true), { ...c.options, backend });
            }
            if (c.invariants) {
              checkPackingCase(c, res, doc);
              return;
            }
            for (const [name, exp] of Object.entries<any>(c.expected)) {
              const got = res[name];
              if (got === undefined && c.optional_outputs?.includes(name)) continue;
              let msg = compareOutput(got, exp, c.scale?.[name], c.tolerance);
              if (msg && c.alternatives?.[name]) {
                for (const alt of c.alternatives[name]) if (compareOutput(got, alt, c.scale?.[name], c.tolerance) === null) msg = null;
              }
              if (msg) expect.fail(`${c.op} output '${name}' ${msg}`);
            }
          });
        }
      }
      for (const c of doc.error_cases) {
        for (const backend of backendsHere()) {
          it(`${c.op} [${backend}] throws ${c.error}: ${c.note}`, () => {
            const inputs = Object.fromEntries(Object.entries<any>(c.inputs).map(([k, t]) => [k, build(t)]));
            let err: unknown;
            try {
              (rk as any)[c.op](inputs, { ...c.options, backend });
            } catch (e) {
              err = e;
            }
            expect(err, 'must throw').toBeInstanceOf(Error);
            expect((err as Error).name).toBe(c.error);
          });
        }
      }
    });
  }
}
