/**
 * `webmoe bench offload --page` (or `npx tsx bench/offload-page.ts [--offload-dir DIR] [--json FILE | --json -]
 * [--decode-tokens N] [--warmup-tokens N] [--adapter swiftshader]`): the real-files row of `webmoe bench offload`
 * (bench/offload.ts measureFiles) in the page, from OPFS (issue #16).
 *
 *   checkpoint  the files row's: `k2-layer` widths (hidden 7168, moe_intermediate 2048) with 64 routed experts,
 *               ~3 GB, written once by ensureFilesCheckpoint (the same folder as the Node row, reused)
 *   serving     the page built with Vite (test/web/helpers/page.ts) and the checkpoint folder, from two local
 *               static servers (two origins: CORS; HTTP Range, ETag, Last-Modified; every request logged)
 *   browser     headless Chromium (/usr/bin/chromium, or WEBMOE_CHROMIUM) with --enable-unsafe-webgpu (SwiftShader
 *               here), through playwright-core, on a persistent profile in a fresh folder under the OS temporary
 *               folder (removed afterwards), so OPFS persists between the two runs;
 *               --disable-gpu-shader-disk-cache, so the second run compiles its pipelines as the first did
 *   budget      the page's gpu-memory = the resident part + 25 % of the expert slots, sized in Node as the files
 *               row does (session.ts residentBytes with the page's session options, on the --adapter, default
 *               swiftshader: Chromium's driver), plus half an expert of slack so that a resident part a few bytes
 *               different in the browser still gives the same slot count (checked: the page reports its slots)
 *   runs        the page's URL-driven mode (web/main.ts) with step-stats=1: load, then one greedy generation of
 *               1 + warmupTokens + decodeTokens tokens after a prompt of a few token ids; the worker snapshots the
 *               session's OffloadStats and the expert store's counters before the generation and after every
 *               token, so the timed window is the last `decodeTokens` decode steps (the prefill and the first
 *               decode steps, which compile pipelines, left out) as in the Node row (warm 1, timed 4)
 *     run 1     a fresh profile: the resident weights and every expert come by HTTP Range; the experts are
 *               repacked into the OPFS expert store (web/opfs-experts.ts) as they arrive
 *     run 2     the browser closed and started again on the same profile, the same URL and prompt: the experts
 *               come from the OPFS store (sync access handles); expected: zero Range requests for expert bytes
 *   figures     per run, of the timed window and of the whole generation: tok/s, hit rate, misses, stall, bytes
 *               streamed, GB/s of the expert path per busy second (OffloadStats.uploadSeconds: wall time with at
 *               least one expert read or upload in flight), per wall second and per stall second; the store's
 *               counters (fetched by Range, repacked: write ms, read from OPFS: read ms); HTTP requests for expert
 *               bytes (from the server's log and the tensors' byte ranges); navigator.storage.estimate()
 * Greedy sampling. GB = 1e9 bytes.
 */
import { lstat, mkdtemp, readdir, rm, statfs } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { InputError, WebmoeError } from '../src/errors.js';
import { subtractOffloadStats, type OffloadStats } from '../src/engine/expert-offload.js';
import { residentBytes } from '../src/engine/session.js';
import type { GenerationStats } from '../src/engine/types.js';
import { ADAPTER_CHOICES, createGpu, type AdapterChoice } from '../src/gpu/device.js';
import { openCheckpointDir } from '../src/model/node-checkpoint.js';
import { checkpointExpertSource } from '../src/offload/expert-source.js';
import type { BenchCliOptions } from '../src/cli/bench.js';
import type { ExpertStoreStats } from '../web/opfs-experts.js';
import type { LoadedInfo, StepSnapshot } from '../web/protocol.js';
import { buildPage, CHROMIUM, CHROMIUM_ARGS } from '../test/web/helpers/page.js';
import { startStaticServer, type LoggedRequest, type StaticServer } from '../test/web/helpers/static-server.js';
import { budgetFor, ensureFilesCheckpoint, writeBenchReport, toyLine, toySummary, type ExpertPathRates, type FilesRowOptions, type ToySummary } from './offload.js';
import { intOption } from './options.js';

