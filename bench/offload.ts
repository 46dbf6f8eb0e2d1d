/**
 * `webmoe bench offload`: the targets of expert offloading (issue #16, docs/offloading.md) measured on the engine,
 * every ratio within one run; targets are printed, never asserted.
 *
 *   toy      many small experts: hidden 256, moe_intermediate 128, 256 routed experts top-8 + 1 shared, 6 layers
 *            (the first dense), block FP8, small attention; generated in memory from a seed (src/model/toy.ts)
 *   t_c      one MoE layer's compute with every expert resident, measured directly: the same weights opened twice,
 *            with num_hidden_layers 6 and 2 (layers >= num_hidden_layers are ignored as MTP layers), both on the
 *            one-submission path, decode steps alternating one by one (A B B A ...); t_c = the median of the paired
 *            differences / 4, so the embedding, the dense layer, lm_head, sampling, the submit and the readback
 *            cancel out. step / MoE layers is printed beside it (an upper bound: it charges the fixed per-step costs
 *            to the MoE layers); it is also the fallback when the difference is lost in the machine's noise
 *   link     for an upload time of r · t_c per expert: throttledExpertSource at B = (bytes of one expert) / (r · t_c)
 *            bytes/s plus `latencyMs` per request on one serial link (offload/throttled.ts), in front of the experts
 *            held in host memory; the slots are first filled unthrottled (a loader), the link paces every later
 *            read. The effective r, (latency + bytes / B) / t_c, is what the simulator gets
 *   replay   OffloadOptions.replay: token n of the run takes the trace's ids (token n % N), the lookahead of the
 *            next MoE layer is simulated with recall p (default 0.9); logits are meaningless, the work is the same
 *   rows     per row a fresh session under a budget of the resident part + the slots of `share` of the experts
 *            (as test/engine/offload.gpu.test.ts budgetFor; the resident part is measured on a session that holds
 *            no routed experts, exactly what createSession counts), one prompt token, `warmupTokens` decode steps
 *            left out of the counts, then `decodeTokens` timed steps; OffloadStats of the timed steps
 *            (subtractOffloadStats). ratio = tok/s over streaming mode with every expert resident (same trace
 *            replayed, one session for all rows), the two alternating in blocks of `blockTokens` steps (A B B A ...)
 *            so that both see the same load of the machine; between the row's blocks the link drains, untimed (no
 *            upload overlaps the other session's steps; what is left in flight at a block's end is mispredicted
 *            prefetches of the last MoE layer, so a block boundary slightly favours the row). tok/s = steps / the
 *            sum of their times
 *     S2      sync cost: streaming mode with every expert resident vs the one-submission path (router's own ids)
 *     S3      50 % resident, r = 1: >= 0.65x, demand hit rate >= 0.93, and >= 1.15x the same run with policy
 *             'lru' and no prefetch
 *     S4      50 %, r = 0.25: >= 0.90x;  S5  25 %, r = 0.25: >= 0.85x
 *     honest  uniform random routing (50 %, r = 1), r = 2 and r = 6 (50 %)
 *     demo    the trained demo model's held-out routing (models/demo/routing-heldout.json) on a toy of that
 *             trace's E / K / MoE layer count (same widths), with its own t_c and 100 % run
 *   sim      beside every row, the trace-driven simulator (offload/simulate.ts) on the same trace tokens, slots,
 *            policy, prefetch, recall and effective r, warm-up left out the same way; the simulator models the MoE
 *            layers' waits, so its predicted ratio is (measured streaming-100 % step) / (that step + the simulated
 *            stall per token, stall · t_c); its own speed (MoE layers only) is in the JSON
 *   files    real files: a `k2-layer`-width checkpoint (one MoE layer at Kimi K2 widths) with 64 routed experts
 *            (~3 GB) written to disk once and kept (DEFAULT_FILES_DIR under the OS temporary folder, reused while
 *            its config and seed match), run under the resident part + 25 % of its expert slots, experts read
 *            from the safetensors files (checkpointExpertSource, the default) with the router's own ids: GB/s of
 *            the expert path per busy second (bytesStreamed / uploadSeconds: seconds with at least one upload in
 *            flight), per stall second and per wall second of the timed
 *            steps; the source alone (read + pack, no GPU) beside it. Reads mostly come from the OS page cache.
 *            The same row in the page, from OPFS: bench/offload-page.ts (`webmoe bench offload --page`)
 * Greedy sampling. Node only (the paced link is a worker thread; the files row writes to disk).
 *
 * Legend: E routed experts, K experts per token, S slots per MoE layer, r upload time of one expert in t_c.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { InputError, WebmoeError } from '../src/errors.js';
import { createGpu, type GpuContext } from '../src/gpu/device.js';
import type { BenchCliOptions } from '../src/cli/bench.js';
import { memoryFiles, openCheckpoint, type Checkpoint } from '../src/model/checkpoint.js';
import { openCheckpointDir } from '../src/model/node-checkpoint.js';
import { makeToyCheckpointInMemory, toyConfigJson, writeToyCheckpoint } from '../src/model/toy.js';
import { createSession, residentBytes, type GpuSession, type SessionOptions } from '../src/engine/session.js';
import { offloadFixedBytes, slotBytes, subtractOffloadStats, type OffloadOptions, type OffloadStats } from '../src/engine/expert-offload.js';
import type { CachePolicy } from '../src/offload/expert-cache.js';
import { checkpointExpertSource, loadExpertsIntoMemory, type ExpertSource } from '../src/offload/expert-source.js';
import { throttledExpertSource, type PacedLinkStats, type ThrottledExpertSource } from '../src/offload/throttled.js';
import { parseTrace, syntheticTrace, traceStats, uniformTrace, type RoutingTrace } from '../src/offload/traces.js';
import { simulate, type SimResult } from '../src/offload/simulate.js';
import { GREEDY } from './e2e.js';
import { median } from './harness.js';
import { intOption } from './options.js';

type Json = Record<string, unknown>;

export const OFFLOAD_SCHEMA = 'webmoe-bench-offload/1';

/** The bench toy (issue #16): many small experts, small attention. */
export function offloadToyConfig(overrides: Json = {}): Json {
  return {
    ...toyConfigJson('small'),
    vocab_size: 512, hidden_size: 256, intermediate_size: 512, moe_intermediate_size: 128,
    num_hidden_layers: 6, first_k_dense_replace: 1, moe_layer_freq: 1,
    n_routed_experts: 256, num_experts_per_tok: 8, n_shared_experts: 1, n_group: 8, topk_group: 4,
    num_attention_heads: 4, num_key_value_heads: 4, q_lora_rank: 128, kv_lora_rank: 64,
    qk_nope_head_dim: 32, qk_rope_head_dim: 16, v_head_dim: 32, max_position_embeddings: 4096,
    ...overrides,
  };
}

/** The files row's checkpoint: `k2-layer` widths (hidden 7168, moe_intermediate 2048) with 64 routed experts. */
export function k2LayerFilesConfig(experts = 64): Json {
  return { ...toyConfigJson('k2-layer'), n_routed_experts: experts };
}

