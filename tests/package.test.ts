/**
 * The package stands alone (issue 9): its documents link only to files inside the project, no
 * code, test, benchmark or document reaches for the contract or the vectors outside it, and the
 * loader finds a shipped prebuild in the order the README gives. (That the packed tarball installs
 * and works as a dependency is checked by `.ci/run`'s consumer step, which needs `npm pack`.)
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { addonPath } from '../ts/native.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function walk(dir: string, keep: (f: string) => boolean): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p, keep));
    else if (keep(p)) out.push(p);
  }
  return out;
}

const markdown = [
  join(root, 'README.md'),
  ...['docs', 'bench', 'tests'].flatMap((d) => walk(join(root, d), (f) => f.endsWith('.md'))),
];

/**
 * Relative references in a markdown file: `[text](target)` links outside fenced code, and
 * backticked paths that start with `./` or `../`. Anchors are dropped.
 */
function references(text: string): string[] {
  const prose = text.replace(/^```[\s\S]*?^```/gm, '');
  const links = [...prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]);
  const paths = [...prose.matchAll(/`(\.\.?\/[^`\s]+)`/g)].map((m) => m[1]);
  return [...links, ...paths]
    .filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t) && !t.startsWith('#'))
    .map((t) => t.split('#')[0])
    .filter((t) => t.length > 0);
}

function insideRoot(p: string): boolean {
  const r = relative(root, p);
  return r === '' || (r !== '..' && !r.startsWith(`..${sep}`) && !isAbsolute(r));
}

describe('package: self-contained', () => {
  it('finds the documents it checks', () => {
    expect(markdown.map((f) => relative(root, f))).toEqual(expect.arrayContaining(['README.md', 'docs/SPEC.md']));
  });

  it.each(markdown.map((f) => [relative(root, f), f]))('%s links only to files inside the project', (_name, file) => {
    const bad: string[] = [];
    for (const ref of references(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), decodeURI(ref));
      if (!insideRoot(target)) bad.push(`${ref} (outside the project)`);
      else if (!existsSync(target)) bad.push(`${ref} (no such file)`);
    }
    expect(bad).toEqual([]);
  });

  it('the reference finder sees links, backticked paths, and what escapes the project', () => {
    const refs = references('[a](docs/SPEC.md#x) `../../docs/SPEC.md` [w](https://x.org) [h](#top)\n```\n[c](in/code.md)\n```\n');
    expect(refs).toEqual(['docs/SPEC.md', '../../docs/SPEC.md']);
    expect(insideRoot(resolve(root, '..', 'shared', 'SPEC.md'))).toBe(false);
    expect(insideRoot(join(root, 'docs', 'SPEC.md'))).toBe(true);
  });

  it('no code, test, benchmark, build file or document refers to a shared folder outside the project', () => {
    const outside = ['..', 'shared'].join('/'); // spelled in pieces so that this file does not match itself
    const roots = ['ts', 'tests', 'bench', 'docs', 'src', 'cuda'].map((d) => join(root, d));
    const files = [
      ...roots.flatMap((d) => walk(d, (f) => statSync(f).size < 4 << 20)),
      ...['README.md', 'package.json', 'binding.gyp', 'CMakeLists.txt', 'vitest.config.ts', 'tsconfig.json'].map((f) => join(root, f)),
    ];
    expect(files.length).toBeGreaterThan(50);
    const hits = files.filter((f) => readFileSync(f, 'utf8').includes(outside)).map((f) => relative(root, f));
    expect(hits).toEqual([]);
  });
});

describe('package: where the loader finds the addon', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'rk-loader-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  const libc = report?.header?.glibcVersionRuntime ? 'glibc' : 'musl';
  const shipped = `prebuilds/${process.platform}-${process.arch}/rlhf-kernels.${libc}.node`; // prebuildify --napi --tag-libc

  /**
   * A package root laid out as installed (ts/, package.json, node_modules linked to ours) in a
   * temporary folder, with copies of the loaded addon at `builds`; returns what the loader picked
   * there (path relative to that root) or its load error.
   */
  function pick(name: string, builds: string[], olderMinutes: Record<string, number> = {}): { path: string | null; error: string | null; warnings: string[] } {
    const dir = join(tmp, name);
    cpSync(join(root, 'ts'), join(dir, 'ts'), { recursive: true });
    cpSync(join(root, 'package.json'), join(dir, 'package.json'));
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    for (const b of builds) {
      mkdirSync(dirname(join(dir, b)), { recursive: true });
      cpSync(addonPath!, join(dir, b));
    }
    for (const [b, minutes] of Object.entries(olderMinutes)) {
      const t = new Date(Date.now() - minutes * 60_000);
      utimesSync(join(dir, b), t, t);
    }
    const env: NodeJS.ProcessEnv = { ...process.env, RLHF_KERNELS_REQUIRE_NATIVE: '', RLHF_KERNELS_NO_NATIVE: '' };
    delete env.RLHF_KERNELS_ADDON;
    const script = `const warnings = [];
      process.on('warning', (w) => warnings.push(w.code));
      const { addonPath, nativeLoadError } = await import('./ts/native.ts');
      setTimeout(() => console.log(JSON.stringify({ path: addonPath, error: nativeLoadError, warnings })), 20);`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: dir,
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const r = JSON.parse(out.trim().split('\n').pop()!) as { path: string | null; error: string | null; warnings: string[] };
    return { path: r.path && relative(dir, r.path).split(sep).join('/'), error: r.error, warnings: r.warnings };
  }

  it('the native addon is loaded in this run (the copies below are of it)', () => {
    expect(addonPath).not.toBeNull();
  });
  it.runIf(addonPath)('a shipped prebuild alone is loaded', () => {
    expect(pick('prebuild-only', [shipped])).toEqual({ path: shipped, error: null, warnings: [] });
  });
  it.runIf(addonPath)('a source build in build/Release wins over the prebuild', () => {
    expect(pick('build-and-prebuild', [shipped, 'build/Release/rlhf_kernels.node']).path).toBe('build/Release/rlhf_kernels.node');
  });
  it.runIf(addonPath)("the user's CUDA build in build-cuda/Release wins over both", () => {
    const all = [shipped, 'build/Release/rlhf_kernels.node', 'build-cuda/Release/rlhf_kernels.node'];
    const r = pick('all-three', all);
    expect(r.path).toBe('build-cuda/Release/rlhf_kernels.node');
    expect(r.warnings).toEqual([]);
  });
  it.runIf(addonPath)('a build-cuda/ build older than build/Release/ is still loaded, with one stale-build warning', () => {
    const cuda = 'build-cuda/Release/rlhf_kernels.node';
    const r = pick('stale-cuda', ['build/Release/rlhf_kernels.node', cuda], { [cuda]: 90 });
    expect(r.path).toBe(cuda);
    expect(r.warnings).toEqual(['RLHF_KERNELS_STALE_BUILD']);
  });
  it.runIf(addonPath)("a prebuild for another platform or libc is not taken: js fallback, and the error says so", () => {
    const other = libc === 'glibc' ? 'musl' : 'glibc';
    const r = pick('other-platform', [`prebuilds/sunos-mips/rlhf-kernels.${libc}.node`, `prebuilds/${process.platform}-${process.arch}/rlhf-kernels.${other}.node`]);
    expect(r.path).toBeNull();
    expect(r.error).toMatch(/no prebuild in .*prebuilds matches/);
  });
});