export const OFFLOAD_PAGE_SCHEMA = 'webmoe-bench-offload-page/1';

export interface OffloadPageOptions {
  /** The checkpoint (default: the files row's, in its default folder, kept). */
  files?: Pick<FilesRowOptions, 'config' | 'dir' | 'keep'>;
  seed?: number;
  /** Share of each MoE layer's experts that get slots (default 0.25). */
  share?: number;
  /** Prompt token ids (default 1,2,3,4). */
  promptTokens?: number[];
  /** Decode steps after the first token left out of the timed window (default 1: they compile pipelines). */
  warmupTokens?: number;
  /** Timed decode steps (default 6). */
  decodeTokens?: number;
  /** Adapter of the Node session that measures the resident part (default swiftshader, as Chromium's). */
  adapter?: AdapterChoice;
  /** Per page load (default 30 minutes). */
  pageTimeoutMs?: number;
  /** Keep the browser profile (default false: removed). */
  keepProfile?: boolean;
  onProgress?: (label: string) => void;
}

/** The expert store's counters (web/opfs-experts.ts ExpertStoreStats) over a stretch of time. */
export type StoreCounters = Pick<ExpertStoreStats, 'storeReads' | 'storeBytes' | 'fetches' | 'fetchBytes' | 'fetchMs' | 'writeMs' | 'readMs' | 'writes' | 'writeBytes'>;

/** The engine's expert path over a stretch of decode steps (or a generation), and the store's part in it. */
export interface ExpertPath extends ExpertPathRates {
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  lookups: number;
  store: StoreCounters;
}

export interface HttpCounts {
  requests: number;
  bytes: number;
  /** 206 answers that carried bytes of routed-expert tensors, and those bytes */
  expertRangeRequests: number;
  expertBytes: number;
  /** `Range: bytes=0-0` revalidations of cached files */
  revalidations: number;
}

export interface StorageEstimate {
  quota: number;
  usage: number;
}

export interface PageRun {
  run: number;
  what: string;
  /** from navigation to the page's result */
  wallSeconds: number;
  load: {
    seconds: number;
    gpuBytes: number;
    budgetBytes: number;
    slots: number;
    experts: number;
    source: string;
    networkBytes: number;
    cachedBytes: number;
    /** the store while the load filled the slots */
    store: StoreCounters;
  };
  tokens: number[];
  generation: Pick<GenerationStats, 'promptTokens' | 'generatedTokens' | 'ttftMs' | 'totalMs' | 'decodeTokensPerSecond'> & { expertPath: ExpertPath };
  /** the timed window: decode steps warmupTokens + 1 .. warmupTokens + decodeTokens */
  timed: ExpertPath & { fromToken: number };
  /** the store over the whole page load (load and generation) */
  store: StoreCounters & { mode: string; present: number; capacity: number };
  http: HttpCounts;
  /** navigator.storage.estimate() before and after the run (Chromium's own count; it may lag, see profileBytes) */
  storage: { before: StorageEstimate | null; after: StorageEstimate | null };
  /** the browser profile folder after the run (browser closed): bytes allocated on disk, and the files' lengths */
  profileBytes: { allocated: number; apparent: number };
}

export interface OffloadPageReport {
  schema: typeof OFFLOAD_PAGE_SCHEMA;
  browser: string;
  /** the page's adapter, as the worker describes it */
  adapter: string;
  checkpoint: { dir: string; kept: boolean; reusedFiles: boolean; writeSeconds: number; fileBytes: number; expertBytesTotal: number; toy: ToySummary };
  budget: { bytes: number; slots: number; share: number; residentBytes: number; chunk: number; slackBytes: number; sizedOn: string };
  options: { promptTokens: number[]; warmupTokens: number; decodeTokens: number; ctxSize: number; chromiumArgs: string[] };
  runs: PageRun[];
  checks: { sameTokens: boolean; slotsAsPlanned: boolean; run2ExpertRangeRequests: number; run2Fetches: number };
  profile: { dir: string; kept: boolean };
  seconds: number;
  load: { start: number[]; end: number[] };
}