export interface OffloadBenchOptions {
  /** Timed decode steps per row (default 128). */
  decodeTokens?: number;
  /** Decode steps before the timed ones, left out of every count (default 32). */
  warmupTokens?: number;
  /** Decode steps per session of the t_c measurement (default 96). */
  tcSteps?: number;
  /** Steps per block when a row and its denominator alternate (default 16). */
  blockTokens?: number;
  /** Lookahead recall p of the replay (default 0.9). */
  recall?: number;
  /** Link latency per request, ms (default 0.02). */
  latencyMs?: number;
  seed?: number;
  /** Fields over the bench toy's config.json (tests: tiny widths). */
  toy?: Json;
  /** The demo row's trace (default: models/demo/routing-heldout.json); false: no demo row. */
  demoTrace?: RoutingTrace | false;
  /** The files row (default: k2-layer widths, 64 experts, 4 timed steps in a temporary folder); false: skipped. */
  files?: FilesRowOptions | false;
  /** Which of the main rows to run (ids; default all). */
  rows?: string[];
  onProgress?: (label: string) => void;
}

export interface FilesRowOptions {
  /** config.json of the checkpoint (default k2LayerFilesConfig()). */
  config?: Json;
  /** Timed decode steps (default 4; 1 warm-up step before). */
  tokens?: number;
  /** Share of the experts resident (default 0.25). */
  share?: number;
  /**
   * Folder of the checkpoint (default: DEFAULT_FILES_DIR under the OS temporary folder when `keep`, else a fresh
   * temporary folder). A kept folder that holds a complete checkpoint of the same config and seed is reused.
   */
  dir?: string;
  /** Keep the checkpoint for the next run (default true: writing ~3 GB takes 2-3 minutes on the 2-core machine). */
  keep?: boolean;
}

export interface TraceSummary {
  name: string;
  experts: number;
  topK: number;
  moeLayers: number;
  tokens: number;
  /** traceStats averaged over the layers, of the trace tokens the run used */
  reuse: number;
  topQuarterShare: number;
  maxOverMean: number;
  unused: number;
}

export interface ToySummary {
  name: string;
  layers: number;
  moeLayers: number;
  hidden: number;
  moeIntermediate: number;
  experts: number;
  topK: number;
  sharedExperts: number;
  /** GPU bytes of one routed expert (the four arrays an upload moves) */
  expertBytes: number;
}

export interface TcMeasurement {
  method: string;
  /** the difference was lost in noise: t_c is step / MoE layers */
  fallback: boolean;
  layersFull: number;
  layersShort: number;
  stepMsFull: number;
  stepMsShort: number;
  /** (stepMsFull − stepMsShort) / (layersFull − layersShort) */
  tcMs: number;
  /** stepMsFull / MoE layers: charges the fixed per-step costs to the MoE layers */
  stepOverMoeLayersMs: number;
}

export interface RunMeasurement {
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  stepMs: number;
}

export interface OffloadRow extends OffloadCounters {
  id: string;
  label: string;
  model: string;
  trace: TraceSummary;
  share: number;
  slots: number;
  experts: number;
  budgetBytes: number;
  /** GPU bytes the session held (<= budgetBytes) */
  gpuBytes: number;
  expertBytes: number;
  r: number;
  /** (latencyMs + expertBytes / B) / t_c: the simulator's upload time */
  rEffective: number;
  bytesPerSecond: number;
  latencyMs: number;
  policy: CachePolicy;
  prefetch: boolean;
  recall: number;
  run: RunMeasurement;
  baseTokensPerSecond: number;
  /** tok/s over the streaming-mode run with every expert resident */
  ratio: number;
  /** the paced link over the timed steps: requests, and how late the pacing resolved them (mean ms) */
  link: { requests: number; meanWaitMs: number; meanLateMs: number };
  sim: SimSummary;
}

/** The engine's counters a row reports (OffloadStats of its timed steps). */
type OffloadCounters = Pick<
  OffloadStats,
  'hitRate' | 'lookups' | 'demandHits' | 'latePrefetches' | 'misses' | 'stallMs' | 'bytesStreamed' | 'prefetchesIssued' | 'wastedPrefetchBytes' | 'lookaheadRecall' | 'uploadSeconds'
>;

export interface SimSummary {
  /** the simulator's own speed: its all-resident time over its time (MoE layers only) */
  speed: number;
  /**
   * the predicted ratio: the measured streaming-100 % step over that step plus the simulated stall per token
   * (stall · t_c / tokens): the simulator models the MoE layers' waits, the rest of a step is what was measured
   */
  ratio: number;
  hitRate: number;
  latePrefetches: number;
  misses: number;
  /** stall in ms: the simulator's stall in t_c times the measured t_c */
  stallMs: number;
  bytesStreamed: number;
  wastedPrefetchBytes: number;
  lookaheadRecall: number;
  /** the simulator at the nominal r (no latency): the hit rate and predicted ratio (its model is sharp at r = 1) */
  nominal: { r: number; hitRate: number; ratio: number };
}

export interface OffloadTarget {
  id: string;
  what: string;
  value: number;
  target: number;
  /** 'min': value >= target */
  met: boolean;
}

export interface ModelSection {
  toy: ToySummary;
  tc: TcMeasurement;
  /** streaming mode with every expert resident, the trace replayed, on one session: its blocks beside each row's */
  base: { trace: TraceSummary; runs: RunMeasurement[]; tokensPerSecond: number };
}

/** What the expert path moved in a timed window, and how fast (the real-files rows in Node and in the page). */
export interface ExpertPathRates {
  hitRate: number;
  misses: number;
  latePrefetches: number;
  stallMs: number;
  bytesStreamed: number;
  uploadSeconds: number;
  /** bytesStreamed / uploadSeconds (seconds with at least one expert read or upload in flight) */
  gbpsPerUploadSecond: number;
  /** bytesStreamed / wall seconds of the timed steps */
  gbpsPerWallSecond: number;
  /** bytesStreamed / stall seconds (the time the steps waited for experts) */
  gbpsPerStallSecond: number;
}

export interface FilesRow extends ExpertPathRates {
  dir: string;
  kept: boolean;
  writeSeconds: number;
  reusedFiles: boolean;
  fileBytes: number;
  toy: ToySummary;
  share: number;
  slots: number;
  budgetBytes: number;
  gpuBytes: number;
  createSeconds: number;
  run: RunMeasurement;
  /** checkpointExpertSource.read of `sourceExperts` experts one after another (read + pack, no GPU) */
  sourceExperts: number;
  sourceGbps: number;
}

export interface OffloadReport {
  schema: typeof OFFLOAD_SCHEMA;
  adapter: string;
  options: { decodeTokens: number; warmupTokens: number; promptTokens: number; tcSteps: number; blockTokens: number; recall: number; latencyMs: number; seed: number };
  main: ModelSection;
  sync: { oneSubmission: RunMeasurement; streaming: RunMeasurement; ratio: number; syncMsPerMoeLayer: number } | null;
  demo: ModelSection | null;
  rows: OffloadRow[];
  targets: OffloadTarget[];
  files: FilesRow | null;
  seconds: number;
  /** os.loadavg() (1, 5, 15 min) at the start and the end: the machine's load shows in every absolute figure */
  load: { start: number[]; end: number[] };
}

interface RowSpec {
  id: string;
  label: string;
  trace: 'synthetic' | 'uniform' | 'demo';
  share: number;
  r: number;
  policy: CachePolicy;
  prefetch: boolean;
}

