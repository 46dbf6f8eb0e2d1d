/**
 * The public entry points: `webmoe` (src/index.ts) must stay browser-safe, so no module it reaches through static
 * imports may import a Node built-in; Node-only helpers live in `webmoe/node` (src/node.ts). The one dynamic
 * import of the Node adapter in src/gpu/device.ts is not a static edge and runs only under Node.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { REPO } from '../format/shared-paths.js';

const STATIC_IMPORT = /^\s*(?:import|export)\s[^'";]*?from\s+'([^']+)'/gm;

/** Every module statically reachable from `entry`, with the Node built-ins each imports. */
function nodeImports(entry: string): Map<string, string[]> {
  const seen = new Set<string>();
  const offenders = new Map<string, string[]>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const src = readFileSync(file, 'utf8');
    for (const m of src.matchAll(STATIC_IMPORT)) {
      const spec = m[1]!;
      if (/^import\s+type\b|^export\s+type\b/.test(m[0].trim())) continue;
      if (spec.startsWith('node:')) offenders.set(file, [...(offenders.get(file) ?? []), spec]);
      else if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
    }
  };
  visit(entry);
  return offenders;
}

it('src/index.ts (the `webmoe` entry) reaches no Node built-in through static imports', () => {
  const offenders = nodeImports(join(REPO, 'src/index.ts'));
  expect([...offenders].map(([f, s]) => `${f.slice(REPO.length + 1)}: ${s.join(', ')}`)).toEqual([]);
});

it('the walk finds Node built-ins where they are (src/node.ts reaches node:fs/promises)', () => {
  const offenders = nodeImports(join(REPO, 'src/node.ts'));
  expect([...offenders.values()].flat()).toContain('node:fs/promises');
});

it('package.json exports both entries from dist/', () => {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { exports: Record<string, { import?: string }> };
  expect(pkg.exports['.']?.import).toBe('./dist/index.js');
  expect(pkg.exports['./node']?.import).toBe('./dist/node.js');
});
