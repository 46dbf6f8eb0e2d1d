/**
 * The browser Bench view (web/bench.html) in headless Chromium: built with Vite from the same root as the demo
 * page, it runs the kernel suite on the browser's adapter and must produce a report that matches the schema,
 * marked as a browser run. Checks the format only, never speed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { build } from 'vite';
import { validateReport, type BenchReport } from '../../bench/schema.js';
import { CHROMIUM, CHROMIUM_ARGS, WEB_ROOT } from '../web/helpers/page.js';
import { startStaticServer, type StaticServer } from '../web/helpers/static-server.js';

let outDir: string;
let server: StaticServer;
let browser: Browser;

beforeAll(async () => {
  outDir = mkdtempSync(join(tmpdir(), 'webmoe-bench-page-'));
  // the demo's config, with bench.html as the entry (web/vite.config.ts builds index.html by default)
  await build({
    root: WEB_ROOT,
    configFile: join(WEB_ROOT, 'vite.config.ts'),
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true, rollupOptions: { input: { bench: join(WEB_ROOT, 'bench.html') } } },
  });
  server = await startStaticServer(outDir);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

describe('browser Bench view', () => {
  it('runs a kernel subset on the browser adapter and reports schema-valid JSON', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${server.url}/bench.html?only=${encodeURIComponent('small q_a')}&repeats=2&stream-mib=8&autorun=1`);
      await page.waitForSelector('#result[data-done], #result[data-error]', { state: 'attached', timeout: 240_000 });
      const { error, text } = await page.evaluate(() => {
        const r = document.getElementById('result')!;
        return { error: r.dataset.error, text: r.textContent ?? '' };
      });
      expect(error).toBeUndefined();
      const report = JSON.parse(text) as BenchReport;
      expect(validateReport(report)).toEqual([]);
      expect(report.adapter.runtime).toBe('browser');
      expect(report.adapter.userAgent).toMatch(/Chrom/);
      const kernels = new Set(report.kernels.map((r) => `${r.kernel} ${r.variant}`));
      expect(kernels).toContain('fp8_gemv naive');
      expect(kernels).toContain('fp8_gemv optimised');
      for (const r of report.kernels) expect(r.inner * r.time_ms).toBeGreaterThan(0);
      // the report is shown in the page too
      expect(await page.locator('#report').getAttribute('srcdoc')).toContain('<svg');
    } finally {
      await page.close();
    }
  }, 300_000);
});
