/**
 * The page: UI only. The engine runs in worker.ts; this file sends it load / generate / stop messages and
 * shows progress, streamed tokens and stats.
 *
 * URL-driven mode (tests, shared runs): `?model=URL&prompt-tokens=1,2,3&max-tokens=N&temperature=0[&ignore-eos=1]`
 * (also `prompt`, `top-k`, `top-p`, `seed`, `ctx-size`, `backend=webgpu|cpu`, `connect-timeout` and
 * `idle-timeout` in seconds; `gpu-memory` in MiB: expert offloading; `warmup=1`: one untimed generation first;
 * `step-stats=1`: `"steps"`, the session's offload and expert-store counters before the generation and after every
 * token, for bench/offload-page.ts)
 * loads the checkpoint folder at URL and generates; then `#result` gets `{"tokens": [...], "stats": {...},
 * "loaded": LoadedInfo}` (with warm-up also `"warmup": {"ttftMs", "totalMs", "pipelineCompileMs"}`; with a GPU
 * memory budget the stats hold `offload` and, for a URL, `"experts"` the expert store's counters) and
 * `data-done="true"`, or only `data-error` with the message when anything fails, a parameter that does not parse
 * included (params.ts).
 */
import { InputError } from '../src/errors.js';
import { gpuMemoryParam, numberParam, parseRunParams, tokenList } from './params.js';
import demo from '../models/demo/demo.json' with { type: 'json' };
import type { Backend, FromWorker, GenerateRequest, HttpTimeouts, LoadedInfo, ToWorker } from './protocol.js';

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
};