/** The page run as #result has it (web/main.ts runFromUrl). */
interface PageResult {
  error?: string;
  tokens: number[];
  stats: GenerationStats;
  loaded: LoadedInfo;
  experts?: ExpertStoreStats;
  steps?: StepSnapshot[];
}

const ROUTED = /\.mlp\.experts\.\d+\./;
const EXTRA_ARGS = ['--disable-gpu-shader-disk-cache'];

export async function runOffloadPageBench(opts: OffloadPageOptions = {}): Promise<OffloadPageReport> {
  const t0 = performance.now();
  const loadStart = loadavg();
  const progress = opts.onProgress ?? (() => {});
  const share = opts.share ?? 0.25;
  const prompt = opts.promptTokens ?? [1, 2, 3, 4];
  const warmupTokens = count(opts.warmupTokens ?? 1, 'warmupTokens', 0);
  const decodeTokens = count(opts.decodeTokens ?? 6, 'decodeTokens', 1);
  const maxTokens = 1 + warmupTokens + decodeTokens;
  const ctxSize = prompt.length + maxTokens + 8;
  const seed = opts.seed ?? 0;
  const pageTimeoutMs = opts.pageTimeoutMs ?? 30 * 60_000;

  const files = await ensureFilesCheckpoint(opts.files ?? {}, { seed, onProgress: progress });
  let ckpt: Awaited<ReturnType<typeof openCheckpointDir>> | undefined;
  let pageDir: string | undefined;
  let profile: string | undefined;
  const servers: StaticServer[] = [];
  try {
    ckpt = await openCheckpointDir(files.dir);
    const c = ckpt.config;
    const shape = checkpointExpertSource(ckpt).shape;
    const moeLayers = c.derived.moeLayers.filter(Boolean).length;
    const tensors = [...ckpt.tensors.values()];
    const fileBytes = tensors.reduce((a, t) => a + t.byteLength, 0);
    const expertBytesTotal = moeLayers * c.n_routed_experts * shape.total;
    // [start, end) of every routed-expert tensor, by the path the server logs
    const expertRanges = new Map<string, [number, number][]>();
    for (const t of tensors) {
      if (!ROUTED.test(t.name)) continue;
      const name = isAbsolute(t.source.name) ? relative(files.dir, t.source.name) : t.source.name;
      const key = '/' + name.split(/[\\/]/).join('/');
      const list = expertRanges.get(key) ?? [];
      list.push([t.offset, t.offset + t.byteLength]);
      expertRanges.set(key, list);
    }

    // the disk behind the profile: the file's OPFS copy (sparse, up to the file's size) and the store
    const need = fileBytes + expertBytesTotal;
    const fs = await statfs(tmpdir());
    const free = fs.bavail * fs.bsize;
    if (free < need + 2 ** 30) {
      throw new WebmoeError('BENCH', `the page bench needs ${gb(need)} GB of OPFS in a browser profile under ${tmpdir()} (the checkpoint's cached copy and the expert store) plus 1 GB to spare, but only ${gb(free)} GB are free there`);
    }

    // the budget: the resident part measured in Node with the page's session options, + the slots of `share`
    const adapter = opts.adapter ?? 'swiftshader';
    progress(`the resident part: a session without routed experts on ${adapter} in Node`);
    const gpu = await createGpu({ adapter });
    let budget: { bytes: number; slots: number };
    let part: { bytes: number; chunk: number };
    let sizedOn: string;
    try {
      part = await residentBytes(gpu, ckpt, { ctxSize });
      budget = budgetFor(gpu, ckpt, { fixed: part.bytes, chunk: part.chunk }, shape, share);
      sizedOn = gpu.info.description || gpu.info.device || adapter;
    } finally {
      gpu.destroy();
    }
    const slackBytes = Math.floor(shape.total / 2);
    const budgetBytes = budget.bytes + slackBytes;

    progress('building the page (vite)');
    pageDir = await buildPage();
    const pageServer = await startStaticServer(pageDir);
    servers.push(pageServer);
    const models = await startStaticServer(files.dir, { cors: true });
    servers.push(models);
    profile = await mkdtemp(join(tmpdir(), 'webmoe-page-profile-'));
    const args = [...CHROMIUM_ARGS, ...EXTRA_ARGS];
    const q = new URLSearchParams({
      model: `${models.url}/`,
      'prompt-tokens': prompt.join(','),
      'max-tokens': String(maxTokens),
      temperature: '0',
      'ignore-eos': '1',
      backend: 'webgpu',
      'ctx-size': String(ctxSize),
      'gpu-memory': String(budgetBytes / 2 ** 20),
      'step-stats': '1',
    });

    const runs: PageRun[] = [];
    let browserVersion = '';
    let adapterName = '';
    const whats = ['fresh profile: experts by HTTP Range, repacked into the OPFS expert store', 'the same profile, browser restarted: experts from the OPFS expert store'];
    for (let i = 0; i < 2; i++) {
      progress(`run ${i + 1} (${whats[i]}): ${gb(budgetBytes)} GB budget, ${budget.slots}/${c.n_routed_experts} slots per MoE layer, ${maxTokens} tokens`);
      const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args, headless: true });
      try {
        browserVersion ||= context.browser()?.version() ?? '';
        const page = context.pages()[0] ?? (await context.newPage());
        const logs: string[] = [];
        page.on('console', (m) => logs.push(m.text()));
        page.on('pageerror', (e) => logs.push(String(e)));
        await page.goto(`${pageServer.url}/`);
        const before = await estimate(page);
        if (i === 0 && before && before.quota - before.usage < need) {
          throw new WebmoeError('BENCH', `Chromium gives the page's origin ${gb(before.quota - before.usage)} GB of storage, less than the ${gb(need)} GB the checkpoint's cached copy and the expert store need: free disk space under ${tmpdir()}`);
        }
        const mark = models.requests.length;
        const w0 = performance.now();
        await page.goto(`${pageServer.url}/?${q}`);
        const res = await pageResult(page, pageTimeoutMs);
        const wallSeconds = (performance.now() - w0) / 1000;
        if (res.error) throw new WebmoeError('BENCH', `run ${i + 1}: the page failed: ${res.error}${logs.length ? ` (console: ${logs.slice(-5).join(' | ')})` : ''}`);
        const after = await estimate(page);
        adapterName ||= res.loaded.adapter;
        runs.push(pageRun(i + 1, whats[i]!, res, wallSeconds, warmupTokens, decodeTokens, httpCounts(models.requests.slice(mark), expertRanges), { before, after }));
      } finally {
        await context.close();
      }
      runs[i]!.profileBytes = await folderBytes(profile);
      progress(`run ${i + 1}: ${runLine(runs[i]!)}`);
    }
    const [r1, r2] = runs as [PageRun, PageRun];
    return {
      schema: OFFLOAD_PAGE_SCHEMA,
      browser: browserVersion ? `Chromium ${browserVersion}` : 'Chromium',
      adapter: adapterName,
      checkpoint: {
        dir: files.dir, kept: files.kept, reusedFiles: files.reusedFiles, writeSeconds: files.writeSeconds, fileBytes, expertBytesTotal,
        toy: toySummary(`hidden ${c.hidden_size}, ${c.n_routed_experts} experts (files)`, ckpt, shape.total),
      },
      budget: { bytes: budgetBytes, slots: budget.slots, share, residentBytes: part.bytes, chunk: part.chunk, slackBytes, sizedOn },
      options: { promptTokens: prompt, warmupTokens, decodeTokens, ctxSize, chromiumArgs: args },
      runs,
      checks: {
        sameTokens: JSON.stringify(r1.tokens) === JSON.stringify(r2.tokens),
        slotsAsPlanned: runs.every((r) => r.load.slots === budget.slots),
        run2ExpertRangeRequests: r2.http.expertRangeRequests,
        run2Fetches: r2.store.fetches,
      },
      profile: { dir: profile, kept: opts.keepProfile === true },
      seconds: (performance.now() - t0) / 1000,
      load: { start: loadStart, end: loadavg() },
    };
  } finally {
    for (const s of servers) await s.close();
    if (pageDir) await rm(pageDir, { recursive: true, force: true });
    if (profile && opts.keepProfile !== true) await rm(profile, { recursive: true, force: true });
    await ckpt?.close();
    if (!files.kept) await rm(files.dir, { recursive: true, force: true });
  }
}

