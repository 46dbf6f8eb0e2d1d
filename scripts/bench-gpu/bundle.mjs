// Bundles webmoe's CLI (src/cli.ts) with the benchmark suite (bench/) into one ES module for
// scripts/bench-gpu.sh pack: `node scripts/bench-gpu/bundle.mjs OUT.mjs`. esbuild comes with vite and tsx.
// src/cli/bench.ts imports bench/cli.js through a variable (to keep bench/ out of the library build); here that
// import is made static so the bundle carries the suite. The `webgpu` package is bundled too: it loads
// dist/linux-x64/dawn.node relative to the bundle's own folder (import.meta.url), where the run step puts it.
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const out = process.argv[2];
if (!out) throw new Error('usage: node scripts/bench-gpu/bundle.mjs OUT.mjs');
const root = fileURLToPath(new URL('../..', import.meta.url));

const staticBench = {
  name: 'static-bench-import',
  setup(b) {
    b.onLoad({ filter: /src[\\/]cli[\\/]bench\.ts$/ }, async (args) => {
      const src = await readFile(args.path, 'utf8');
      const dynamic = 'await import(/* @vite-ignore */ path)';
      if (!src.includes(dynamic)) throw new Error(`${args.path}: the bench import changed; update scripts/bench-gpu/bundle.mjs`);
      return { contents: src.replace(dynamic, `await import('../../bench/cli.js')`), loader: 'ts' };
    });
  },
};

await build({
  entryPoints: [`${root}/src/cli.ts`],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: out,
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [staticBench],
  // CommonJS dependencies call require(); give the ES module bundle one
  banner: { js: "import { createRequire as __wmCreateRequire } from 'node:module'; const require = __wmCreateRequire(import.meta.url);" },
});
