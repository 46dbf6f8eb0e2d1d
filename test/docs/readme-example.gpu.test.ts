/**
 * README's "As a library" example, run exactly as printed: the code block is cut out of README.md, written to a
 * file in a scratch project whose node_modules/webmoe links to this checkout, and run with plain `node` against the
 * built dist/ (what `npm install` builds through `prepare`). Catches an example that drifts from the API or an
 * entry point that only works after a manual build.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { REPO } from '../format/shared-paths.js';
import { testAdapter } from '../helpers/gpu.js';

/** The first ```js block after the "## As a library" heading. */
function libraryExample(readme: string): string {
  const section = readme.slice(readme.indexOf('## As a library'));
  const m = /```js\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README.md: no ```js block under "## As a library"');
  return m[1]!;
}

const scratch = mkdtempSync(join(tmpdir(), 'webmoe-readme-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

it('the library example in README.md runs as written against the built package', () => {
  expect(existsSync(join(REPO, 'dist', 'index.js')), 'dist/ missing: `npm install` runs `prepare` (npm run build)').toBe(true);
  const code = libraryExample(readFileSync(join(REPO, 'README.md'), 'utf8'));
  const modelDir = /folderFiles\('([^']+)'\)/.exec(code)?.[1];
  expect(modelDir, 'the example loads a folder with folderFiles').toBeDefined();
  mkdirSync(join(scratch, 'node_modules'));
  symlinkSync(REPO, join(scratch, 'node_modules', 'webmoe'), 'dir');
  execFileSync(process.execPath, [join(REPO, 'node_modules/tsx/dist/cli.mjs'), join(REPO, 'src/cli.ts'), 'make-toy', '--config', 'small', '--out', join(scratch, modelDir!)], { stdio: 'pipe' });
  writeFileSync(join(scratch, 'example.mjs'), code);
  const run = spawnSync(process.execPath, ['example.mjs'], {
    cwd: scratch,
    env: { ...process.env, WEBMOE_ADAPTER: testAdapter() === 'auto' ? 'lavapipe' : testAdapter() },
    encoding: 'utf8',
    timeout: 240_000,
  });
  expect(run.status, run.stderr).toBe(0);
  // the stats object printed at the end, after 32 streamed tokens
  expect(run.stdout).toMatch(/generatedTokens: 32/);
});
