/**
 * The page: UI only. The engine runs in worker.ts; this file sends it load / generate / stop messages and
 * shows progress, streamed tokens and stats.
 *
 * URL-driven mode (tests, shared runs): `?model=URL&prompt-tokens=1,2,3&max-tokens=N&temperature=0[&ignore-eos=1]`
 * (also `prompt`, `top-k`, `top-p`, `seed`, `ctx-size`, `backend=webgpu|cpu`) loads the checkpoint folder at URL
 * and generates; then `#result` gets `{"tokens": [...], "stats": {...}}` and `data-done="true"`, or only
 * `data-error` with the message when anything fails.
 */
import type { Backend, FromWorker, GenerateRequest, LoadedInfo, ToWorker } from './protocol.js';

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
};

const ui = {
  url: $<HTMLInputElement>('model-url'),
  loadUrl: $<HTMLButtonElement>('load-url'),
  folder: $<HTMLInputElement>('model-folder'),
  backend: $<HTMLSelectElement>('backend'),
  ctxSize: $<HTMLInputElement>('ctx-size'),
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

function setBusy(b: boolean): void {
  busy = b;
  ui.generate.disabled = b || !loaded;
  ui.stop.disabled = !b;
  ui.loadUrl.disabled = b;
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
    case 'loaded': {
      loaded = m.info;
      const i = m.info;
      ui.progress.value = ui.progress.max;
      const from = i.networkBytes === 0 && i.cachedBytes > 0 ? 'from the OPFS cache' : i.cachedBytes > 0 ? `${mib(i.networkBytes)} downloaded, ${mib(i.cachedBytes)} cached` : i.networkBytes > 0 ? `${mib(i.networkBytes)} downloaded` : 'from disk';
      ui.loadLabel.textContent = `loaded in ${(i.loadMs / 1000).toFixed(1)} s (${from})`;
      ui.infoName.textContent = i.name;
      ui.infoAdapter.textContent = i.adapter;
      ui.infoGpu.textContent = i.backend === 'webgpu' ? mib(i.gpuBytes) : '– (CPU backend)';
      ui.infoCtx.textContent = `${i.contextSize} tokens / ${i.vocabSize}`;
      ui.infoTokenizer.textContent = i.hasTokenizer ? 'yes' : 'none: give token ids';
      if (!i.hasTokenizer) ui.promptIsTokens.checked = true;
      setBusy(false);
      pending?.resolve(m);
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
  const ctx = ui.ctxSize.value ? Number(ui.ctxSize.value) : undefined;
  send({ type: 'load', source, backend: ui.backend.value as Backend, ctxSize: ctx });
}

const optionalNumber = (el: HTMLInputElement): number | undefined => (el.value.trim() === '' ? undefined : Number(el.value));

function request(): GenerateRequest {
  const text = ui.prompt.value;
  const prompt = ui.promptIsTokens.checked ? text.split(/[\s,]+/).filter(Boolean).map(Number) : text;
  return {
    prompt,
    maxTokens: optionalNumber(ui.maxTokens),
    temperature: optionalNumber(ui.temperature),
    topK: optionalNumber(ui.topK),
    topP: optionalNumber(ui.topP),
    seed: optionalNumber(ui.seed),
    ignoreEos: ui.ignoreEos.checked,
  };
}

function generate(): void {
  if (!loaded || busy) return;
  ui.output.textContent = '';
  streamed = '';
  ui.finalStats.textContent = '';
  ui.status.textContent = '';
  tokenCount = 0;
  setBusy(true);
  send({ type: 'generate', request: request() });
}

ui.loadUrl.onclick = () => ui.url.value && load({ url: ui.url.value });
ui.folder.onchange = () => ui.folder.files && ui.folder.files.length > 0 && load({ files: [...ui.folder.files] });
ui.generate.onclick = generate;
ui.stop.onclick = () => send({ type: 'stop' });
ui.clearCache.onclick = () => send({ type: 'clear-cache' });

/** URL-driven mode: fill the form from the query, load, generate, report into #result. */
async function runFromUrl(q: URLSearchParams): Promise<void> {
  const model = q.get('model')!;
  const set = (el: HTMLInputElement, key: string): void => {
    const v = q.get(key);
    if (v !== null) el.value = v;
  };
  ui.url.value = model;
  if (q.get('backend')) ui.backend.value = q.get('backend')!;
  set(ui.ctxSize, 'ctx-size');
  set(ui.maxTokens, 'max-tokens');
  set(ui.temperature, 'temperature');
  set(ui.topK, 'top-k');
  set(ui.topP, 'top-p');
  set(ui.seed, 'seed');
  ui.ignoreEos.checked = ['1', 'true'].includes(q.get('ignore-eos') ?? '');
  const tokens = q.get('prompt-tokens');
  if (tokens !== null) {
    ui.prompt.value = tokens;
    ui.promptIsTokens.checked = true;
  } else if (q.get('prompt') !== null) {
    ui.prompt.value = q.get('prompt')!;
  }
  const step = (start: () => void): Promise<FromWorker> =>
    new Promise((resolve, reject) => {
      pending = { resolve, reject };
      start();
    });
  try {
    await step(() => load({ url: model }));
    if (tokens !== null) ui.promptIsTokens.checked = true;
    const done = await step(generate);
    if (done.type !== 'done') throw new Error('generation did not finish');
    ui.result.textContent = JSON.stringify({ tokens: done.tokens, stats: done.stats });
    ui.result.dataset.done = 'true';
  } catch (err) {
    ui.result.dataset.error = err instanceof Error ? err.message : String(err);
  } finally {
    pending = undefined;
  }
}

const query = new URLSearchParams(location.search);
if (query.get('model')) void runFromUrl(query);
if (!('gpu' in navigator)) ui.status.textContent = 'This browser has no WebGPU (navigator.gpu): use Chrome/Edge 113+ over https or localhost, or the CPU backend.';