export const MAIN_ROWS: readonly RowSpec[] = [
  { id: 'S3', label: 'S3 50 % r=1', trace: 'synthetic', share: 0.5, r: 1, policy: 'lfu', prefetch: true },
  { id: 'S3-lru', label: 'S3 LRU, no prefetch', trace: 'synthetic', share: 0.5, r: 1, policy: 'lru', prefetch: false },
  { id: 'S4', label: 'S4 50 % r=0.25', trace: 'synthetic', share: 0.5, r: 0.25, policy: 'lfu', prefetch: true },
  { id: 'S5', label: 'S5 25 % r=0.25', trace: 'synthetic', share: 0.25, r: 0.25, policy: 'lfu', prefetch: true },
  { id: 'uniform', label: 'uniform 50 % r=1', trace: 'uniform', share: 0.5, r: 1, policy: 'lfu', prefetch: true },
  { id: 'r2', label: '50 % r=2', trace: 'synthetic', share: 0.5, r: 2, policy: 'lfu', prefetch: true },
  { id: 'r6', label: '50 % r=6', trace: 'synthetic', share: 0.5, r: 6, policy: 'lfu', prefetch: true },
];
const DEMO_ROW: RowSpec = { id: 'demo', label: 'demo trace 50 % r=1', trace: 'demo', share: 0.5, r: 1, policy: 'lfu', prefetch: true };

const PROMPT_TOKENS = 1;
/** Untimed decode steps of each session before the t_c steps. */
const TC_WARMUP = 4;
/** The files row's default folder (under the OS temporary folder), kept between runs. */
export const DEFAULT_FILES_DIR = 'webmoe-bench-offload-files';
/** Written after a complete checkpoint: its seed. */
const FILES_MARKER = '.webmoe-bench-seed';
const ARENA_BYTES = 4 << 20;

/** The default demo trace: the trained demo model's routing on its held-out text. */
export async function loadDemoTrace(): Promise<RoutingTrace> {
  const file = new URL('../models/demo/routing-heldout.json', import.meta.url);
  return parseTrace(JSON.parse(await readFile(file, 'utf8')), 'models/demo/routing-heldout.json');
}

