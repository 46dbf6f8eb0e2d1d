/**
 * The demo page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core): built with Vite,
 * served from one local server, loading a toy checkpoint by URL from another (HTTP Range + CORS). The page must
 * stream tokens into #output, report {"tokens", "stats"} in #result, produce the tokens the Node engine produces
 * for the same checkpoint, and, after a reload, load the weights from its OPFS cache without downloading them.
 * The cache never serves a wrong model: a checkpoint replaced at the same URL (after an interrupted load, after a
 * complete one, or during one) gives the new version's tokens, and failures (404, an HTML page, a timeout, a bad
 * parameter) are reported in data-error by name and never cached.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTextModel, type Backend } from '../../src/engine/text-model.js';
import { createGpu, type GpuContext } from '../../src/gpu/device.js';
import { folderFiles } from '../../src/model/node-checkpoint.js';
import { writeToyCheckpoint } from '../../src/model/toy.js';
import type { BrowserContext } from 'playwright-core';
import { buildPage, openWatchedPage, startRig, waitForResult, type PageRig, type RunResult } from './helpers/page.js';
import { startStaticServer, type StaticServer } from './helpers/static-server.js';

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
async function nodeGreedy(backend: Backend, dir = join(tmp, 'models', 'small')): Promise<number[]> {
  let gpu: GpuContext | undefined;
  if (backend === 'webgpu') gpu = await createGpu({ adapter: 'swiftshader' }); // the browser's adapter is SwiftShader too
  const model = await loadTextModel(folderFiles(dir), { backend, gpu });
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
    const { page, logs } = await openWatchedPage(context);
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

    // reload: the same run, with the checkpoint read from OPFS: each cached file is revalidated with one byte
    // (bytes=0-0), absent optional files are asked again (404: never cached), and no weight is downloaded;
    // with warmup=1 (an untimed generation first) on the WebGPU run
    const mark = rig.models.requests.length;
    if (backend === 'webgpu') await page.goto(`${pageUrl(backend)}&warmup=1`);
    else await page.reload();
    const second = await waitForResult(page);
    expect(second.error, logs.join('\n')).toBeUndefined();
    expect(second.tokens).toEqual(want);
    if (backend === 'webgpu') {
      expect(second.warmup?.pipelineCompileMs).toBeGreaterThanOrEqual(0);
      expect(second.warmup?.ttftMs).toBeGreaterThanOrEqual(second.warmup!.pipelineCompileMs!);
    }
    const secondLoad = rig.models.requests.slice(mark);
    expect(secondLoad.filter((r) => r.path.endsWith('.safetensors'))).toEqual([{ method: 'GET', path: '/small/model.safetensors', range: 'bytes=0-0', status: 206, bytes: 1 }]);
    expect(secondLoad.filter((r) => r.range !== 'bytes=0-0' && r.status !== 404)).toEqual([]);
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

  it('one click: the demo model, served by the page itself, loads and writes indented Python', async () => {
    const context = await rig.browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${rig.page.url}/`);
      await page.click('#load-demo');
      await page.waitForFunction(() => /generated/.test(document.getElementById('final-stats')?.textContent ?? ''), undefined, { timeout: 240_000 });
      expect(await page.textContent('#info-tokenizer')).toBe('yes');
      const out = (await page.textContent('#output')) ?? '';
      expect(out, out).toMatch(/\n {4}\S/); // indentation
      expect(out, out).toMatch(/\b(def|return|if|for|import|self|in)\b/); // Python keywords
      // the checkpoint came from the page's own origin
      expect(rig.page.requests.some((r) => r.path === '/demo/model.safetensors' && r.status === 206)).toBe(true);
    } finally {
      await context.close();
    }
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

/** Loads `url` in a page of `context` and returns what the page reported. */
async function runPage(context: BrowserContext, url: string): Promise<RunResult> {
  const page = await context.newPage();
  try {
    await page.goto(url);
    return await waitForResult(page);
  } finally {
    await page.close();
  }
}

