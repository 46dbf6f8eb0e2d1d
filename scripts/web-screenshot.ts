/**
 * Takes docs/web-screenshot.png for the README: builds the page, serves it and a toy checkpoint (made under
 * ./toy-models/ if missing) from two local servers, runs one generation on WebGPU in headless Chromium
 * (SwiftShader) through the page's URL-driven mode, and captures the page.
 * Run: npx tsx scripts/web-screenshot.ts [out.png]
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { writeToyCheckpoint } from '../src/model/toy.js';
import { buildPage, startRig, waitForResult } from '../test/web/helpers/page.js';

const out = resolve(process.argv[2] ?? 'docs/web-screenshot.png');
const models = resolve('toy-models');
if (!existsSync(join(models, 'small', 'config.json'))) await writeToyCheckpoint('small', join(models, 'small'), { seed: 0 });
const pageDir = await buildPage();
const rig = await startRig(pageDir, models);
try {
  const page = await rig.browser.newPage({ viewport: { width: 1180, height: 940 }, deviceScaleFactor: 1 });
  const q = new URLSearchParams({ model: `${rig.models.url}/small/`, prompt: 'Once upon a time', 'max-tokens': '48', temperature: '0.8', seed: '1', 'ignore-eos': '1', backend: 'webgpu' });
  await page.goto(`${rig.page.url}/?${q}`);
  const res = await waitForResult(page);
  if (res.error) throw new Error(`the page failed: ${res.error}`);
  mkdirSync(dirname(out), { recursive: true });
  await page.screenshot({ path: out, fullPage: true });
  process.stderr.write(`wrote ${out} (${res.tokens?.length} tokens)\n`);
} finally {
  await rig.close();
  rmSync(pageDir, { recursive: true, force: true });
}