const ui = {
  url: $<HTMLInputElement>('model-url'),
  loadUrl: $<HTMLButtonElement>('load-url'),
  loadDemo: $<HTMLButtonElement>('load-demo'),
  folder: $<HTMLInputElement>('model-folder'),
  backend: $<HTMLSelectElement>('backend'),
  ctxSize: $<HTMLInputElement>('ctx-size'),
  gpuMemory: $<HTMLInputElement>('gpu-memory'),
  clearCache: $<HTMLButtonElement>('clear-cache'),
  progress: $<HTMLProgressElement>('load-progress'),
  loadLabel: $('load-label'),
  infoName: $('info-name'),
  infoAdapter: $('info-adapter'),
  infoGpu: $('info-gpu'),
  infoCtx: $('info-ctx'),
  infoTokenizer: $('info-tokenizer'),
  prompt: $<HTMLTextAreaElement>('prompt'),
  promptIsTokens: $<HTMLInputElement>('prompt-is-tokens'),
  maxTokens: $<HTMLInputElement>('max-tokens'),
  temperature: $<HTMLInputElement>('temperature'),
  topK: $<HTMLInputElement>('top-k'),
  topP: $<HTMLInputElement>('top-p'),
  seed: $<HTMLInputElement>('seed'),
  ignoreEos: $<HTMLInputElement>('ignore-eos'),
  generate: $<HTMLButtonElement>('generate'),
  stop: $<HTMLButtonElement>('stop'),
  liveStats: $('live-stats'),
  output: $('output'),
  finalStats: $('final-stats'),
  offloadStats: $('offload-stats'),
  status: $('status'),
  result: $('result'),
};

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (m: ToWorker): void => worker.postMessage(m);

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 2 : 1)} MiB`;

let loaded: LoadedInfo | undefined;
let busy = false;
let firstTokenAt = 0;
let tokenCount = 0;
/** Text streamed into #output so far (done.text may add what was held back at the end). */
let streamed = '';
/** Pending URL-mode run: resolved by 'done', rejected by 'error'. */
let pending: { resolve: (m: FromWorker) => void; reject: (e: Error) => void } | undefined;
/** Timeouts of URL loads (the connect-timeout / idle-timeout parameters). */
let httpTimeouts: HttpTimeouts = {};
/** URL parameter step-stats=1: generations report the counters after every token. */
let stepStats = false;

function setBusy(b: boolean): void {
  busy = b;
  ui.generate.disabled = b || !loaded;
  ui.stop.disabled = !b;
  ui.loadUrl.disabled = b;
  ui.loadDemo.disabled = b;
}

worker.onmessage = (ev: MessageEvent<FromWorker>) => {
  const m = ev.data;
  switch (m.type) {
    case 'progress': {
      ui.progress.max = Math.max(1, m.totalBytes);
      ui.progress.value = m.loadedBytes;
      const net = m.networkBytes > 0 ? `; downloaded ${mib(m.networkBytes)}` : '';
      ui.loadLabel.textContent = m.phase === 'open' ? 'reading headers…' : `${m.phase === 'ready' ? 'loaded' : 'loading'} ${mib(m.loadedBytes)} / ${mib(m.totalBytes)}${net}`;
      break;
    }
    case 'download':
      if (!loaded) ui.loadLabel.textContent = `downloading… ${mib(m.networkBytes)}`;
      break;
    case 'experts': {
      const st = m.store;
      const from = st ? ` (${st.storeReads} from the OPFS expert store, ${st.fetches} downloaded)` : '';
      ui.loadLabel.textContent = `filling expert slots ${m.done} / ${m.total}${from}`;
      break;
    }
    case 'loaded': {
      loaded = m.info;
      const i = m.info;
      ui.progress.value = ui.progress.max;
      const from = i.networkBytes === 0 && i.cachedBytes > 0 ? 'from the OPFS cache' : i.cachedBytes > 0 ? `${mib(i.networkBytes)} downloaded, ${mib(i.cachedBytes)} cached` : i.networkBytes > 0 ? `${mib(i.networkBytes)} downloaded` : 'from disk';
      ui.loadLabel.textContent = `loaded in ${(i.loadMs / 1000).toFixed(1)} s (${from})`;
      ui.infoName.textContent = i.name;
      ui.infoAdapter.textContent = i.adapter;
      const o = i.offload;
      ui.infoGpu.textContent =
        i.backend !== 'webgpu'
          ? '– (CPU backend)'
          : o
            ? `${mib(i.gpuBytes)} of a ${mib(o.budgetBytes)} budget: ${o.slotsPerLayer}/${o.experts} expert slots per MoE layer${o.streaming ? `, the rest streamed from ${o.source}` : ' (every expert fits)'}`
            : mib(i.gpuBytes);
      ui.infoCtx.textContent = `${i.contextSize} tokens / ${i.vocabSize}`;
      ui.infoTokenizer.textContent = i.hasTokenizer ? 'yes' : 'none: give token ids';
      if (!i.hasTokenizer) ui.promptIsTokens.checked = true;
      setBusy(false);
      pending?.resolve(m);
      if (generateWhenLoaded) {
        generateWhenLoaded = false;
        generate();
      }
      break;
    }
    case 'token': {
      if (tokenCount === 0) firstTokenAt = performance.now();
      tokenCount++;
      appendOutput(loaded?.hasTokenizer ? m.text : `${m.index > 0 ? ' ' : ''}${m.token}`, m.special);
      const secs = (performance.now() - firstTokenAt) / 1000;
      ui.liveStats.textContent = `${tokenCount} tokens${secs > 0 && tokenCount > 1 ? `, ${((tokenCount - 1) / secs).toFixed(1)} tok/s` : ''}`;
      break;
    }
    case 'done': {
      // text held back for a stop string or an unfinished character comes only with done
      if (loaded?.hasTokenizer && m.text.startsWith(streamed)) appendOutput(m.text.slice(streamed.length), false);
      const s = m.stats;
      ui.finalStats.textContent =
        `${s.promptTokens} prompt + ${s.generatedTokens} generated (${s.finishReason}) · TTFT ${s.ttftMs.toFixed(0)} ms · ` +
        `prefill ${s.prefillTokensPerSecond.toFixed(1)} tok/s · decode ${s.decodeTokensPerSecond.toFixed(1)} tok/s · GPU ${mib(s.gpuBytes)} · seed ${m.seed}`;
      const st = m.experts;
      const store = st
        ? st.mode === 'opfs'
          ? ` · expert store: ${st.storeReads} read from OPFS (${mib(st.storeBytes)}), ${st.fetches} downloaded (${mib(st.fetchBytes)}), ${st.present}/${st.capacity} stored`
          : ` · no expert store (${st.reason ?? st.mode}): ${st.fetches} experts downloaded`
        : '';
      ui.offloadStats.textContent = m.offload ? `${m.offload}${store}` : '';
      ui.liveStats.textContent = '';
      setBusy(false);
      pending?.resolve(m);
      break;
    }
    case 'cleared':
      ui.status.textContent = 'cache cleared';
      break;
    case 'error':
      ui.status.textContent = `${m.name}: ${m.message}`;
      setBusy(false);
      pending?.reject(new Error(`${m.name}: ${m.message}`));
      break;
  }
};
worker.onerror = (ev) => {
  ui.status.textContent = `worker failed: ${ev.message}`;
  setBusy(false);
  pending?.reject(new Error(`worker failed: ${ev.message || 'could not start'}`));
};

/** Appends text to #output; special tokens (<|im_end|>, reserved ids...) are shown dimmed. */
function appendOutput(text: string, special: boolean): void {
  if (!text) return;
  streamed += text;
  if (special) {
    const span = document.createElement('span');
    span.className = 'special';
    span.textContent = text;
    ui.output.append(span);
  } else {
    ui.output.append(text);
  }
}

function load(source: { url: string } | { files: File[] }): void {
  loaded = undefined;
  ui.status.textContent = '';
  ui.progress.value = 0;
  ui.loadLabel.textContent = 'opening…';
  setBusy(true);
  let ctx: number | undefined;
  let gpuMemoryMiB: number | undefined;
  try {
    ctx = numberParam(new URLSearchParams({ 'ctx-size': ui.ctxSize.value }), 'ctx-size', { int: true, min: 1 }, 'field');
    if (ui.gpuMemory.validity.badInput) throw new InputError('field gpu-memory is not a number (MiB, e.g. 512 or 0.75; empty: no cap)', 'gpu-memory');
    gpuMemoryMiB = gpuMemoryParam(new URLSearchParams({ 'gpu-memory': ui.gpuMemory.value }), 'field');
  } catch (err) {
    fail(err);
    return;
  }
  send({ type: 'load', source, backend: ui.backend.value as Backend, ctxSize: ctx, http: httpTimeouts, ...(gpuMemoryMiB !== undefined ? { gpuMemoryMiB } : {}) });
}

/** Shows an error the page found itself (a bad value) as the worker's errors are shown. */
function fail(err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err));
  ui.status.textContent = `${e.name}: ${e.message}`;
  setBusy(false);
  pending?.reject(new Error(`${e.name}: ${e.message}`));
}

/** The form's values, checked with the URL parameters' rules (a number field holding "abc" reads as ""). */
function request(): GenerateRequest {
  const text = ui.prompt.value;
  const prompt = ui.promptIsTokens.checked ? tokenList(text) : text;
  const badInput = [ui.maxTokens, ui.temperature, ui.topK, ui.topP, ui.seed].find((el) => el.validity.badInput);
  if (badInput) throw new InputError(`${badInput.id} is not a number`, badInput.id);
  const q = new URLSearchParams({ model: 'form', 'max-tokens': ui.maxTokens.value, temperature: ui.temperature.value, 'top-k': ui.topK.value, 'top-p': ui.topP.value, seed: ui.seed.value });
  return { prompt, ...parseRunParams(q, 'field').request, ignoreEos: ui.ignoreEos.checked, ...(stepStats ? { stepStats } : {}) };
}

function generate(): void {
  if (!loaded || busy) return;
  let req: GenerateRequest;
  try {
    req = request();
  } catch (err) {
    fail(err);
    return;
  }
  ui.output.textContent = '';
  streamed = '';
  ui.finalStats.textContent = '';
  ui.offloadStats.textContent = '';
  ui.status.textContent = '';
  tokenCount = 0;
  setBusy(true);
  send({ type: 'generate', request: req });
}

ui.loadUrl.onclick = () => ui.url.value && load({ url: ui.url.value });
// One click: the demo model served by this site (vite.config.ts publicDir), its prompt, greedy; then generate.
let generateWhenLoaded = false;
ui.loadDemo.onclick = () => {
  ui.url.value = new URL('demo/', location.href).href;
  ui.prompt.value = demo.prompt;
  ui.promptIsTokens.checked = false;
  ui.maxTokens.value = String(demo.maxTokens);
  ui.temperature.value = String(demo.temperature);
  generateWhenLoaded = true;
  load({ url: ui.url.value });
};
ui.folder.onchange = () => ui.folder.files && ui.folder.files.length > 0 && load({ files: [...ui.folder.files] });
ui.generate.onclick = generate;
ui.stop.onclick = () => send({ type: 'stop' });
ui.clearCache.onclick = () => send({ type: 'clear-cache' });

/**
 * URL-driven mode: check every parameter (a bad one is `data-error` naming it, not a silent default), fill the
 * form, load, generate, report into #result.
 */
async function runFromUrl(q: URLSearchParams): Promise<void> {
  const step = (start: () => void): Promise<FromWorker> =>
    new Promise((resolve, reject) => {
      pending = { resolve, reject };
      start();
    });
  try {
    let run: ReturnType<typeof parseRunParams>;
    try {
      run = parseRunParams(q);
    } catch (err) {
      const e = err as Error;
      throw new Error(`${e.name}: ${e.message}`);
    }
    const r = run.request;
    const put = (el: HTMLInputElement, v: number | undefined): void => {
      if (v !== undefined) el.value = String(v);
    };
    ui.url.value = run.model;
    if (run.backend) ui.backend.value = run.backend;
    put(ui.ctxSize, run.ctxSize);
    put(ui.gpuMemory, run.gpuMemoryMiB);
    put(ui.maxTokens, r.maxTokens);
    put(ui.temperature, r.temperature);
    put(ui.topK, r.topK);
    put(ui.topP, r.topP);
    put(ui.seed, r.seed);
    ui.ignoreEos.checked = r.ignoreEos ?? false;
    const isTokens = Array.isArray(run.prompt);
    if (run.prompt !== undefined) ui.prompt.value = isTokens ? (run.prompt as number[]).join(',') : (run.prompt as string);
    if (isTokens) ui.promptIsTokens.checked = true;
    httpTimeouts = run.http;
    stepStats = run.stepStats === true;
    const ready = await step(() => load({ url: run.model }));
    if (isTokens) ui.promptIsTokens.checked = true;
    // warm-up: the first generation compiles the pipelines; its TTFT minus the measured one is the compile time
    const cold = run.warmup ? await step(generate) : undefined;
    const done = await step(generate);
    if (done.type !== 'done' || (cold && cold.type !== 'done')) throw new Error('generation did not finish');
    const warmup = cold?.type === 'done' ? { ttftMs: cold.stats.ttftMs, totalMs: cold.stats.totalMs, pipelineCompileMs: Math.max(0, cold.stats.ttftMs - done.stats.ttftMs) } : undefined;
    ui.result.textContent = JSON.stringify({
      tokens: done.tokens,
      stats: done.stats,
      ...(warmup ? { warmup } : {}),
      ...(ready.type === 'loaded' ? { loaded: ready.info } : {}),
      ...(done.experts ? { experts: done.experts } : {}),
      ...(done.steps ? { steps: done.steps } : {}),
    });
    ui.result.dataset.done = 'true';
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    ui.status.textContent = msg;
    ui.result.dataset.error = msg;
  } finally {
    pending = undefined;
  }
}

const query = new URLSearchParams(location.search);
if (query.get('model')) void runFromUrl(query);
if (!('gpu' in navigator)) ui.status.textContent = 'This browser has no WebGPU (navigator.gpu): use Chrome/Edge 113+ over https or localhost, or the CPU backend.';
