/**
 * The engine in a Web Worker, so the page stays responsive while weights load and tokens are generated.
 * The same code as the Node CLI (src/engine/text-model.ts → generate.ts); only the byte source (OPFS-cached
 * HTTP Range reads, or a picked folder) and the device (navigator.gpu) differ.
 *
 * Expert offloading (a load with `gpuMemoryMiB`): loadTextModel gets `offload: { gpuMemory, source }`; for a URL the
 * source is the OPFS expert store (opfs-experts.ts) over the checkpoint's cached files, for a picked folder the
 * engine's default (the experts read from the files). The store is made once the checkpoint is open
 * (OffloadOptions.source as a function of the opened checkpoint), before the session reads any expert.
 */
import { formatOffload, type OffloadOptions } from '../src/engine/expert-offload.js';
import { loadTextModel, type TextModel } from '../src/engine/text-model.js';
import { createGpu, type GpuContext } from '../src/gpu/device.js';
import { fileListFiles, type Checkpoint, type CheckpointFiles } from '../src/model/checkpoint.js';
import { SourceChangedError } from '../src/errors.js';
import { cachedUrlFiles, clearOpfsCache, type CacheStats, type CachedByteSource } from './opfs-files.js';
import { urlExpertStore, type OpfsExpertStore } from './opfs-experts.js';
import type { FromWorker, GenerateRequest, LoadedInfo, StepSnapshot, ToWorker } from './protocol.js';

const post = (m: FromWorker): void => postMessage(m);

let gpu: GpuContext | undefined;
let current: TextModel | undefined;
/** The expert store of the current model (a URL load with a GPU memory budget); the session closes it. */
let store: OpfsExpertStore | undefined;
let running: AbortController | undefined;

type LoadMsg = Extract<ToWorker, { type: 'load' }>;

/**
 * Loads a checkpoint. A SourceChangedError (a file replaced on the server during the load: its cached copy is
 * already dropped) starts the load over once, from the new version; a second one is reported.
 */
async function load(msg: LoadMsg): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await loadOnce(msg);
      return;
    } catch (err) {
      if (!(err instanceof SourceChangedError) || attempt > 0) throw err;
    }
  }
}

async function loadOnce(msg: LoadMsg): Promise<void> {
  const t0 = performance.now();
  await current?.close();
  await store?.close(); // closed by the session already; not when a load failed before the session existed
  current = undefined;
  store = undefined;
  let files: CheckpointFiles;
  let stats: CacheStats = { networkBytes: 0, cachedBytes: 0, requests: 0, downloadedBytes: 0 };
  let url: string | undefined;
  let sources: ReadonlyMap<string, CachedByteSource> | undefined;
  if ('url' in msg.source) {
    // progress from the first byte, at most every 100 ms
    let last = 0;
    const onDownload = (networkBytes: number): void => {
      const now = performance.now();
      if (now - last < 100) return;
      last = now;
      post({ type: 'download', networkBytes });
    };
    url = new URL(msg.source.url, location.href).href;
    const cached = await cachedUrlFiles(url, undefined, msg.http ?? {}, onDownload);
    files = cached.files;
    stats = cached.stats;
    sources = cached.sources;
  } else {
    files = fileListFiles(msg.source.files);
  }
  if (msg.backend === 'webgpu' && !gpu) gpu = await createGpu();
  let made: OpfsExpertStore | undefined;
  let lastExperts = 0;
  const onExperts = (done: number, total: number): void => {
    const now = performance.now();
    if (done < total && now - lastExperts < 100) return; // at most every 100 ms, and the last
    lastExperts = now;
    post({ type: 'experts', done, total, store: made?.stats() });
  };
  // a URL's experts come from the OPFS expert store over the checkpoint's cached files, made once the checkpoint is open
  const source = url && sources ? (ckpt: Checkpoint) => (made = urlExpertStore(ckpt, url, sources)) : undefined;
  const offload: OffloadOptions | undefined = msg.gpuMemoryMiB === undefined ? undefined : { gpuMemory: msg.gpuMemoryMiB * 2 ** 20, onProgress: onExperts, source };
  let model: TextModel;
  try {
    model = await loadTextModel(files, {
      backend: msg.backend,
      gpu,
      ctxSize: msg.ctxSize,
      offload,
      onProgress: (p) => post({ type: 'progress', ...p, networkBytes: stats.networkBytes }),
    });
  } catch (err) {
    await made?.close();
    throw err;
  }
  store = made;
  const off = model.session.offloadStats?.();
  const info: LoadedInfo = {
    name: model.name,
    backend: model.backend,
    adapter: gpu && msg.backend === 'webgpu' ? describe(gpu) : 'CPU reference (f64, in the worker)',
    gpuBytes: model.session.gpuBytes(),
    contextSize: model.contextSize,
    vocabSize: model.session.vocabSize,
    hasTokenizer: model.tokenizer !== undefined,
    networkBytes: stats.networkBytes,
    cachedBytes: stats.cachedBytes,
    loadMs: performance.now() - t0,
    ...(offload && off
      ? {
          offload: {
            budgetBytes: offload.gpuMemory,
            slotsPerLayer: off.slotsPerLayer,
            experts: off.experts,
            streaming: off.streaming,
            source: storeSource(made, 'url' in msg.source),
          },
        }
      : {}),
  };
  current = model;
  post({ type: 'loaded', info });
}

