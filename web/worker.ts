/**
 * The engine in a Web Worker, so the page stays responsive while weights load and tokens are generated.
 * The same code as the Node CLI (src/engine/text-model.ts → generate.ts); only the byte source (OPFS-cached
 * HTTP Range reads, or a picked folder) and the device (navigator.gpu) differ.
 */
import { loadTextModel, type TextModel } from '../src/engine/text-model.js';
import { createGpu, type GpuContext } from '../src/gpu/device.js';
import { fileListFiles, type CheckpointFiles } from '../src/model/checkpoint.js';
import { SourceChangedError } from '../src/errors.js';
import { cachedUrlFiles, clearOpfsCache, type CacheStats } from './opfs-files.js';
import type { FromWorker, GenerateRequest, LoadedInfo, ToWorker } from './protocol.js';

const post = (m: FromWorker): void => postMessage(m);

let gpu: GpuContext | undefined;
let current: TextModel | undefined;
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
  current = undefined;
  let files: CheckpointFiles;
  let stats: CacheStats = { networkBytes: 0, cachedBytes: 0, requests: 0, downloadedBytes: 0 };
  if ('url' in msg.source) {
    // progress from the first byte, at most every 100 ms
    let last = 0;
    const onDownload = (networkBytes: number): void => {
      const now = performance.now();
      if (now - last < 100) return;
      last = now;
      post({ type: 'download', networkBytes });
    };
    const cached = await cachedUrlFiles(new URL(msg.source.url, location.href).href, undefined, msg.http ?? {}, onDownload);
    files = cached.files;
    stats = cached.stats;
  } else {
    files = fileListFiles(msg.source.files);
  }
  if (msg.backend === 'webgpu' && !gpu) gpu = await createGpu();
  const model = await loadTextModel(files, {
    backend: msg.backend,
    gpu,
    ctxSize: msg.ctxSize,
    onProgress: (p) => post({ type: 'progress', ...p, networkBytes: stats.networkBytes }),
  });
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
  };
  current = model;
  post({ type: 'loaded', info });
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
      if (ev.type === 'token') post({ ...ev, special: model.tokenizer?.isSpecial(ev.token) ?? false });
      else post({ type: 'done', tokens: ev.tokens, text: ev.text, stats: ev.stats, seed });
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
        await clearOpfsCache();
        post({ type: 'cleared' });
      }
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      post({ type: 'error', name: e.name, message: e.message });
    }
  });
};
