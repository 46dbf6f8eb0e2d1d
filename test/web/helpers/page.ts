/**
 * Browser-test plumbing: build the page with Vite into a temporary folder, serve it and a checkpoint folder
 * from two local servers (two origins, so CORS is exercised), and drive headless Chromium with playwright-core.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { build } from 'vite';
import { startStaticServer, type StaticServer } from './static-server.js';

export const WEB_ROOT = fileURLToPath(new URL('../../../web/', import.meta.url));
export const CHROMIUM = process.env.WEBMOE_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** vite build of web/ into a fresh temporary folder; returns the folder. */
export async function buildPage(): Promise<string> {
  const outDir = mkdtempSync(join(tmpdir(), 'webmoe-page-'));
  await build({ root: WEB_ROOT, configFile: join(WEB_ROOT, 'vite.config.ts'), logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  return outDir;
}

export interface PageRig {
  page: StaticServer;
  models: StaticServer;
  browser: Browser;
  close(): Promise<void>;
}

export async function startRig(pageDir: string, modelsDir: string): Promise<PageRig> {
  const page = await startStaticServer(pageDir);
  const models = await startStaticServer(modelsDir, { cors: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  return {
    page,
    models,
    browser,
    async close() {
      await browser.close();
      await page.close();
      await models.close();
    },
  };
}

export interface RunResult {
  tokens?: number[];
  stats?: Record<string, unknown>;
  /** With `warmup=1`: the untimed first generation (`ttftMs`, `totalMs`, `pipelineCompileMs`). */
  warmup?: Record<string, number>;
  /** The page's LoadedInfo (web/protocol.ts) */
  loaded?: Record<string, unknown>;
  error?: string;
  /** How many times #output changed while generating (one per streamed token). */
  outputUpdates: number;
  loadLabel: string;
}

/** Counts #output mutations from the start of the page, to check tokens arrive one by one. */
/**
 * A new page in `context` with its console messages and page errors collected into `logs` (for failure messages)
 * and its output watched (watchOutput).
 */
export async function openWatchedPage(context: BrowserContext): Promise<{ page: Page; logs: string[] }> {
  const page = await context.newPage();
  const logs: string[] = [];
  page.on('console', (m) => logs.push(m.text()));
  page.on('pageerror', (e) => logs.push(String(e)));
  await watchOutput(page);
  return { page, logs };
}

export async function watchOutput(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const w = window as unknown as { __outputUpdates: number };
    w.__outputUpdates = 0;
    document.addEventListener('DOMContentLoaded', () => {
      const out = document.getElementById('output');
      if (out) new MutationObserver((list) => (w.__outputUpdates += list.length)).observe(out, { childList: true, characterData: true, subtree: true });
    });
  });
}

/** Waits until #result has data-done or data-error and returns what the page reported. */
export async function waitForResult(page: Page, timeoutMs = 240_000): Promise<RunResult> {
  await page.waitForSelector('#result[data-done], #result[data-error]', { state: 'attached', timeout: timeoutMs });
  return page.evaluate(() => {
    const r = document.getElementById('result')!;
    const outputUpdates = (window as unknown as { __outputUpdates?: number }).__outputUpdates ?? 0;
    const loadLabel = document.getElementById('load-label')?.textContent ?? '';
    if (r.dataset.error !== undefined) return { error: r.dataset.error, outputUpdates, loadLabel };
    const res = JSON.parse(r.textContent ?? '{}') as { tokens: number[]; stats: Record<string, unknown>; warmup?: Record<string, number>; loaded?: Record<string, unknown> };
    return { tokens: res.tokens, stats: res.stats, warmup: res.warmup, loaded: res.loaded, outputUpdates, loadLabel, error: undefined };
  });
}
