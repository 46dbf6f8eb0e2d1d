/**
 * The folders' import rules (docs/architecture.md, "Folders"), checked on the source text so a violation fails here
 * and not in review:
 *   - no import cycles between modules (static or dynamic imports; type-only imports excluded, they vanish at
 *     compile time);
 *   - layers import only downward: errors and random import nothing of ours; format imports only errors; gpu imports
 *     only errors and format (the GPU layer knows no model); model imports no engine, offload, text, agent or cli;
 *     text no engine, agent or cli; engine and offload no agent or cli; agent no cli.
 * The test fails with the offending file and import named, and it is checked that it can fail (a planted cycle and
 * a planted upward import are detected).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const SRC = join(ROOT, 'src');

/** Layer → the layers it may import (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  errors: [],
  random: [],
  format: ['errors'],
  gpu: ['errors', 'format'],
  model: ['errors', 'format', 'random'],
  text: ['errors', 'format', 'model'],
  offload: ['errors', 'format', 'gpu', 'model', 'random'],
  engine: ['errors', 'format', 'gpu', 'model', 'offload', 'random', 'text'],
  agent: ['errors', 'format', 'gpu', 'model', 'offload', 'random', 'text', 'engine'],
  cli: ['errors', 'format', 'gpu', 'model', 'offload', 'random', 'text', 'engine', 'agent'],
  index: ['*'],
  node: ['*'],
};

interface Edge {
  to: string;
  typeOnly: boolean;
}
type Graph = Map<string, Edge[]>;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.gen.ts') ? [p] : [];
  });
}

/** The relative imports of each file (static, re-exports and dynamic), resolved to file paths under src/. */
export function importGraph(files: ReadonlyMap<string, string>): Graph {
  const g: Graph = new Map();
  const re = /(?:^|\n)\s*(?:import|export)\s+(type\s+)?[^'";]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
  for (const [file, text] of files) {
    // one edge per imported file: a value import wins over type-only ones
    const edges = new Map<string, Edge>();
    for (const m of text.matchAll(re)) {
      const to = normalize(join(dirname(file), m[2] ?? m[3]!)).replace(/\.js$/, '.ts');
      const typeOnly = m[1] !== undefined && (edges.get(to)?.typeOnly ?? true);
      edges.set(to, { to, typeOnly });
    }
    g.set(file, [...edges.values()]);
  }
  return g;
}

/** Every cycle of value imports, as file lists. */
export function cycles(g: Graph): string[][] {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (u: string): void => {
    state.set(u, 1);
    stack.push(u);
    for (const e of g.get(u) ?? []) {
      if (e.typeOnly || !g.has(e.to)) continue;
      if (state.get(e.to) === 1) found.push([...stack.slice(stack.indexOf(e.to)), e.to]);
      else if (!state.has(e.to)) visit(e.to);
    }
    stack.pop();
    state.set(u, 2);
  };
  for (const f of g.keys()) if (!state.has(f)) visit(f);
  return found;
}

function layerOf(file: string, root: string): string {
  return relative(root, file).split('/')[0]!.replace(/\.ts$/, '');
}

/** Imports that go up (or sideways where not allowed): "src/gpu/x.ts imports src/model/y.ts". */
export function upwardImports(g: Graph, root: string): string[] {
  const out: string[] = [];
  for (const [file, edges] of g) {
    const from = layerOf(file, root);
    const allowed = ALLOWED[from];
    for (const e of edges) {
      const to = layerOf(e.to, root);
      if (to === from || allowed?.includes('*') || allowed?.includes(to)) continue;
      out.push(`${relative(ROOT, file)} imports ${relative(ROOT, e.to)} (${from} may import: ${allowed?.join(', ') || 'nothing of ours'})`);
    }
  }
  return out;
}

describe('import rules', () => {
  const files = new Map(sourceFiles(SRC).map((f) => [f, readFileSync(f, 'utf8')]));
  const g = importGraph(files);

  it('every folder of src/ has a rule', () => {
    const layers = new Set([...files.keys()].map((f) => layerOf(f, SRC)));
    expect([...layers].filter((l) => !(l in ALLOWED))).toEqual([]);
  });

  it('no import cycles', () => {
    expect(cycles(g).map((c) => c.map((f) => relative(ROOT, f)).join(' -> '))).toEqual([]);
  });

  it('layers import only downward', () => {
    expect(upwardImports(g, SRC)).toEqual([]);
  });

  it('the checks can fail: a planted cycle and a planted upward import are found', () => {
    const planted = new Map([
      [join(SRC, 'gpu', 'a.ts'), "import { b } from '../model/b.js';\n"],
      [join(SRC, 'model', 'b.ts'), "import { c } from './c.js';\n"],
      [join(SRC, 'model', 'c.ts'), "export { b } from './b.js';\nconst x = await import('./b.js');\n"],
      [join(SRC, 'model', 'd.ts'), "import type { T } from './e.js';\n"],
      [join(SRC, 'model', 'e.ts'), "import type { U } from './d.js';\n"],
    ]);
    const pg = importGraph(planted);
    expect(cycles(pg).map((c) => c.map((f) => relative(SRC, f)).join(' -> '))).toEqual(['model/b.ts -> model/c.ts -> model/b.ts']);
    expect(upwardImports(pg, SRC)).toEqual([expect.stringMatching(/^src\/gpu\/a\.ts imports src\/model\/b\.ts/)]);
  });
});
