/**
 * Expert offloading in the page (issue #16, the browser half), in headless Chromium (SwiftShader WebGPU): the
 * vendored golden `small` fixture (E = 32 routed experts, K = 8, 2 MoE layers, FP8; a copy) served by URL (HTTP
 * Range + CORS, from a second origin), in one browser context (one OPFS), page loads in a row:
 *
 *   1. all-resident, greedy: the fixture's greedy continuation (the first N margins exceed twice the GPU logits
 *      tolerance, as in int4.browser.test.ts), and the session's GPU bytes, from which the budgets are computed as
 *      test/engine/offload.gpu.test.ts does (the resident part + S slots per MoE layer, S = 50 % and 25 % of E);
 *   2. Clear cache (the page's button): the resident load cached every byte of the file, experts included, so the
 *      offloaded runs would otherwise never touch the network for experts;
 *   3. gpu-memory at 50 %: the same tokens (S1: offloading is exact), GPU bytes within the budget, 16 slots per
 *      layer, experts streamed (misses > 0), fetched by HTTP Range into the OPFS expert store;
 *   4. gpu-memory at 25 % (S = K = 8): the same tokens, within the budget, and its experts come from the store:
 *      fewer Range requests and bytes for expert tensors than run 3 (none, as every expert it needs was stored);
 *   5. the store on disk: webmoe-cache/experts/<key>/ holds version.json, present.bin and one layer file per MoE
 *      layer, expert-major (whole experts), and the file's OPFS copy holds none of the experts' bytes;
 *   6. a new version of the file at the same URL (a new mtime: new ETag and Last-Modified): the store is wiped
 *      and refilled from the network, never served;
 *   7. Clear cache removes the store with the rest;
 *   8. a budget below the minimum: the engine's typed error, naming the minimum, in data-error;
 *   9. an OPFS quota too small for one expert (Chromium's quota override): a StorageQuotaError naming the bytes.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { offloadFixedBytes, slotBytes, type OffloadStats } from '../../src/engine/expert-offload.js';
import type { Checkpoint } from '../../src/model/checkpoint.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { checkpointExpertSource } from '../../src/offload/expert-source.js';
import type { ExpertStoreStats } from '../../web/opfs-experts.js';
import type { LoadedInfo } from '../../web/protocol.js';
import { golden } from '../format/shared-paths.js';
import { buildPage, openWatchedPage, startRig, type PageRig } from './helpers/page.js';
import { opfsFiles, opfsText, resultJson } from './helpers/opfs.js';
import type { LoggedRequest } from './helpers/static-server.js';

const FIXTURE = golden('small');
const FILE = '/small/model.safetensors';
/** docs/model.md §8.3: |gpu − ref| <= 2e-3 · max(1, max |ref|) against the golden logits. */
const LOGITS_RTOL = 2e-3;
const N = 12;
const CTX = 64;
/** The WebGPU default maxStorageBufferBindingSize: the small fixture's stacks never need more than one shard. */
const MAX_BINDING = 128 * 2 ** 20;

interface Tokens {
  prompt: number[];
  greedy: number[];
  greedy_margins: number[];
  logits_max_abs: number;
}

interface Run {
  error?: string;
  tokens: number[];
  stats: { gpuBytes: number; generatedTokens: number; offload?: OffloadStats };
  loaded: LoadedInfo;
  experts?: ExpertStoreStats;
}

let fx: Tokens;
let ckpt: Checkpoint;
let tmp: string;
let pageDir: string;
let rig: PageRig;
/** [start, end) of every routed-expert tensor in the file */
let expertRanges: [number, number][];

