/**
 * The package stands alone (issue 9): its documents link only to files inside the project, and no
 * code, test, benchmark or document reaches for the contract or the vectors outside it. (That the
 * packed tarball installs and works as a dependency is checked by `.ci/run`'s consumer step,
 * which needs `npm pack`.)
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

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