function storeSource(s: OpfsExpertStore | undefined, byUrl: boolean): string {
  if (!s) return byUrl ? 'the network' : 'the picked folder';
  const st = s.stats();
  return st.mode === 'network' ? `the network (no expert store: ${st.reason ?? 'unavailable'})` : 'the OPFS expert store';
}

function describe(g: GpuContext): string {
  const i = g.info;
  const name = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') || 'unknown adapter';
  return `${name}${i.software ? ' (software)' : ''}; features: ${[...g.features].join(', ') || 'none'}`;
}

async function run(req: GenerateRequest): Promise<void> {
  const model = current;
  if (!model) throw new Error('no model loaded');
  running?.abort();
  const ac = new AbortController();
  running = ac;
  let seed = 0;
  // with stepStats: the cumulative counters before the generation and after every token (one MoE layer's stats each)
  const steps: StepSnapshot[] | undefined = req.stepStats ? [] : undefined;
  const snapshot = (token: number): void => {
    const offload = model.session.offloadStats?.() ?? undefined;
    steps?.push({ token, ms: performance.now(), ...(offload ? { offload } : {}), ...(store ? { experts: store.stats() } : {}) });
  };
  if (steps) snapshot(-1);
  try {
    for await (const ev of model.generate(req.prompt, {
      maxTokens: req.maxTokens,
      temperature: req.temperature,
      topK: req.topK,
      topP: req.topP,
      seed: req.seed,
      ignoreEos: req.ignoreEos,
      signal: ac.signal,
      encode: { allowSpecial: true, addSpecialTokens: true },
      onSeed: (s) => (seed = s),
    })) {
      if (ev.type === 'token') {
        if (steps) snapshot(ev.index);
        post({ ...ev, special: model.tokenizer?.isSpecial(ev.token) ?? false });
      } else {
        const offload = ev.stats.offload ? formatOffload(ev.stats.offload) : undefined;
        post({ type: 'done', tokens: ev.tokens, text: ev.text, stats: ev.stats, seed, ...(offload ? { offload } : {}), ...(store ? { experts: store.stats() } : {}), ...(steps ? { steps } : {}) });
      }
    }
  } finally {
    if (running === ac) running = undefined;
  }
}

// Messages are handled one at a time, except 'stop', which must reach a generation in progress.
let queue: Promise<void> = Promise.resolve();
onmessage = (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  if (msg.type === 'stop') {
    running?.abort();
    return;
  }
  queue = queue.then(async () => {
    try {
      if (msg.type === 'load') await load(msg);
      else if (msg.type === 'generate') await run(msg.request);
      else if (msg.type === 'clear-cache') {
        store?.suspend(); // its open handles would lock its files; it reopens (empty) on the next read
        await clearOpfsCache();
        post({ type: 'cleared' });
      }
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      post({ type: 'error', name: e.name, message: e.message });
    }
  });
};
