/**
 * An INT4 checkpoint in headless Chromium (issue #14): the vendored golden `int4` fixture (Kimi K2-Thinking
 * layout: routed experts INT4 compressed-tensors pack-quantized, the shared expert and every other linear BF16;
 * no tokenizer) served as it is, by URL (HTTP Range + CORS, from a second origin), to the page built by Vite, which
 * loads it into WebGPU (SwiftShader in Chromium) in its worker and generates greedily from the fixture's prompt.
 * One page load, one comparison: the page's tokens must be the fixture's greedy continuation (the float64
 * reference's), exactly, as the other browser tests require the Node engine's tokens.
 *
 * Why exact tokens are the right bound: the page reports tokens, not logits; the GPU engine's logits are within
 * 2e-3 · max(1, max |ref|) of the fixture's (docs/model.md §8.3, test/engine/session.gpu.test.ts; measured ~1e-6
 * relative), and the fixture's smallest greedy margin is checked below to exceed twice that bound, so identical
 * tokens follow from the logits tolerance and a mismatch is a real error, not a near tie.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { golden } from '../format/shared-paths.js';
import { buildPage, openWatchedPage, startRig, waitForResult, type PageRig } from './helpers/page.js';

const FIXTURE = golden('int4');
/** docs/model.md §8.3: |gpu − ref| <= 2e-3 · max(1, max |ref|) against the golden logits. */
const LOGITS_RTOL = 2e-3;

interface Tokens {
  prompt: number[];
  greedy: number[];
  greedy_min_margin: number;
  logits_max_abs: number;
}

let fx: Tokens;
let pageDir: string;
let rig: PageRig;

beforeAll(async () => {
  fx = JSON.parse(readFileSync(join(FIXTURE, 'tokens.json'), 'utf8')) as Tokens;
  pageDir = await buildPage();
  rig = await startRig(pageDir, join(FIXTURE, '..')); // serves golden/<name>/ read-only, as it is in the repository
}, 180_000);

afterAll(async () => {
  await rig?.close();
  if (pageDir) rmSync(pageDir, { recursive: true, force: true });
});

describe('an INT4 checkpoint in headless Chromium', () => {
  it('WebGPU backend: the golden int4 fixture loads by URL and the page generates its greedy continuation', async () => {
    expect(fx.greedy_min_margin).toBeGreaterThan(2 * LOGITS_RTOL * Math.max(1, fx.logits_max_abs));
    const q = new URLSearchParams({
      model: `${rig.models.url}/int4/`,
      'prompt-tokens': fx.prompt.join(','),
      'max-tokens': String(fx.greedy.length),
      temperature: '0',
      'ignore-eos': '1',
      backend: 'webgpu',
    });
    const context = await rig.browser.newContext(); // fresh profile: empty OPFS, so the weights come by URL
    try {
      const { page, logs } = await openWatchedPage(context);
      await page.goto(`${rig.page.url}/?${q}`);
      const res = await waitForResult(page);
      expect(res.error, logs.join('\n')).toBeUndefined();
      expect(await page.textContent('#info-adapter')).toMatch(/swiftshader/i); // the GPU engine, not the CPU backend
      expect(await page.textContent('#info-tokenizer')).toMatch(/^none/); // the fixture has none: token ids in and out
      expect(res.tokens).toEqual(fx.greedy);
      expect(res.stats).toMatchObject({ promptTokens: fx.prompt.length, generatedTokens: fx.greedy.length, finishReason: 'length' });
      // the weights came over HTTP Range from the fixture folder; nothing else in it (taps, logits) was fetched
      const reqs = rig.models.requests.filter((r) => r.path.startsWith('/int4/'));
      expect(reqs.some((r) => r.path === '/int4/model.safetensors' && r.status === 206)).toBe(true);
      expect(reqs.filter((r) => /taps|logits|tokens/.test(r.path))).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