export async function runOffloadBench(gpu: GpuContext, opts: OffloadBenchOptions = {}): Promise<OffloadReport> {
  const t0 = performance.now();
  const loadStart = loadavg();
  const o = {
    decodeTokens: positive(opts.decodeTokens ?? 128, 'decodeTokens'),
    warmupTokens: nonNegative(opts.warmupTokens ?? 32, 'warmupTokens'),
    tcSteps: positive(opts.tcSteps ?? 96, 'tcSteps'),
    blockTokens: positive(opts.blockTokens ?? 16, 'blockTokens'),
    recall: opts.recall ?? 0.9,
    latencyMs: opts.latencyMs ?? 0.02,
    seed: opts.seed ?? 0,
  };
  if (!(o.recall >= 0 && o.recall <= 1)) throw new InputError(`recall must be in [0, 1], got ${o.recall}`, 'recall');
  if (!(o.latencyMs >= 0 && Number.isFinite(o.latencyMs))) throw new InputError(`latencyMs must be >= 0, got ${o.latencyMs}`, 'latencyMs');
  const progress = opts.onProgress ?? (() => {});
  const ctx = {
    gpu, o, progress,
    sessionOpts: { ctxSize: PROMPT_TOKENS + o.warmupTokens + o.decodeTokens + 8, chunkSize: 16, uniformArenaBytes: ARENA_BYTES } satisfies SessionOptions,
  };
  const ids = opts.rows ?? MAIN_ROWS.map((r) => r.id);
  for (const id of ids) if (!MAIN_ROWS.some((r) => r.id === id)) throw new InputError(`unknown offload row '${id}' (${MAIN_ROWS.map((r) => r.id).join(', ')})`, 'rows');
  const runTokens = PROMPT_TOKENS + o.warmupTokens + o.decodeTokens;

  // --- the main toy
  const mainConfig = offloadToyConfig(opts.toy);
  progress(`generating the toy (${String(mainConfig.n_routed_experts)} experts, ${String(mainConfig.num_hidden_layers)} layers)`);
  const main = await Toy.create('offload-toy', mainConfig, o.seed);
  const rows: OffloadRow[] = [];
  let mainSection: ModelSection;
  let sync: OffloadReport['sync'];
  try {
    progress(`t_c: decode steps of the same weights with ${main.ckpt.config.num_hidden_layers} and ${main.short.config.num_hidden_layers} layers`);
    const tc = await measureTc(ctx, main);
    progress('S2: one submission vs streaming mode with every expert resident');
    sync = await measureSync(ctx, main);
    const c = main.ckpt.config;
    const moeL = c.derived.moeLayers.filter(Boolean).length;
    const traces = {
      synthetic: syntheticTrace({ experts: c.n_routed_experts, topK: c.num_experts_per_tok, layers: moeL, tokens: runTokens, seed: o.seed + 1 }),
      uniform: uniformTrace({ experts: c.n_routed_experts, topK: c.num_experts_per_tok, layers: moeL, tokens: runTokens, seed: o.seed + 2 }),
    };
    mainSection = { toy: main.summary, tc, base: await measureRows(ctx, main, tc, traces.synthetic, 'synthetic', MAIN_ROWS.filter((r) => ids.includes(r.id)), (spec) => (spec.trace === 'uniform' ? traces.uniform : traces.synthetic), rows) };
  } finally {
    await main.close();
  }

  // --- the demo model's routing
  let demo: ModelSection | null = null;
  const demoTrace = opts.demoTrace === false ? null : (opts.demoTrace ?? (await loadDemoTrace()));
  if (demoTrace) {
    progress(`generating a toy of the demo trace's shape (${demoTrace.experts} experts top-${demoTrace.topK}, ${demoTrace.layers.length} MoE layers)`);
    const first = Number(offloadToyConfig(opts.toy).first_k_dense_replace);
    const toy = await Toy.create('demo-shaped toy', offloadToyConfig({
      ...opts.toy,
      n_routed_experts: demoTrace.experts, num_experts_per_tok: demoTrace.topK, n_group: 1, topk_group: 1,
      num_hidden_layers: first + demoTrace.layers.length,
    }), o.seed);
    try {
      const trace: RoutingTrace = { ...demoTrace, tokens: demoTrace.tokens.slice(0, runTokens) };
      progress('demo: t_c');
      const tc = await measureTc(ctx, toy);
      demo = { toy: toy.summary, tc, base: await measureRows(ctx, toy, tc, trace, 'demo', [DEMO_ROW], () => trace, rows) };
    } finally {
      await toy.close();
    }
  }

  // --- real files
  let files: FilesRow | null = null;
  if (opts.files !== false) files = await measureFiles(ctx, opts.files ?? {});

  return {
    schema: OFFLOAD_SCHEMA,
    adapter: gpu.info.description || gpu.info.device,
    options: { ...o, promptTokens: PROMPT_TOKENS },
    main: mainSection,
    sync,
    demo,
    rows,
    targets: targetsOf(rows),
    files,
    seconds: (performance.now() - t0) / 1000,
    load: { start: loadStart, end: loadavg() },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Toys and sessions

interface BenchCtx {
  gpu: GpuContext;
  o: { decodeTokens: number; warmupTokens: number; tcSteps: number; blockTokens: number; recall: number; latencyMs: number; seed: number };
  progress: (label: string) => void;
  sessionOpts: SessionOptions;
}

/** A toy in memory: the checkpoint, the same weights with 2 layers (t_c), its experts in host memory. */
class Toy {
  private constructor(
    readonly name: string,
    readonly ckpt: Checkpoint,
    readonly short: Checkpoint,
    readonly experts: ExpertSource,
    readonly summary: ToySummary,
  ) {}

  static async create(name: string, config: Json, seed: number): Promise<Toy> {
    const toy = await makeToyCheckpointInMemory(config, { seed });
    const ckpt = await openCheckpoint(memoryFiles(name, toy.data));
    const c = ckpt.config;
    const shortLayers = c.first_k_dense_replace + 1;
    if (c.num_hidden_layers <= shortLayers) throw new InputError(`the bench toy needs at least 2 MoE layers, got ${c.num_hidden_layers - c.first_k_dense_replace}`, 'toy');
    // the same files with fewer layers: the loader ignores layers >= num_hidden_layers (as MTP layers)
    const shortFiles = new Map(toy.data);
    shortFiles.set('config.json', new TextEncoder().encode(JSON.stringify({ ...config, num_hidden_layers: shortLayers })));
    const short = await openCheckpoint(memoryFiles(`${name} (${shortLayers} layers)`, shortFiles));
    const experts = await loadExpertsIntoMemory(c, checkpointExpertSource(ckpt));
    return new Toy(name, ckpt, short, experts, toySummary(name, ckpt, experts.shape.total));
  }

  async close(): Promise<void> {
    await this.experts.close();
    await this.ckpt.close();
    await this.short.close();
  }
}

export function toySummary(name: string, ckpt: Checkpoint, expertBytes: number): ToySummary {
  const c = ckpt.config;
  return {
    name, layers: c.num_hidden_layers, moeLayers: c.derived.moeLayers.filter(Boolean).length, hidden: c.hidden_size,
    moeIntermediate: c.moe_intermediate_size, experts: c.n_routed_experts, topK: c.num_experts_per_tok,
    sharedExperts: c.n_shared_experts ?? 0, expertBytes,
  };
}

/** The resident part (session.ts residentBytes) as this bench names it. */
async function residentPart(gpu: GpuContext, ckpt: Checkpoint, so: SessionOptions): Promise<{ fixed: number; chunk: number }> {
  const r = await residentBytes(gpu, ckpt, so);
  return { fixed: r.bytes, chunk: r.chunk };
}

/** The budget that leaves `share` of every MoE layer's routed experts resident (at least K slots). */
export function budgetFor(gpu: GpuContext, ckpt: Checkpoint, part: { fixed: number; chunk: number }, expertShape: ExpertSource['shape'], share: number): { bytes: number; slots: number } {
  const c = ckpt.config;
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const layers = c.derived.moeLayers.filter(Boolean).length;
  const slots = Math.min(c.n_routed_experts, Math.max(c.num_experts_per_tok, Math.floor(share * c.n_routed_experts)));
  return { bytes: part.fixed + offloadFixedBytes(c, part.chunk) + layers * slotBytes(expertShape, c, slots, limit), slots };
}

/** A source that reads `inner` directly until pace() is called, then through a paced link. */
function gatedSource(inner: ExpertSource, bytesPerSecond: number, latencyMs: number): { source: ExpertSource; throttled: ThrottledExpertSource; pace(): void } {
  const throttled = throttledExpertSource(inner, { bytesPerSecond, latencyMs });
  let paced = false;
  return {
    throttled,
    pace: () => void (paced = true),
    source: {
      name: throttled.name,
      shape: inner.shape,
      read: (layer, expert) => (paced ? throttled.read(layer, expert) : inner.read(layer, expert)),
      close: () => throttled.close(),
    },
  };
}

/** Greedy decode steps on one session; reset and re-prompted (untimed) when the next steps would overflow its cache. */
class Decoder {
  private tok = -1;
  constructor(readonly session: GpuSession) {}

  /** `n` untimed steps (after the one-token prompt when the session has none). */
  async warm(n: number): Promise<void> {
    await this.room(n);
    for (let i = 0; i < n; i++) this.tok = await this.session.decode(this.tok, GREEDY);
  }

  /** `n` timed steps: each step's ms. */
  async timed(n: number): Promise<number[]> {
    await this.room(n);
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      this.tok = await this.session.decode(this.tok, GREEDY);
      ms.push(performance.now() - t0);
    }
    return ms;
  }

  private async room(n: number): Promise<void> {
    const s = this.session;
    if (this.tok >= 0 && s.position + n + 1 <= s.contextSize) return;
    s.reset();
    this.tok = await s.prefill([2 % s.vocabSize], GREEDY);
  }
}

function measurement(stepMs: readonly number[]): RunMeasurement {
  const seconds = stepMs.reduce((x, y) => x + y, 0) / 1000;
  return { tokens: stepMs.length, seconds, tokensPerSecond: stepMs.length / seconds, stepMs: median(stepMs) };
}

/**
 * `tokens` timed steps on each of `a` and `b` in blocks of `block`, in the order A B B A A B B A ... (a linear
 * drift of the machine's load cancels); `afterB` runs untimed after each block of `b`.
 */
async function interleave(a: Decoder, b: Decoder, tokens: number, block: number, afterB?: () => Promise<void>): Promise<{ a: number[]; b: number[] }> {
  const out = { a: [] as number[], b: [] as number[] };
  const runB = async (n: number) => {
    out.b.push(...(await b.timed(n)));
    await afterB?.();
  };
  for (let done = 0, i = 0; done < tokens; i++) {
    const n = Math.min(block, tokens - done);
    if (i % 2 === 0) {
      out.a.push(...(await a.timed(n)));
      await runB(n);
    } else {
      await runB(n);
      out.a.push(...(await a.timed(n)));
    }
    done += n;
  }
  return out;
}

/**
 * t_c: decode steps of the toy and of its twin with the first MoE layer only (same weights), one by one in the
 * order A B B A ...; the median of the paired differences over the layers between them (see the header).
 */
async function measureTc(b: BenchCtx, toy: Toy): Promise<TcMeasurement> {
  const full = await createSession(b.gpu, toy.ckpt, b.sessionOpts);
  let short: GpuSession | null = null;
  try {
    short = await createSession(b.gpu, toy.short, b.sessionOpts);
    const df = new Decoder(full);
    const ds = new Decoder(short);
    await df.warm(TC_WARMUP);
    await ds.warm(TC_WARMUP);
    const steps = await interleave(df, ds, b.o.tcSteps, 1);
    const lf = toy.ckpt.config.num_hidden_layers;
    const ls = toy.short.config.num_hidden_layers;
    const mf = median(steps.a);
    const ms = median(steps.b);
    const moeL = toy.ckpt.config.derived.moeLayers.filter(Boolean).length;
    const diff = median(steps.a.map((x, i) => x - steps.b[i]!)) / (lf - ls);
    const how = `one-submission path, ${b.o.tcSteps} steps each, alternating step by step`;
    // a difference lost in the machine's noise (tiny toys, a loaded machine) falls back to the upper bound
    const fallback = !(diff > 0.05 * (mf / moeL));
    return {
      method: fallback
        ? `step / MoE layers (the difference of ${lf} and ${ls} layers, ${diff.toFixed(3)} ms per layer, was lost in noise): ${how}`
        : `median of paired (decode step with ${lf} layers − with ${ls} layers) / ${lf - ls}: the same weights opened with num_hidden_layers ${lf} and ${ls}, ${how}`,
      fallback, layersFull: lf, layersShort: ls, stepMsFull: mf, stepMsShort: ms, tcMs: fallback ? mf / moeL : diff, stepOverMoeLayersMs: mf / moeL,
    };
  } finally {
    full.dispose();
    short?.dispose();
  }
}

/** S2: the one-submission path against streaming mode with every expert resident (router's own ids), interleaved. */
async function measureSync(b: BenchCtx, toy: Toy): Promise<NonNullable<OffloadReport['sync']>> {
  const one = await createSession(b.gpu, toy.ckpt, b.sessionOpts);
  let streaming: GpuSession | null = null;
  try {
    streaming = await createSession(b.gpu, toy.ckpt, { ...b.sessionOpts, offload: { gpuMemory: 2 ** 40, streaming: true, source: toy.experts } });
    const d1 = new Decoder(one);
    const ds = new Decoder(streaming);
    await d1.warm(b.o.warmupTokens);
    await ds.warm(b.o.warmupTokens);
    const steps = await interleave(d1, ds, b.o.decodeTokens, b.o.blockTokens);
    const oneSubmission = measurement(steps.a);
    const stream = measurement(steps.b);
    const moeL = toy.ckpt.config.derived.moeLayers.filter(Boolean).length;
    return {
      oneSubmission, streaming: stream, ratio: stream.tokensPerSecond / oneSubmission.tokensPerSecond,
      syncMsPerMoeLayer: (1000 / stream.tokensPerSecond - 1000 / oneSubmission.tokensPerSecond) / moeL,
    };
  } finally {
    one.dispose();
    streaming?.dispose();
  }
}

/**
 * The rows of one toy, each interleaved block by block with streaming mode with every expert resident (`trace`
 * replayed, one session kept for all rows): a row's denominator is measured in the same seconds as the row.
 */
async function measureRows(
  b: BenchCtx, toy: Toy, tc: TcMeasurement, trace: RoutingTrace, traceName: string, specs: readonly RowSpec[],
  traceOf: (spec: RowSpec) => RoutingTrace, out: OffloadRow[],
): Promise<ModelSection['base']> {
  const replay = { trace, recall: b.o.recall, seed: b.o.seed + 3 };
  const base = await createSession(b.gpu, toy.ckpt, { ...b.sessionOpts, offload: { gpuMemory: 2 ** 40, streaming: true, source: toy.experts, replay } });
  const runs: RunMeasurement[] = [];
  try {
    const db = new Decoder(base);
    await db.warm(b.o.warmupTokens);
    for (const spec of specs) {
      b.progress(`${toy.name}: ${spec.label}, interleaved with streaming mode with every expert resident`);
      const row = await measureRow(b, toy, tc, spec, traceOf(spec), spec.trace, db);
      runs.push(row.base);
      out.push(row.row);
    }
  } finally {
    base.dispose();
  }
  return { trace: summarizeTrace(traceName, { ...trace, tokens: trace.tokens.slice(0, PROMPT_TOKENS + b.o.warmupTokens + b.o.decodeTokens) }), runs, tokensPerSecond: median(runs.map((r) => r.tokensPerSecond)) };
}

async function measureRow(b: BenchCtx, toy: Toy, tc: TcMeasurement, spec: RowSpec, trace: RoutingTrace, traceName: string, base: Decoder): Promise<{ row: OffloadRow; base: RunMeasurement }> {
  const c = toy.ckpt.config;
  const K = c.num_experts_per_tok;
  const shape = toy.experts.shape;
  const part = await residentPart(b.gpu, toy.ckpt, b.sessionOpts);
  const budget = budgetFor(b.gpu, toy.ckpt, part, shape, spec.share);
  const bytesPerSecond = shape.total / ((spec.r * tc.tcMs) / 1000);
  const gate = gatedSource(toy.experts, bytesPerSecond, b.o.latencyMs);
  const replay = { trace, recall: b.o.recall, seed: b.o.seed + 3 };
  const off: OffloadOptions = { gpuMemory: budget.bytes, source: gate.source, policy: spec.policy, prefetch: spec.prefetch ? undefined : false, replay };
  let s: GpuSession;
  try {
    s = await createSession(b.gpu, toy.ckpt, { ...b.sessionOpts, offload: off });
  } catch (err) {
    await gate.source.close();
    throw err;
  }
  const link = gate.throttled.link;
  let steps: { a: number[]; b: number[] };
  let linkBefore: PacedLinkStats;
  let linkAfter: PacedLinkStats;
  let before: OffloadStats;
  let after: OffloadStats;
  let gpuBytes: number;
  try {
    gpuBytes = s.gpuBytes();
    gate.pace();
    await link.ready();
    const row = new Decoder(s);
    await row.warm(b.o.warmupTokens);
    await drain(link);
    before = s.offloadStats()!;
    linkBefore = link.stats;
    // between the row's blocks the link finishes what it holds (mispredicted prefetches of the last MoE layers),
    // untimed, so that no upload overlaps the other session's steps
    steps = await interleave(base, row, b.o.decodeTokens, b.o.blockTokens, () => drain(link));
    after = s.offloadStats()!;
    linkAfter = link.stats;
  } finally {
    s.dispose();
    await gate.source.close();
  }
  const st = subtractOffloadStats(after, before);
  const requests = linkAfter.requests - linkBefore.requests;
  const rEffective = (b.o.latencyMs + (shape.total / bytesPerSecond) * 1000) / tc.tcMs;
  const warm = PROMPT_TOKENS + b.o.warmupTokens;
  const used = { ...trace, tokens: trace.tokens.slice(0, warm + b.o.decodeTokens) };
  const simAt = (uploadTime: number) =>
    simulate(used, {
      slots: st.slotsPerLayer, policy: spec.policy, uploadTime,
      prefetch: spec.prefetch ? { recall: b.o.recall, cap: K } : false,
      expertBytes: shape.total, warmupTokens: warm, seed: b.o.seed + 7,
    });
  const sim = simSummary(simAt(rEffective), tc.tcMs);
  const nominal = simAt(spec.r);
  const run = measurement(steps.b);
  const baseRun = measurement(steps.a);
  const baseStep = 1000 / baseRun.tokensPerSecond;
  const predicted = (stallTc: number) => baseStep / (baseStep + (stallTc * tc.tcMs) / run.tokens);
  sim.ratio = predicted(sim.stallMs / tc.tcMs);
  sim.nominal = { r: spec.r, hitRate: nominal.hitRate, ratio: predicted(nominal.stall) };
  return {
    base: baseRun,
    row: {
      id: spec.id, label: spec.label, model: toy.name, trace: summarizeTrace(traceName, used),
      share: spec.share, slots: st.slotsPerLayer, experts: st.experts, budgetBytes: budget.bytes, gpuBytes, expertBytes: shape.total,
      r: spec.r, rEffective, bytesPerSecond, latencyMs: b.o.latencyMs, policy: spec.policy, prefetch: spec.prefetch, recall: b.o.recall,
      run, baseTokensPerSecond: baseRun.tokensPerSecond, ratio: run.tokensPerSecond / baseRun.tokensPerSecond,
      hitRate: st.hitRate, lookups: st.lookups, demandHits: st.demandHits, latePrefetches: st.latePrefetches, misses: st.misses,
      stallMs: st.stallMs, bytesStreamed: st.bytesStreamed, prefetchesIssued: st.prefetchesIssued,
      wastedPrefetchBytes: st.wastedPrefetchBytes, lookaheadRecall: st.lookaheadRecall, uploadSeconds: st.uploadSeconds,
      link: {
        requests,
        meanWaitMs: requests > 0 ? (linkAfter.waitMs - linkBefore.waitMs) / requests : 0,
        meanLateMs: requests > 0 ? (linkAfter.lateMs - linkBefore.lateMs) / requests : 0,
      },
      sim,
    },
  };
}

/** Resolves once the link holds no transfer (and the uploads behind them have been written). */
async function drain(link: ThrottledExpertSource['link']): Promise<void> {
  while (link.stats.pending > 0) await new Promise((r) => setTimeout(r, 1));
  await new Promise((r) => setImmediate(r));
}

function simSummary(r: SimResult, tcMs: number): SimSummary {
  return {
    speed: r.speed, ratio: NaN, hitRate: r.hitRate, latePrefetches: r.latePrefetches, misses: r.misses, stallMs: r.stall * tcMs,
    bytesStreamed: r.bytesStreamed, wastedPrefetchBytes: r.wastedBytes, lookaheadRecall: r.lookaheadRecall,
    nominal: { r: NaN, hitRate: NaN, ratio: NaN },
  };
}

function summarizeTrace(name: string, t: RoutingTrace): TraceSummary {
  const st = traceStats(t);
  const mean = (f: (x: (typeof st)[number]) => number) => st.reduce((a, x) => a + f(x), 0) / Math.max(1, st.length);
  return {
    name, experts: t.experts, topK: t.topK, moeLayers: t.layers.length, tokens: t.tokens.length,
    reuse: mean((x) => x.reuse), topQuarterShare: mean((x) => x.topQuarterShare), maxOverMean: mean((x) => x.maxOverMean), unused: mean((x) => x.unused),
  };
}

function targetsOf(rows: readonly OffloadRow[]): OffloadTarget[] {
  const out: OffloadTarget[] = [];
  const row = (id: string) => rows.find((r) => r.id === id);
  const min = (id: string, what: string, value: number, target: number) => out.push({ id, what, value, target, met: value >= target });
  const s3 = row('S3');
  if (s3) {
    min('S3-speed', 'S3: 50 % resident, r = 1, decode speed vs streaming 100 %', s3.ratio, 0.65);
    min('S3-hits', 'S3: demand hit rate', s3.hitRate, 0.93);
    const lru = row('S3-lru');
    if (lru) min('S3-vs-lru', 'S3: ours (LFU + prefetch) vs LRU without prefetch (ratio over ratio)', s3.ratio / lru.ratio, 1.15);
  }
  const s4 = row('S4');
  if (s4) min('S4-speed', 'S4: 50 % resident, r = 0.25, decode speed vs streaming 100 %', s4.ratio, 0.9);
  const s5 = row('S5');
  if (s5) min('S5-speed', 'S5: 25 % resident, r = 0.25, decode speed vs streaming 100 %', s5.ratio, 0.85);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Real files

/** The files row alone (see the header). */
export async function runFilesRow(gpu: GpuContext, fo: FilesRowOptions = {}, opts: { seed?: number; onProgress?: (label: string) => void } = {}): Promise<FilesRow> {
  const o = { decodeTokens: 1, warmupTokens: 1, tcSteps: 1, blockTokens: 1, recall: 0.9, latencyMs: 0, seed: opts.seed ?? 0 };
  return measureFiles({ gpu, o, progress: opts.onProgress ?? (() => {}), sessionOpts: {} }, fo);
}

/** The files row's checkpoint on disk: where it is, and whether it was written now or reused. */
export interface FilesCheckpoint {
  dir: string;
  /** kept for the next run (the default folder, or `dir`), else a fresh temporary folder the caller removes */
  kept: boolean;
  reusedFiles: boolean;
  /** seconds spent writing it (or checking it, when reused) */
  writeSeconds: number;
}

/**
 * Writes the files row's checkpoint (`config`, default k2LayerFilesConfig(): ~3 GB) once, or reuses a kept folder
 * that holds a complete one of the same config and seed (a marker file with the seed is written last, so a write
 * cut short is never reused). Shared by the Node files row and the page's (bench/offload-page.ts).
 */
export async function ensureFilesCheckpoint(
  fo: Pick<FilesRowOptions, 'config' | 'dir' | 'keep'> = {},
  opts: { seed?: number; onProgress?: (label: string) => void } = {},
): Promise<FilesCheckpoint> {
  const config = fo.config ?? k2LayerFilesConfig();
  const seed = opts.seed ?? 0;
  const kept = fo.keep ?? true;
  const dir = fo.dir ?? (kept ? join(tmpdir(), DEFAULT_FILES_DIR) : await mkdtemp(join(tmpdir(), 'webmoe-bench-offload-')));
  const w0 = performance.now();
  let reusedFiles = false;
  const existing = kept ? await readFile(join(dir, 'config.json'), 'utf8').catch(() => null) : null;
  const marker = kept ? await readFile(join(dir, FILES_MARKER), 'utf8').catch(() => null) : null;
  if (existing !== null && marker === String(seed) && sameJson(JSON.parse(existing) as Json, config)) {
    reusedFiles = true;
  } else {
    opts.onProgress?.(`files: writing a ${String(config.n_routed_experts)}-expert checkpoint at hidden ${String(config.hidden_size)} to ${dir}`);
    await rm(join(dir, FILES_MARKER), { force: true }); // a write cut short is never reused
    try {
      await writeToyCheckpoint(config, dir, { seed });
    } catch (err) {
      if (!kept) await rm(dir, { recursive: true, force: true });
      throw err;
    }
    if (kept) await writeFile(join(dir, FILES_MARKER), String(seed));
  }
  return { dir, kept, reusedFiles, writeSeconds: (performance.now() - w0) / 1000 };
}

async function measureFiles(b: BenchCtx, fo: FilesRowOptions): Promise<FilesRow> {
  const tokens = positive(fo.tokens ?? 4, 'files tokens');
  const share = fo.share ?? 0.25;
  const { dir, kept, reusedFiles, writeSeconds } = await ensureFilesCheckpoint(fo, { seed: b.o.seed, onProgress: b.progress });
  try {
    const ckpt = await openCheckpointDir(dir);
    try {
      const c = ckpt.config;
      const so: SessionOptions = { ctxSize: tokens + 8, chunkSize: 16, uniformArenaBytes: ARENA_BYTES };
      const source = checkpointExpertSource(ckpt);
      const shape = source.shape;
      const fileBytes = [...ckpt.tensors.values()].reduce((a, t) => a + t.byteLength, 0);
      // the source alone: read + pack of a few experts, one after another
      b.progress('files: reading experts from the safetensors files (no GPU)');
      const firstMoe = c.derived.moeLayers.findIndex(Boolean);
      const sourceExperts = Math.min(8, c.n_routed_experts);
      const r0 = performance.now();
      for (let e = 0; e < sourceExperts; e++) await source.read(firstMoe, c.n_routed_experts - 1 - e);
      const sourceGbps = (sourceExperts * shape.total) / ((performance.now() - r0) / 1000) / 1e9;
      b.progress('files: the resident part');
      const part = await residentPart(b.gpu, ckpt, so);
      const budget = budgetFor(b.gpu, ckpt, part, shape, share);
      b.progress(`files: a session under ${(budget.bytes / 2 ** 20).toFixed(0)} MiB (${budget.slots}/${c.n_routed_experts} slots per MoE layer), ${tokens} timed steps`);
      const c0 = performance.now();
      const s = await createSession(b.gpu, ckpt, { ...so, offload: { gpuMemory: budget.bytes } });
      const createSeconds = (performance.now() - c0) / 1000;
      try {
        const gpuBytes = s.gpuBytes();
        const d = new Decoder(s);
        await d.warm(1);
        const before = s.offloadStats()!;
        const m = { run: measurement(await d.timed(tokens)) };
        const st = subtractOffloadStats(s.offloadStats()!, before);
        return {
          dir, kept, writeSeconds, reusedFiles, fileBytes, toy: toySummary(`hidden ${c.hidden_size}, ${c.n_routed_experts} experts (files)`, ckpt, shape.total),
          share, slots: st.slotsPerLayer, budgetBytes: budget.bytes, gpuBytes, createSeconds, run: m.run,
          hitRate: st.hitRate, misses: st.misses, latePrefetches: st.latePrefetches, stallMs: st.stallMs, bytesStreamed: st.bytesStreamed,
          uploadSeconds: st.uploadSeconds,
          gbpsPerUploadSecond: st.uploadSeconds > 0 ? st.bytesStreamed / st.uploadSeconds / 1e9 : 0,
          gbpsPerWallSecond: st.bytesStreamed / m.run.seconds / 1e9,
          gbpsPerStallSecond: st.stallMs > 0 ? st.bytesStreamed / (st.stallMs / 1000) / 1e9 : 0,
          sourceExperts, sourceGbps,
        };
      } finally {
        s.dispose();
      }
    } finally {
      await ckpt.close();
    }
  } finally {
    if (!kept) await rm(dir, { recursive: true, force: true });
  }
}

function sameJson(a: Json, b: Json): boolean {
  const norm = (x: unknown): unknown =>
    Array.isArray(x) ? x.map(norm) : x && typeof x === 'object' ? Object.fromEntries(Object.entries(x as Json).sort(([p], [q]) => p.localeCompare(q)).map(([k, v]) => [k, norm(v)])) : x;
  return JSON.stringify(norm(a)) === JSON.stringify(norm(b));
}

function positive(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1) throw new InputError(`${what} must be a positive integer, got ${n}`, what);
  return n;
}

function nonNegative(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0) throw new InputError(`${what} must be an integer >= 0, got ${n}`, what);
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// Report: well-formedness and the summary

/** Problems with a report's shape and values (empty: well-formed). */
export function validateOffloadReport(r: OffloadReport): string[] {
  const out: string[] = [];
  const num = (v: unknown, path: string, min = 0) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) out.push(`${path} is not a finite number: ${String(v)}`);
    else if (v < min) out.push(`${path} = ${v} < ${min}`);
  };
  if (r.schema !== OFFLOAD_SCHEMA) out.push(`schema is ${String(r.schema)}`);
  if (typeof r.adapter !== 'string' || !r.adapter) out.push('adapter missing');
  const run = (m: RunMeasurement | null | undefined, p: string) => {
    if (!m) return out.push(`${p} missing`);
    num(m.tokensPerSecond, `${p}.tokensPerSecond`, Number.MIN_VALUE);
    num(m.seconds, `${p}.seconds`, Number.MIN_VALUE);
    num(m.stepMs, `${p}.stepMs`);
  };
  const section = (s: ModelSection | null, p: string) => {
    if (!s) return;
    num(s.tc.tcMs, `${p}.tc.tcMs`, Number.MIN_VALUE);
    num(s.toy.expertBytes, `${p}.toy.expertBytes`, 1);
    s.base.runs.forEach((m, i) => run(m, `${p}.base.runs[${i}]`));
    num(s.base.tokensPerSecond, `${p}.base.tokensPerSecond`, Number.MIN_VALUE);
  };
  section(r.main, 'main');
  section(r.demo, 'demo');
  if (r.sync) {
    run(r.sync.oneSubmission, 'sync.oneSubmission');
    run(r.sync.streaming, 'sync.streaming');
    num(r.sync.ratio, 'sync.ratio', Number.MIN_VALUE);
  }
  r.rows.forEach((row, i) => {
    const p = `rows[${i}] (${row.id})`;
    run(row.run, `${p}.run`);
    for (const k of ['ratio', 'hitRate', 'lookaheadRecall', 'r', 'rEffective', 'bytesPerSecond', 'stallMs', 'bytesStreamed', 'wastedPrefetchBytes', 'uploadSeconds'] as const) num(row[k], `${p}.${k}`);
    for (const k of ['misses', 'latePrefetches', 'lookups', 'slots'] as const) if (!Number.isInteger(row[k]) || row[k] < 0) out.push(`${p}.${k} = ${row[k]}`);
    if (row.hitRate > 1) out.push(`${p}.hitRate = ${row.hitRate} > 1`);
    if (row.demandHits + row.latePrefetches + row.misses !== row.lookups) out.push(`${p}: hits + late + misses != lookups`);
    if (row.bytesStreamed % row.expertBytes !== 0) out.push(`${p}.bytesStreamed is not a whole number of experts`);
    if (row.gpuBytes > row.budgetBytes) out.push(`${p}: the session held ${row.gpuBytes} bytes, over its budget ${row.budgetBytes}`);
    for (const k of ['speed', 'ratio', 'hitRate', 'stallMs', 'bytesStreamed', 'lookaheadRecall'] as const) num(row.sim[k], `${p}.sim.${k}`);
    num(row.sim.nominal.hitRate, `${p}.sim.nominal.hitRate`);
    num(row.sim.nominal.ratio, `${p}.sim.nominal.ratio`);
    num(row.trace.reuse, `${p}.trace.reuse`);
    num(row.trace.topQuarterShare, `${p}.trace.topQuarterShare`);
  });
  for (const t of r.targets) {
    num(t.value, `targets.${t.id}.value`);
    if (t.met !== t.value >= t.target) out.push(`targets.${t.id}.met disagrees with its value`);
  }
  if (r.files) {
    run(r.files.run, 'files.run');
    num(r.files.bytesStreamed, 'files.bytesStreamed');
    num(r.files.gbpsPerWallSecond, 'files.gbpsPerWallSecond');
    num(r.files.sourceGbps, 'files.sourceGbps', Number.MIN_VALUE);
  }
  return out;
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 2 : 1)} MiB`;
const f2 = (x: number) => x.toFixed(2);
const f3 = (x: number) => x.toFixed(3);

export function toyLine(t: ToySummary): string {
  return `${t.name}: ${t.layers} layers (${t.moeLayers} MoE), hidden ${t.hidden}, moe_intermediate ${t.moeIntermediate}, ${t.experts} routed experts top-${t.topK} + ${t.sharedExperts} shared, block FP8; one expert ${(t.expertBytes / 1024).toFixed(1)} KiB`;
}

function tcLine(tc: TcMeasurement): string {
  if (tc.fallback) return `  t_c = ${f3(tc.tcMs)} ms per MoE layer: ${tc.method}`;
  return `  t_c = ${f3(tc.tcMs)} ms per MoE layer = (step ${f2(tc.stepMsFull)} ms with ${tc.layersFull} layers − ${f2(tc.stepMsShort)} ms with ${tc.layersShort}) / ${tc.layersFull - tc.layersShort} (same weights, one submission; step / MoE layers would say ${f3(tc.stepOverMoeLayersMs)} ms)`;
}

function traceText(t: TraceSummary): string {
  return `${t.name} trace (E ${t.experts}, K ${t.topK}, ${t.moeLayers} layers, ${t.tokens} tokens: reuse ${f2(t.reuse)}, top quarter ${f2(t.topQuarterShare)}, max/mean ${t.maxOverMean.toFixed(1)})`;
}

export function formatOffloadSummary(r: OffloadReport): string {
  const o = r.options;
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(' ');
  const lines = [`webmoe bench offload on ${r.adapter} (${r.seconds.toFixed(0)} s; load average ${load(r.load.start)} at the start, ${load(r.load.end)} at the end)`];
  lines.push(toyLine(r.main.toy), tcLine(r.main.tc));
  if (r.sync) {
    lines.push(
      `S2 sync cost: one submission ${r.sync.oneSubmission.tokensPerSecond.toFixed(1)} tok/s, streaming mode with every expert resident ${r.sync.streaming.tokensPerSecond.toFixed(1)} tok/s = ${f3(r.sync.ratio)}x ` +
        `(${r.main.toy.moeLayers} stops per token: +${f3(r.sync.syncMsPerMoeLayer)} ms per MoE layer = ${f2(r.sync.syncMsPerMoeLayer / r.main.tc.tcMs)} t_c)`,
    );
  }
  lines.push(
    `method: 1 prompt token + ${o.warmupTokens} warm-up decode steps left out, ${o.decodeTokens} timed steps per row; routing replayed, lookahead recall p = ${o.recall}; ` +
      `link B = expert bytes / (r · t_c) + ${o.latencyMs} ms per request; ratio = tok/s over streaming mode with every expert resident (same trace, alternating in blocks of ${o.blockTokens} steps); ` +
      `[sim] = the simulator on the same trace tokens, slots, policy and effective r; its ratio = streaming-100 % step / (that step + simulated stall per token)`,
  );
  const baseLine = (s: ModelSection) =>
    `  streaming 100 % (${traceText(s.base.trace)}), in the blocks between each row's: ${s.base.runs.map((m) => m.tokensPerSecond.toFixed(1)).join(', ')} tok/s`;
  lines.push(baseLine(r.main));
  const header = '  row                    S/E      r (eff)      link MB/s   tok/s  ratio [sim]     hit [sim]  late [sim]  miss [sim]   stall ms [sim]    streamed   wasted recall pacing ms';
  const rowLine = (x: OffloadRow) =>
    '  ' +
    [
      x.label.padEnd(22),
      `${x.slots}/${x.experts}`.padEnd(8),
      `${x.r} (${f2(x.rEffective)})`.padEnd(12),
      (x.bytesPerSecond / 1e6).toFixed(1).padStart(9),
      x.run.tokensPerSecond.toFixed(1).padStart(7),
      `${f3(x.ratio)} [${f3(x.sim.ratio)}]`.padStart(15),
      `${f3(x.hitRate)} [${f3(x.sim.hitRate)}]`.padStart(13),
      `${x.latePrefetches} [${x.sim.latePrefetches}]`.padStart(10),
      `${x.misses} [${x.sim.misses}]`.padStart(11),
      `${x.stallMs.toFixed(0)} [${x.sim.stallMs.toFixed(0)}]`.padStart(16),
      mib(x.bytesStreamed).padStart(11),
      mib(x.wastedPrefetchBytes).padStart(10),
      f2(x.lookaheadRecall).padStart(6),
      f2(x.link.meanLateMs).padStart(10),
    ].join(' ');
  lines.push(header);
  for (const x of r.rows.filter((x) => x.model === r.main.toy.name)) lines.push(rowLine(x) + `   ${x.trace.name}: reuse ${f2(x.trace.reuse)}, top quarter ${f2(x.trace.topQuarterShare)}`);
  if (r.demo) {
    lines.push(toyLine(r.demo.toy), tcLine(r.demo.tc), baseLine(r.demo), header);
    for (const x of r.rows.filter((x) => x.model === r.demo!.toy.name)) lines.push(rowLine(x) + `   ${x.trace.name}: reuse ${f2(x.trace.reuse)}, top quarter ${f2(x.trace.topQuarterShare)}`);
  }
  lines.push(
    `  the simulator at the nominal r (no link latency), hit rate / ratio: ` +
      r.rows.map((x) => `${x.id} ${f3(x.sim.nominal.hitRate)} / ${f3(x.sim.nominal.ratio)}`).join(', '),
  );
  const late = r.rows.map((x) => x.link.meanLateMs).filter((x) => x > 0);
  if (late.length) {
    lines.push(
      `  pacing ms: a paced transfer reached the engine a mean ${f3(median(late))} ms after its deadline (median over rows; the main thread resolves it, and lavapipe computes on the same cores), ` +
        `against r · t_c = ${f2(0.25 * r.main.tc.tcMs)} ms at r = 0.25: the simulator has no such delay`,
    );
  }
  if (r.targets.length) {
    lines.push(`targets (${r.targets.filter((t) => t.met).length} of ${r.targets.length} met):`);
    for (const t of r.targets) lines.push(`  ${t.what}: ${f3(t.value)} (target >= ${t.target}: ${t.met ? 'met' : 'NOT met'})`);
  }
  if (r.files) {
    const f = r.files;
    lines.push(
      `real files: ${toyLine(f.toy)}; ${(f.fileBytes / 1e9).toFixed(2)} GB of tensors ${f.reusedFiles ? 'reused from' : `written in ${f.writeSeconds.toFixed(0)} s to`} ${f.dir}${f.kept ? ' (kept for the next run: rm -r it to free the space)' : ' (removed after)'}`,
      `  budget ${mib(f.budgetBytes)} (resident part + ${f.share * 100} % of the expert slots: ${f.slots}/${f.toy.experts} per MoE layer; session holds ${mib(f.gpuBytes)}, created in ${f.createSeconds.toFixed(1)} s); router's own ids`,
      `  ${f.run.tokens} timed steps: ${f.run.tokensPerSecond.toFixed(2)} tok/s, hit rate ${f3(f.hitRate)} (${f.misses} misses, ${f.latePrefetches} late), stall ${f.stallMs.toFixed(0)} ms, ${(f.bytesStreamed / 1e9).toFixed(2)} GB streamed`,
      `  expert path: ${f2(f.gbpsPerUploadSecond)} GB/s per busy second of the expert path, ${f2(f.gbpsPerWallSecond)} GB/s per wall second, ${f2(f.gbpsPerStallSecond)} GB/s per stall second; the source alone (read + pack, ${f.sourceExperts} experts, page cache) ${f2(f.sourceGbps)} GB/s`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// The command

/**
 * `webmoe bench offload` (registered by src/cli/bench.ts): progress lines on stderr, the summary on stdout and the
 * JSON with --json FILE; with --json - the JSON goes to stdout and the summary to stderr. --quick (or
 * WEBMOE_BENCH_QUICK=1) skips the files row.
 */
export async function offloadAction(opts: BenchCliOptions): Promise<void> {
  const recall = opts.recall === undefined ? undefined : Number(opts.recall);
  if (recall !== undefined && !(recall >= 0 && recall <= 1)) throw new InputError(`--recall must be in [0, 1], got '${opts.recall}'`, 'recall');
  const quick = opts.quick === true || process.env.WEBMOE_BENCH_QUICK === '1';
  const gpu = await createGpu({ adapter: opts.adapter });
  const t0 = performance.now();
  try {
    const report = await runOffloadBench(gpu, {
      decodeTokens: intOption(opts.decodeTokens, 'decode-tokens', 128),
      warmupTokens: intOption(opts.warmupTokens, 'warmup-tokens', 32, 0),
      recall,
      files: quick ? false : { dir: opts.offloadDir },
      onProgress: (l) => process.stderr.write(`[offload ${((performance.now() - t0) / 1000).toFixed(0)} s] ${l}\n`),
    });
    await writeBenchReport(report, 'offload', validateOffloadReport(report), formatOffloadSummary(report), opts.json);
  } finally {
    gpu.destroy();
  }
}

/**
 * A bench report out: refused when its validator found problems; the summary on stdout and the JSON to `json`
 * (a file), or with `json` '-' the JSON on stdout and the summary on stderr.
 */
export async function writeBenchReport(report: object, what: string, problems: string[], summary: string, json: string | undefined): Promise<void> {
  if (problems.length) throw new WebmoeError('BENCH', `the ${what} report is not well-formed: ${problems.slice(0, 5).join('; ')}`);
  const text = JSON.stringify(report, null, 1) + '\n';
  if (json === '-') {
    process.stderr.write(summary + '\n');
    process.stdout.write(text);
    return;
  }
  process.stdout.write(summary + '\n');
  if (json) {
    const path = resolve(json);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text);
    process.stderr.write(`wrote ${path}\n`);
  }
}