beforeAll(async () => {
  fx = JSON.parse(readFileSync(join(FIXTURE, 'tokens.json'), 'utf8')) as Tokens;
  ckpt = await openCheckpointDir(FIXTURE);
  expertRanges = [...ckpt.tensors.values()].filter((t) => /\.mlp\.experts\.\d+\./.test(t.name)).map((t) => [t.offset, t.offset + t.byteLength]);
  // a copy, so a new version can be made (a new mtime: new ETag and Last-Modified, the same bytes)
  tmp = mkdtempSync(join(tmpdir(), 'webmoe-offload-'));
  cpSync(FIXTURE, join(tmp, 'small'), { recursive: true });
  pageDir = await buildPage();
  rig = await startRig(pageDir, tmp);
}, 180_000);

afterAll(async () => {
  await rig?.close();
  await ckpt?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  if (pageDir) rmSync(pageDir, { recursive: true, force: true });
});

/** The budget that leaves `share` of every MoE layer's routed experts resident (test/engine/offload.gpu.test.ts). */
function budgetFor(residentGpuBytes: number, share: number): { bytes: number; slots: number } {
  const c = ckpt.config;
  const shape = checkpointExpertSource(ckpt).shape;
  const layers = c.derived.moeLayers.filter(Boolean).length;
  const allSlots = layers * slotBytes(shape, c, c.n_routed_experts, MAX_BINDING);
  const chunk = Math.min(128, CTX);
  const fixed = residentGpuBytes - allSlots + offloadFixedBytes(c, chunk);
  const slots = Math.max(c.num_experts_per_tok, Math.floor(share * c.n_routed_experts));
  return { bytes: fixed + layers * slotBytes(shape, c, slots, MAX_BINDING), slots };
}

/** Requests of `reqs` that read bytes of routed-expert tensors, and those bytes. */
function expertReads(reqs: LoggedRequest[]): { requests: number; bytes: number } {
  let requests = 0;
  let bytes = 0;
  for (const r of reqs) {
    const m = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? '');
    if (r.path !== FILE || !m || r.status !== 206) continue;
    const [a, b] = [Number(m[1]), Number(m[2]) + 1];
    const overlap = expertRanges.reduce((n, [s, e]) => n + Math.max(0, Math.min(b, e) - Math.max(a, s)), 0);
    if (overlap > 0) {
      requests++;
      bytes += overlap;
    }
  }
  return { requests, bytes };
}