function count(n: number, what: string, min: number): number {
  if (!Number.isInteger(n) || n < min) throw new InputError(`${what} must be an integer >= ${min}, got ${n}`, what);
  return n;
}

/** Bytes under `dir`: allocated on disk (st_blocks) and the files' lengths (sparse files count in full). */
async function folderBytes(dir: string): Promise<{ allocated: number; apparent: number }> {
  const out = { allocated: 0, apparent: 0 };
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const st = await lstat(p).catch(() => null);
        if (st) {
          out.allocated += st.blocks * 512;
          out.apparent += st.size;
        }
      }
    }
  };
  await walk(dir);
  return out;
}

async function estimate(page: Page): Promise<StorageEstimate | null> {
  return page.evaluate(async () => {
    try {
      const e = await navigator.storage.estimate();
      return e.quota !== undefined && e.usage !== undefined ? { quota: e.quota, usage: e.usage } : null;
    } catch {
      return null;
    }
  });
}

async function pageResult(page: Page, timeoutMs: number): Promise<PageResult> {
  await page.waitForSelector('#result[data-done], #result[data-error]', { state: 'attached', timeout: timeoutMs });
  return page.evaluate(() => {
    const r = document.getElementById('result')!;
    if (r.dataset.error !== undefined) return { error: r.dataset.error } as PageResult;
    return JSON.parse(r.textContent ?? '{}') as PageResult;
  });
}