describe('the OPFS cache cannot serve a wrong model; failures are named and never cached', () => {
  let root: string;
  let server: StaticServer;
  let spa: StaticServer;
  const versions: Record<'A' | 'B', { dir: string; tokens: number[] }> = { A: { dir: '', tokens: [] }, B: { dir: '', tokens: [] } };
  /** Stops the first load of version A halfway through model.safetensors (once this many bytes were served). */
  let interrupt = false;
  let servedBeforeInterrupt = 0;
  /** Replaces the checkpoint with this version when the next weight range (after the probe) is asked for. */
  let swapOnRange: 'A' | 'B' | undefined;

  /** Copies a version's files over the served folder `name` (new mtime: new ETag and Last-Modified). */
  const install = (v: 'A' | 'B', name: string, base = join(root, 'served')): void => {
    mkdirSync(join(base, name), { recursive: true });
    for (const f of readdirSync(versions[v].dir)) copyFileSync(join(versions[v].dir, f), join(base, name, f));
  };
  const url = (srv: StaticServer, name: string, extra: Record<string, string> = {}): string => {
    const q = new URLSearchParams({ model: `${srv.url}/${name}/`, 'prompt-tokens': PROMPT.join(','), 'max-tokens': String(MAX_TOKENS), temperature: '0', 'ignore-eos': '1', backend: 'cpu', ...extra });
    return `${rig.page.url}/?${q}`;
  };

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'webmoe-versions-'));
    // two versions of one checkpoint with identical file sizes: only the validators tell them apart
    for (const [v, seed] of [['A', 1], ['B', 2]] as const) {
      versions[v].dir = join(root, v);
      await writeToyCheckpoint('small', versions[v].dir, { seed });
      versions[v].tokens = await nodeGreedy('cpu', versions[v].dir);
    }
    mkdirSync(join(root, 'served'));
    mkdirSync(join(root, 'spa'));
    server = await startStaticServer(join(root, 'served'), {
      cors: true,
      hook: (req, res, path) => {
        if (path.startsWith('/hang/')) return true; // accepts, never answers
        const [, from, to] = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '') ?? [];
        const start = Number(from ?? 0);
        if (interrupt && path === '/m/model.safetensors') {
          if (servedBeforeInterrupt > 4_000_000) {
            res.destroy(); // the connection drops: the load fails halfway, with half of A in the cache
            return true;
          }
          servedBeforeInterrupt += Number(to ?? 0) - start + 1;
        }
        if (swapOnRange && path === '/swap/model.safetensors' && start > 0) {
          install(swapOnRange, 'swap');
          swapOnRange = undefined;
        }
        return false;
      },
    });
    spa = await startStaticServer(join(root, 'spa'), { cors: true, spa: true });
  }, 300_000);

  afterAll(async () => {
    await server?.close();
    await spa?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('versions replaced at the same URL: after an interrupted load, after a complete one, and during one', async () => {
    expect(versions.A.tokens).not.toEqual(versions.B.tokens);
    const context = await rig.browser.newContext();
    try {
      // 1. version A, interrupted halfway: part of A is cached
      install('A', 'm');
      interrupt = true;
      const broken = await runPage(context, url(server, 'm'));
      interrupt = false;
      expect(broken.error).toMatch(/model\.safetensors/);
      expect(servedBeforeInterrupt).toBeGreaterThan(4_000_000); // of 7.9 MB
      // 2. version B at the same URL: B's tokens, nothing of A (they would mix into other tokens)
      install('B', 'm');
      const b = await runPage(context, url(server, 'm'));
      expect(b.error).toBeUndefined();
      expect(b.tokens).toEqual(versions.B.tokens);
      // 3. a reload is served from the cache: one byte per cached file to revalidate
      let mark = server.requests.length;
      const again = await runPage(context, url(server, 'm'));
      expect(again.tokens).toEqual(versions.B.tokens);
      expect(server.requests.slice(mark).filter((r) => r.path.endsWith('.safetensors')).map((r) => r.range)).toEqual(['bytes=0-0']);
      expect(again.loadLabel).toMatch(/from the OPFS cache/);
      // 4. A replaces the fully cached B: A's tokens, downloaded again
      install('A', 'm');
      mark = server.requests.length;
      const a = await runPage(context, url(server, 'm'));
      expect(a.tokens).toEqual(versions.A.tokens);
      expect(server.requests.slice(mark).some((r) => r.path === '/m/model.safetensors' && r.bytes > 100_000)).toBe(true);
      // 5. replaced during a load (after the first range of A): the load starts over and gives B's tokens
      install('A', 'swap');
      swapOnRange = 'B';
      const swapped = await runPage(context, url(server, 'swap'));
      expect(swapOnRange).toBeUndefined();
      expect(swapped.error).toBeUndefined();
      expect(swapped.tokens).toEqual(versions.B.tokens);
    } finally {
      await context.close();
    }
  });

  it('a 404 or an HTML page for config.json is an error by name and not cached; an HTML answer for the index is absent', async () => {
    const context = await rig.browser.newContext();
    try {
      const missing = await runPage(context, url(server, 'late'));
      expect(missing.error).toMatch(/^ConfigError: .*no config\.json/); // the class name, not a minified one
      const html = await runPage(context, url(spa, 'late'));
      expect(html.error).toMatch(/^FormatError: .*late\/config\.json: the server answered an HTML page \(content-type text\/html\)/);
      // the checkpoint appears at both URLs: both load (the dev-server-like one answers HTML for the index)
      install('A', 'late');
      install('A', 'late', join(root, 'spa'));
      expect((await runPage(context, url(server, 'late'))).tokens).toEqual(versions.A.tokens);
      const fromSpa = await runPage(context, url(spa, 'late'));
      expect(fromSpa.error).toBeUndefined();
      expect(fromSpa.tokens).toEqual(versions.A.tokens);
    } finally {
      await context.close();
    }
  });

  it('bad parameters and a server that never answers are data-error naming the parameter or the timeout', async () => {
    const context = await rig.browser.newContext();
    try {
      expect((await runPage(context, url(server, 'm', { temperature: 'abc' }))).error).toBe("InputError: URL parameter temperature must be a number >= 0, got 'abc'");
      expect((await runPage(context, url(server, 'm', { 'max-tokens': '-3' }))).error).toBe("InputError: URL parameter max-tokens must be an integer >= 0, got '-3'");
      const t0 = Date.now();
      const hung = await runPage(context, url(server, 'hang', { 'connect-timeout': '0.3' }));
      expect(hung.error).toMatch(/^HttpTimeoutError: .*\/hang\/config\.json: no response within 0\.3 s/);
      expect(Date.now() - t0).toBeLessThan(20_000);
    } finally {
      await context.close();
    }
  });
});