describe('expert offloading in headless Chromium', () => {
  it('budgets of 50 % and 25 % of the experts give the all-resident tokens within the budget; experts come from the OPFS store the second time', async () => {
    // the first N greedy margins exceed twice the tolerance (the fixture's smallest, later on, does not)
    expect(Math.min(...fx.greedy_margins.slice(0, N))).toBeGreaterThan(2 * LOGITS_RTOL * Math.max(1, fx.logits_max_abs));
    const want = fx.greedy.slice(0, N);
    const context = await rig.browser.newContext(); // fresh profile: empty OPFS
    const timings: string[] = [];
    try {
      const { page, logs } = await openWatchedPage(context);
      const run = async (label: string, gpuMemory?: number, maxTokens = N): Promise<{ res: Run; reqs: LoggedRequest[] }> => {
        const t0 = performance.now();
        const mark = rig.models.requests.length;
        const q = new URLSearchParams({
          model: `${rig.models.url}/small/`,
          'prompt-tokens': fx.prompt.join(','),
          'max-tokens': String(maxTokens),
          temperature: '0',
          'ignore-eos': '1',
          backend: 'webgpu',
          'ctx-size': String(CTX),
          ...(gpuMemory !== undefined ? { 'gpu-memory': String(gpuMemory / 2 ** 20) } : {}),
        });
        await page.goto(`${rig.page.url}/?${q}`);
        const res = (await resultJson(page)) as unknown as Run;
        timings.push(`${label} ${((performance.now() - t0) / 1000).toFixed(1)} s [load ${((res.loaded?.loadMs ?? 0) / 1000).toFixed(1)} s, generate ${(((res.stats as { totalMs?: number } | undefined)?.totalMs ?? 0) / 1000).toFixed(1)} s]`);
        return { res, reqs: rig.models.requests.slice(mark) };
      };

      // 1. all-resident
      const resident = await run('resident');
      expect(resident.res.error, logs.join('\n')).toBeUndefined();
      expect(resident.res.tokens).toEqual(want);
      expect(resident.res.loaded.offload).toBeUndefined();
      const b50 = budgetFor(resident.res.loaded.gpuBytes, 0.5);
      const b25 = budgetFor(resident.res.loaded.gpuBytes, 0.25);

      // 2. an empty OPFS again, through the page's Clear cache
      await page.click('#clear-cache');
      await page.waitForFunction(() => document.getElementById('status')?.textContent === 'cache cleared');

      // 3. 50 %: experts streamed, fetched by HTTP Range into the store
      const half = await run('50 %', b50.bytes);
      expect(half.res.error, logs.join('\n')).toBeUndefined();
      expect(half.res.tokens).toEqual(want);
      const o50 = half.res.loaded.offload!;
      expect(o50).toMatchObject({ budgetBytes: b50.bytes, slotsPerLayer: b50.slots, experts: 32, streaming: true, source: 'the OPFS expert store' });
      expect(half.res.loaded.gpuBytes).toBeLessThanOrEqual(b50.bytes);
      expect(half.res.stats.gpuBytes).toBeLessThanOrEqual(b50.bytes);
      expect(half.res.stats.offload!.misses).toBeGreaterThan(0);
      expect(half.res.experts).toMatchObject({ mode: 'opfs' });
      expect(half.res.experts!.fetches).toBeGreaterThan(0);
      const net50 = expertReads(half.reqs);
      expect(net50.requests).toBeGreaterThan(0);

      // 4. 25 %: the same experts, now read from the store
      const quarter = await run('25 %', b25.bytes);
      expect(quarter.res.error, logs.join('\n')).toBeUndefined();
      expect(quarter.res.tokens).toEqual(want);
      expect(quarter.res.loaded.offload).toMatchObject({ slotsPerLayer: 8, streaming: true, source: 'the OPFS expert store' });
      expect(quarter.res.loaded.gpuBytes).toBeLessThanOrEqual(b25.bytes);
      expect(quarter.res.stats.gpuBytes).toBeLessThanOrEqual(b25.bytes);
      expect(quarter.res.stats.offload!.misses).toBeGreaterThan(0);
      const net25 = expertReads(quarter.reqs);
      expect(net25.requests).toBeLessThan(net50.requests);
      expect(net25.bytes).toBeLessThan(net50.bytes);
      expect(quarter.res.experts!.storeReads).toBeGreaterThan(0);
      const text = (await page.textContent('#offload-stats')) ?? '';
      expect(text).toMatch(/^experts: 8\/32 slots per layer, hit rate [\d.]+ \(\d+ late, \d+ misses\), [\d.]+ MiB streamed, stall \d+ ms/);
      expect(text).toMatch(/expert store: \d+ read from OPFS/);

      // 5. the store on disk (the page without a model: no worker holds its handles), then Clear cache removes it
      await page.goto(`${rig.page.url}/`);
      const files = await opfsFiles(page);
      const store = Object.keys(files).filter((p) => p.startsWith('webmoe-cache/experts/'));
      const dir = store[0]!.split('/').slice(0, 3).join('/');
      expect(store.sort()).toEqual([`${dir}/layer-1.bin`, `${dir}/layer-2.bin`, `${dir}/present.bin`, `${dir}/version.json`]);
      const total = half.res.stats.offload!.expertBytes;
      for (const l of [1, 2]) {
        const size = files[`${dir}/layer-${l}.bin`]!;
        expect(size % total).toBe(0); // whole experts, expert-major
        expect(size).toBeLessThanOrEqual(32 * total);
        expect(size).toBeGreaterThanOrEqual(b50.slots * total); // the slots filled at load at least
      }
      expect(files[`${dir}/present.bin`]).toBe(2 * 4); // one bit per expert: 2 layers x 32 / 8
      // the experts are not kept twice: the file's OPFS copy (opfs-files.ts) holds no byte of them
      const copy = Object.keys(files).find((p) => p.endsWith('/model.safetensors.meta.json'));
      const ranges = (JSON.parse(await opfsText(page, copy!)) as { ranges: [number, number][] }).ranges;
      expect(ranges.length).toBeGreaterThan(0);
      for (const [a, b] of ranges) expect(expertRanges.filter(([s, e]) => a < e && s < b)).toEqual([]);

      // 6. a new version of the file at the same URL (new ETag and Last-Modified): the store is wiped, not served.
      // A load that generates nothing (max-tokens 0: no pipelines to compile) fills the 8 slots of each layer:
      // all 16 experts come from the network again, and only they are present
      const later = new Date(Date.now() + 60_000);
      utimesSync(join(tmp, 'small', 'model.safetensors'), later, later);
      const changed = await run('new version', b25.bytes, 0);
      expect(changed.res.error, logs.join('\n')).toBeUndefined();
      expect(changed.res.tokens).toEqual([]);
      expect(changed.res.experts).toMatchObject({ mode: 'opfs', storeReads: 0, fetches: 16, present: 16 });
      expect(expertReads(changed.reqs).requests).toBeGreaterThan(0);

      // 7. Clear cache removes the store with the rest
      await page.goto(`${rig.page.url}/`);
      await page.click('#clear-cache');
      await page.waitForFunction(() => document.getElementById('status')?.textContent === 'cache cleared');
      expect(Object.keys(await opfsFiles(page))).toEqual([]);

      // 8. below the minimum: the engine's typed error, naming it
      const tiny = await run('too small', 2 ** 20);
      expect(tiny.res.error).toMatch(/^InputError: --gpu-memory 1\.00 MiB is below this model's minimum of [\d.]+ MiB/);

      // 9. an origin whose OPFS quota holds the file's copy (at most the file's size) but not one expert more
      // (Chromium's quota override): a typed error naming the bytes
      const cdp = await context.newCDPSession(page);
      await cdp.send('Storage.overrideQuotaForOrigin', { origin: rig.page.url, quotaSize: statSync(join(FIXTURE, 'model.safetensors')).size + 32 * 1024 });
      const full = await run('quota', b50.bytes);
      expect(full.res.error).toMatch(/^StorageQuotaError: .*OPFS refused to store layer 1 expert 0 \(bytes 0-\d+ of layer-1\.bin\): the origin's storage is full/);
      expect(full.res.error).toMatch(/It needs 0\.09 MiB more for that, 0\.09 MiB per expert, up to 6\.00 MiB for all 32 experts of the 2 MoE layers/);
      await cdp.send('Storage.overrideQuotaForOrigin', { origin: rig.page.url });

      console.log(
        `[chromium] small, ${N} tokens: ${timings.join(', ')}; 50 %: ${expertsLine(half.res)}, ${net50.requests} expert Range requests (${kib(net50.bytes)}); ` +
          `25 %: ${expertsLine(quarter.res)}, ${net25.requests} expert Range requests (${kib(net25.bytes)})`,
      );
    } finally {
      await context.close();
    }
  });
});

function kib(b: number): string {
  return `${(b / 1024).toFixed(0)} KiB`;
}

function expertsLine(r: Run): string {
  const o = r.stats.offload!;
  const e = r.experts!;
  return (
    `S ${o.slotsPerLayer}/${o.experts}, hit rate ${o.hitRate.toFixed(3)}, ${o.misses} misses, streamed ${kib(o.bytesStreamed)}, stall ${o.stallMs.toFixed(0)} ms; ` +
    `store: ${e.storeReads} reads (${kib(e.storeBytes)}), ${e.fetches} fetched (${kib(e.fetchBytes)}), ${e.present}/${e.capacity} present`
  );
}