/** Requests of one run: how many, their bytes, and which read routed-expert bytes (206 with an overlapping range). */
export function httpCounts(reqs: readonly LoggedRequest[], expertRanges: ReadonlyMap<string, [number, number][]>): HttpCounts {
  const out: HttpCounts = { requests: reqs.length, bytes: 0, expertRangeRequests: 0, expertBytes: 0, revalidations: 0 };
  for (const r of reqs) {
    out.bytes += r.bytes;
    if (r.range === 'bytes=0-0') out.revalidations++;
    const m = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? '');
    const ranges = expertRanges.get(r.path);
    if (!m || !ranges || r.status !== 206) continue;
    const [a, b] = [Number(m[1]), Number(m[2]) + 1];
    const overlap = ranges.reduce((n, [s, e]) => n + Math.max(0, Math.min(b, e) - Math.max(a, s)), 0);
    if (overlap > 0) {
      out.expertRangeRequests++;
      out.expertBytes += overlap;
    }
  }
  return out;
}

const STORE_KEYS = ['storeReads', 'storeBytes', 'fetches', 'fetchBytes', 'fetchMs', 'writeMs', 'readMs', 'writes', 'writeBytes'] as const;

function storeDelta(after: ExpertStoreStats | undefined, before: ExpertStoreStats | undefined): StoreCounters {
  const out = {} as StoreCounters;
  for (const k of STORE_KEYS) out[k] = (after?.[k] ?? 0) - (before?.[k] ?? 0);
  return out;
}

function expertPath(st: OffloadStats, tokens: number, seconds: number, store: StoreCounters): ExpertPath {
  return {
    tokens, seconds, tokensPerSecond: seconds > 0 ? tokens / seconds : 0,
    lookups: st.lookups, hitRate: st.hitRate, misses: st.misses, latePrefetches: st.latePrefetches, stallMs: st.stallMs,
    bytesStreamed: st.bytesStreamed, uploadSeconds: st.uploadSeconds,
    gbpsPerUploadSecond: st.uploadSeconds > 0 ? st.bytesStreamed / st.uploadSeconds / 1e9 : 0,
    gbpsPerWallSecond: seconds > 0 ? st.bytesStreamed / seconds / 1e9 : 0,
    gbpsPerStallSecond: st.stallMs > 0 ? st.bytesStreamed / (st.stallMs / 1000) / 1e9 : 0,
    store,
  };
}

