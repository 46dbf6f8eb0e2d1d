/**
 * Browser-test plumbing for what the page keeps and reports beyond tokens: the whole `#result` JSON of a
 * URL-driven run (`loaded`, `experts`, ...), and a listing of the origin's OPFS (path -> size), read from the page's
 * main thread (open the page without a model first, so no worker holds a file's sync access handle).
 */
import type { Page } from 'playwright-core';

/** Waits until #result has data-done or data-error; returns the parsed JSON, or {error}. */
export async function resultJson(page: Page, timeoutMs = 240_000): Promise<Record<string, unknown> & { error?: string }> {
  await page.waitForSelector('#result[data-done], #result[data-error]', { state: 'attached', timeout: timeoutMs });
  return page.evaluate(() => {
    const r = document.getElementById('result')!;
    if (r.dataset.error !== undefined) return { error: r.dataset.error };
    return JSON.parse(r.textContent ?? '{}') as Record<string, unknown>;
  });
}

/** Every file under the OPFS root of the page's origin, by path ('webmoe-cache/experts/<key>/layer-1.bin'), with its size. */
export async function opfsFiles(page: Page): Promise<Record<string, number>> {
  return page.evaluate(async () => {
    const out: Record<string, number> = {};
    type Dir = FileSystemDirectoryHandle & { entries(): AsyncIterable<[string, FileSystemHandle]> };
    const walk = async (dir: Dir, prefix: string): Promise<void> => {
      for await (const [name, h] of dir.entries()) {
        if (h.kind === 'directory') await walk(h as Dir, `${prefix}${name}/`);
        else out[`${prefix}${name}`] = (await (h as FileSystemFileHandle).getFile()).size;
      }
    };
    await walk((await navigator.storage.getDirectory()) as Dir, '');
    return out;
  });
}

/** The text of an OPFS file by path (as opfsFiles lists it). */
export async function opfsText(page: Page, path: string): Promise<string> {
  return page.evaluate(async (p) => {
    const parts = p.split('/');
    let dir = await navigator.storage.getDirectory();
    for (const d of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(d);
    return (await (await dir.getFileHandle(parts[parts.length - 1]!)).getFile()).text();
  }, path);
}
