/**
 * The demo page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core): built with Vite,
 * served from one local server, loading a toy checkpoint by URL from another (HTTP Range + CORS). The page must
 * stream tokens into #output, report {"tokens", "stats"} in #result, produce the tokens the Node engine produces
 * for the same checkpoint, and, after a reload, load the weights from its OPFS cache without downloading them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTextModel, type Backend } from '../../src/engine/text-model.js';
import { createGpu, type GpuContext } from '../../src/gpu/device.js';
import { folderFiles } from '../../src/model/node-checkpoint.js';
import { writeToyCheckpoint } from '../../src/model/toy.js';
import { buildPage, startRig, waitForResult, watchOutput, type PageRig } from './helpers/page.js';

const PROMPT = [79, 110, 99, 101, 32, 117, 112, 111, 110]; // "Once upon" as byte tokens
const MAX_TOKENS = 16;

let tmp: string;
let pageDir: string;
let rig: PageRig;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'webmoe-web-'));
  await writeToyCheckpoint('small', join(tmp, 'models', 'small'), { seed: 0 });
  pageDir = await buildPage();
  rig = await startRig(pageDir, join(tmp, 'models'));
}, 180_000);

afterAll(async () => {
  await rig?.close();
  rmSync(tmp, { recursive: true, force: true });
  if (pageDir) rmSync(pageDir, { recursive: true, force: true });
});

/** What the Node engine generates for the same checkpoint, prompt and settings. */
async function nodeGreedy(backend: Backend): Promise<number[]> {
  let gpu: GpuContext | undefined;
  if (backend === 'webgpu') gpu = await createGpu({ adapter: 'swiftshader' }); // the browser's adapter is SwiftShader too
  const model = await loadTextModel(folderFiles(join(tmp, 'models', 'small')), { backend, gpu });
  try {
    for await (const ev of model.generate(PROMPT, { maxTokens: MAX_TOKENS, temperature: 0, ignoreEos: true })) if (ev.type === 'done') return ev.tokens;
    throw new Error('no done event');
  } finally {
    await model.close();
    gpu?.destroy();
  }
}

function pageUrl(backend: Backend, model = `${rig.models.url}/small/`): string {
  const q = new URLSearchParams({ model, 'prompt-tokens': PROMPT.join(','), 'max-tokens': String(MAX_TOKENS), temperature: '0', 'ignore-eos': '1', backend });
  return `${rig.page.url}/?${q}`;
}

async function loadStreamReload(backend: Backend): Promise<void> {
  const want = await nodeGreedy(backend);
  expect(want).toHaveLength(MAX_TOKENS);
  const context = await rig.browser.newContext(); // fresh profile: empty OPFS
  try {
    const page = await context.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(m.text()));
    page.on('pageerror', (e) => logs.push(String(e)));
    await watchOutput(page);
    const before = rig.models.requests.length;
    await page.goto(pageUrl(backend));
    const first = await waitForResult(page);
    expect(first.error, logs.join('\n')).toBeUndefined();
    expect(first.tokens).toEqual(want);
    expect(first.stats).toMatchObject({ promptTokens: PROMPT.length, generatedTokens: MAX_TOKENS, finishReason: 'length' });
    // tokens were streamed into the page one by one, not written at the end
    expect(first.outputUpdates).toBeGreaterThanOrEqual(MAX_TOKENS);
    const firstLoad = rig.models.requests.slice(before);
    expect(firstLoad.some((r) => r.path === '/small/model.safetensors' && r.status === 206)).toBe(true);

    // reload: the same run, with the checkpoint read from OPFS: no request for the weights (nor anything else)
    const mark = rig.models.requests.length;
    await page.reload();
    const second = await waitForResult(page);
    expect(second.error, logs.join('\n')).toBeUndefined();
    expect(second.tokens).toEqual(want);
    const secondLoad = rig.models.requests.slice(mark);
    expect(secondLoad.filter((r) => r.path.endsWith('.safetensors'))).toEqual([]);
    expect(secondLoad).toEqual([]);
    expect(second.loadLabel).toMatch(/from the OPFS cache/);
  } finally {
    await context.close();
  }
}

describe('the web page in headless Chromium', () => {
  it('CPU backend in the worker: loads a toy checkpoint by URL, streams the Node tokens, reloads from the OPFS cache', async () => {
    await loadStreamReload('cpu');
  });

  it('WebGPU backend: loads a toy checkpoint by URL, streams the Node engine’s greedy tokens, reloads from the OPFS cache', async () => {
    await loadStreamReload('webgpu');
  });

  it('interactive: pick a checkpoint folder, Generate streams text, Stop cancels within a step', async () => {
    const context = await rig.browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${rig.page.url}/`);
      await page.selectOption('#backend', 'webgpu');
      await page.setInputFiles('#model-folder', join(tmp, 'models', 'small'));
      await page.waitForFunction(() => document.getElementById('info-name')?.textContent === 'small', undefined, { timeout: 240_000 });
      expect(await page.textContent('#info-tokenizer')).toBe('yes');
      expect(await page.textContent('#info-adapter')).toMatch(/swiftshader/i);
      expect(await page.textContent('#load-label')).toMatch(/from disk/);
      await page.fill('#prompt', 'Once upon a time');
      await page.fill('#max-tokens', '4000');
      await page.check('#ignore-eos');
      await page.click('#generate');
      // wait for a few streamed tokens, then Stop
      await page.waitForFunction(() => /^[5-9]\d* tokens|^\d{2,} tokens/.test(document.getElementById('live-stats')?.textContent ?? ''), undefined, { timeout: 240_000 });
      await page.click('#stop');
      await page.waitForFunction(() => (document.getElementById('final-stats')?.textContent ?? '').includes('(abort)'), undefined, { timeout: 60_000 });
      const stats = (await page.textContent('#final-stats')) ?? '';
      const generated = Number(/\+ (\d+) generated/.exec(stats)?.[1]);
      expect(generated).toBeGreaterThanOrEqual(5);
      expect(generated).toBeLessThan(4000);
      expect(await page.isDisabled('#stop')).toBe(true);
      expect(await page.isEnabled('#generate')).toBe(true);
      expect(((await page.textContent('#output')) ?? '').length).toBeGreaterThan(0);
    } finally {
      await context.close();
    }
  });

  it('a URL with no checkpoint sets only data-error, naming what is missing', async () => {
    const context = await rig.browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(pageUrl('cpu', `${rig.models.url}/nothing-here/`));
      const res = await waitForResult(page);
      expect(res.error).toMatch(/config\.json/);
      expect(await page.getAttribute('#result', 'data-done')).toBeNull();
    } finally {
      await context.close();
    }
  });
});