function pageRun(run: number, what: string, res: PageResult, wallSeconds: number, warmup: number, decode: number, http: HttpCounts, storage: PageRun['storage']): PageRun {
  const steps = res.steps ?? [];
  const at = (token: number): StepSnapshot => {
    const s = steps.find((x) => x.token === token);
    if (!s?.offload) throw new WebmoeError('BENCH', `run ${run}: the page reported no offload counters at token ${token} (${steps.length} snapshots; is the session offloading?)`);
    return s;
  };
  const first = at(-1);
  const last = at(res.tokens.length - 1);
  const from = at(warmup);
  const to = at(warmup + decode);
  const o = res.loaded.offload;
  if (!o) throw new WebmoeError('BENCH', `run ${run}: the page loaded without a GPU memory budget`);
  const gen = res.stats;
  return {
    run, what, wallSeconds,
    load: {
      seconds: res.loaded.loadMs / 1000, gpuBytes: res.loaded.gpuBytes, budgetBytes: o.budgetBytes, slots: o.slotsPerLayer, experts: o.experts, source: o.source,
      networkBytes: res.loaded.networkBytes, cachedBytes: res.loaded.cachedBytes, store: storeDelta(first.experts, undefined),
    },
    tokens: res.tokens,
    generation: {
      promptTokens: gen.promptTokens, generatedTokens: gen.generatedTokens, ttftMs: gen.ttftMs, totalMs: gen.totalMs, decodeTokensPerSecond: gen.decodeTokensPerSecond,
      expertPath: expertPath(subtractOffloadStats(last.offload!, first.offload!), gen.generatedTokens, gen.totalMs / 1000, storeDelta(last.experts, first.experts)),
    },
    timed: { fromToken: warmup + 1, ...expertPath(subtractOffloadStats(to.offload!, from.offload!), decode, (to.ms - from.ms) / 1000, storeDelta(to.experts, from.experts)) },
    store: { ...storeDelta(res.experts, undefined), mode: res.experts?.mode ?? 'none', present: res.experts?.present ?? 0, capacity: res.experts?.capacity ?? 0 },
    http,
    storage,
    profileBytes: { allocated: 0, apparent: 0 },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Report: well-formedness and the summary

/** Problems with a report's shape and values (empty: well-formed). */
export function validateOffloadPageReport(r: OffloadPageReport): string[] {
  const out: string[] = [];
  const num = (v: unknown, path: string, min = 0) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) out.push(`${path} is not a finite number: ${String(v)}`);
    else if (v < min) out.push(`${path} = ${v} < ${min}`);
  };
  if (r.schema !== OFFLOAD_PAGE_SCHEMA) out.push(`schema is ${String(r.schema)}`);
  if (r.runs.length !== 2) out.push(`${r.runs.length} runs, not 2`);
  num(r.budget.bytes, 'budget.bytes', 1);
  r.runs.forEach((x, i) => {
    const p = `runs[${i}]`;
    if (x.load.gpuBytes > x.load.budgetBytes) out.push(`${p}: the page held ${x.load.gpuBytes} bytes, over its budget ${x.load.budgetBytes}`);
    for (const [w, e] of [['timed', x.timed], ['generation', x.generation.expertPath]] as const) {
      for (const k of ['seconds', 'tokensPerSecond', 'hitRate', 'stallMs', 'bytesStreamed', 'uploadSeconds', 'gbpsPerUploadSecond', 'gbpsPerWallSecond', 'gbpsPerStallSecond'] as const) num(e[k], `${p}.${w}.${k}`);
      num(e.seconds, `${p}.${w}.seconds`, Number.MIN_VALUE);
      if (e.hitRate > 1) out.push(`${p}.${w}.hitRate = ${e.hitRate} > 1`);
      if (e.bytesStreamed % r.checkpoint.toy.expertBytes !== 0) out.push(`${p}.${w}.bytesStreamed is not a whole number of experts`);
      for (const k of STORE_KEYS) num(e.store[k], `${p}.${w}.store.${k}`);
    }
    for (const k of STORE_KEYS) num(x.store[k], `${p}.store.${k}`);
  });
  return out;
}

/** 2 decimals, or 2 significant digits below 0.1 (small checkpoints), down to 1e-4 */
const small = (x: number) => (x >= 0.1 || x === 0 ? x.toFixed(2) : x >= 1e-4 ? x.toPrecision(2) : x.toFixed(4));
const gb = (b: number) => small(b / 1e9);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 2 : 1)} MiB`;
const f3 = (x: number) => x.toFixed(3);
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function pathLine(e: ExpertPath): string {
  return (
    `${e.tokens} tokens in ${e.seconds.toFixed(1)} s: ${f3(e.tokensPerSecond)} tok/s, hit rate ${f3(e.hitRate)} (${e.misses} misses of ${e.lookups}, ${e.latePrefetches} late), ` +
    `stall ${e.stallMs.toFixed(0)} ms, ${gb(e.bytesStreamed)} GB streamed; expert path ${small(e.gbpsPerUploadSecond)} GB/s per busy second (${e.uploadSeconds.toFixed(1)} s busy), ` +
    `${small(e.gbpsPerWallSecond)} GB/s per wall second, ${small(e.gbpsPerStallSecond)} GB/s per stall second`
  );
}

function storeLine(s: StoreCounters): string {
  const rate = (bytes: number, ms: number) => (ms > 0 ? `${small(bytes / (ms / 1000) / 1e9)} GB/s` : '–');
  return (
    `store: ${s.fetches} fetched by HTTP Range (${gb(s.fetchBytes)} GB, ${secs(s.fetchMs)} busy: ${rate(s.fetchBytes, s.fetchMs)}), ` +
    `${s.writes} repacked into OPFS (${gb(s.writeBytes)} GB, ${secs(s.writeMs)} of writes: ${rate(s.writeBytes, s.writeMs)}), ` +
    `${s.storeReads} read from OPFS (${gb(s.storeBytes)} GB, ${secs(s.readMs)} of reads: ${rate(s.storeBytes, s.readMs)})`
  );
}

function runLine(x: PageRun): string {
  return `timed ${f3(x.timed.tokensPerSecond)} tok/s, ${small(x.timed.gbpsPerUploadSecond)} GB/s busy, ${small(x.timed.gbpsPerWallSecond)} GB/s wall, ${x.http.expertRangeRequests} expert Range requests`;
}

export function formatOffloadPageSummary(r: OffloadPageReport): string {
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(' ');
  const b = r.budget;
  const o = r.options;
  const est = (e: StorageEstimate | null) => (e ? `${gb(e.usage)} of ${gb(e.quota)} GB` : 'unknown');
  const lines = [
    `webmoe bench offload --page: ${r.browser}, ${r.adapter} (${r.seconds.toFixed(0)} s; load average ${load(r.load.start)} at the start, ${load(r.load.end)} at the end)`,
    `real files in the page: ${toyLine(r.checkpoint.toy)}; ${gb(r.checkpoint.fileBytes)} GB of tensors ${r.checkpoint.reusedFiles ? 'reused from' : `written in ${r.checkpoint.writeSeconds.toFixed(0)} s to`} ${r.checkpoint.dir}`,
    `  gpu-memory ${mib(b.bytes)} = resident part ${mib(b.residentBytes)} (measured in Node on ${b.sizedOn}) + ${b.slots}/${r.checkpoint.toy.experts} slots per MoE layer (${b.share * 100} % of the experts) + ${mib(b.slackBytes)} slack; ` +
      `the page held ${r.runs.map((x) => `${mib(x.load.gpuBytes)} with ${x.load.slots} slots`).join(' / ')}`,
    `  prompt ${o.promptTokens.length} token ids, greedy, ${1 + o.warmupTokens + o.decodeTokens} tokens: the timed window is decode steps ${o.warmupTokens + 1}-${o.warmupTokens + o.decodeTokens} (the prefill and ${o.warmupTokens} decode step${o.warmupTokens === 1 ? '' : 's'} left out); ` +
      `Chromium ${o.chromiumArgs.filter((a) => a.startsWith('--enable') || a.startsWith('--disable-gpu')).join(' ')}`,
  ];
  for (const x of r.runs) {
    lines.push(
      `run ${x.run} (${x.what}): ${x.wallSeconds.toFixed(0)} s`,
      `  load ${x.load.seconds.toFixed(1)} s (${gb(x.load.networkBytes)} GB downloaded, ${gb(x.load.cachedBytes)} GB from the OPFS cache; slots filled from ${x.load.source}: ${storeLine(x.load.store)})`,
      `  timed: ${pathLine(x.timed)}`,
      `    ${storeLine(x.timed.store)}`,
      `  whole generation (prefill of ${x.generation.promptTokens} + ${x.generation.generatedTokens} tokens, TTFT ${secs(x.generation.ttftMs)}, engine's decode ${f3(x.generation.decodeTokensPerSecond)} tok/s): ${pathLine(x.generation.expertPath)}`,
      `    ${storeLine(x.generation.expertPath.store)}`,
      `  whole page: ${storeLine(x.store)}; ${x.store.present}/${x.store.capacity} experts stored`,
      `  HTTP: ${x.http.requests} requests (${gb(x.http.bytes)} GB; ${x.http.revalidations} one-byte revalidations), ${x.http.expertRangeRequests} Range requests for expert bytes (${gb(x.http.expertBytes)} GB); navigator.storage.estimate() ${est(x.storage.before)} before, ${est(x.storage.after)} after; the profile holds ${gb(x.profileBytes.allocated)} GB on disk (files ${gb(x.profileBytes.apparent)} GB long)`,
    );
  }
  const c = r.checks;
  lines.push(
    `checks: run 2 made ${c.run2ExpertRangeRequests} Range requests for expert bytes and fetched ${c.run2Fetches} experts (${c.run2ExpertRangeRequests === 0 && c.run2Fetches === 0 ? 'all from OPFS' : 'NOT all from OPFS'}); ` +
      `tokens ${c.sameTokens ? 'identical' : 'DIFFERENT'} in both runs; slots ${c.slotsAsPlanned ? 'as planned' : 'NOT as planned (the page counted another resident part)'}`,
    `profile ${r.profile.dir} ${r.profile.kept ? '(kept)' : '(removed)'}`,
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// The command

/**
 * `webmoe bench offload --page` (src/cli/bench.ts): progress lines on stderr, the summary on stdout and the JSON
 * with --json FILE; with --json - the JSON goes to stdout and the summary to stderr.
 */
export async function offloadPageAction(opts: BenchCliOptions): Promise<void> {
  const t0 = performance.now();
  const report = await runOffloadPageBench({
    files: { dir: opts.offloadDir },
    decodeTokens: intOption(opts.decodeTokens, 'decode-tokens', 6, 1),
    warmupTokens: intOption(opts.warmupTokens, 'warmup-tokens', 1, 0),
    adapter: opts.adapter === undefined || opts.adapter === 'auto' ? 'swiftshader' : opts.adapter,
    onProgress: (l) => process.stderr.write(`[offload page ${((performance.now() - t0) / 1000).toFixed(0)} s] ${l}\n`),
  });
  await writeBenchReport(report, 'offload page', validateOffloadPageReport(report), formatOffloadPageSummary(report), opts.json);
}

/** `npx tsx bench/offload-page.ts [--offload-dir DIR] [--json FILE|-] [--decode-tokens N] [--warmup-tokens N] [--adapter A]` */
async function main(argv: string[]): Promise<void> {
  const opts: BenchCliOptions = {};
  const flags: Record<string, (v: string) => void> = {
    '--offload-dir': (v) => (opts.offloadDir = v),
    '--json': (v) => (opts.json = v),
    '--decode-tokens': (v) => (opts.decodeTokens = v),
    '--warmup-tokens': (v) => (opts.warmupTokens = v),
    '--adapter': (v) => {
      if (!ADAPTER_CHOICES.includes(v as AdapterChoice)) throw new InputError(`--adapter must be one of ${ADAPTER_CHOICES.join(', ')}, got '${v}'`, 'adapter');
      opts.adapter = v as AdapterChoice;
    },
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split(/=(.*)/s, 2) as [string, string | undefined];
    const set = flags[flag];
    if (!set) throw new InputError(`unknown option '${argv[i]}' (${Object.keys(flags).join(', ')})`, 'argv');
    const v = inline ?? argv[++i];
    if (v === undefined) throw new InputError(`${flag} needs a value`, flag.slice(2));
    set(v);
  }
  await offloadPageAction(opts);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    const e = err as Error;
    process.stderr.write(`${e.name}: ${e.message}\n`);
    process.exit(1);
  });
}
