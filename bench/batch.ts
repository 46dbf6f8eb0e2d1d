/**
 * `webmoe bench batch`: what concurrent streams cost, ratios within one run.
 *   engine   aggregate decode tokens/s of B streams in batched steps (BatchSession.step, sequences prefilled
 *            first, decode steps only) for B = 1, 2, 4, 8, against the single-stream rate of the ordinary session;
 *            both pipelined as generate() and the scheduler run them (PIPELINE_DEPTH steps in flight, tokens read
 *            on the GPU), and both one step at a time; targets: >= 3x at 4 streams and >= 5x at 8 on `small`
 *   bytes    why: the weights a step reads once whatever B (dense, attention, router, shared expert, lm_head)
 *            and the routed experts, read per (token, slot) by the by-id kernels today (a union-of-experts kernel
 *            would read E·(1 - (1 - K/E)^B) experts per layer: printed beside it)
 *   join     time to first token of a request that arrives while 3 others decode, against the same request alone
 *            (target <= 2x)
 *   server   `webmoe serve`'s request path in process on loopback (toy checkpoints with a tokenizer): 4 chat
 *            requests of 48 new tokens at once against the same 4 one after another (target >= 2.5x sooner); then
 *            16 streaming clients at once: every response complete and equal to its solo answer, and the process
 *            RSS and GPU bytes after the burst against before it (target within 5 %)
 * Greedy sampling; the machine's load shows in absolute figures, so read the ratios.
 */
import type { GpuContext } from '../src/gpu/device.js';
import type { Checkpoint, CheckpointFiles } from '../src/model/checkpoint.js';
import { createBatchSession, type BatchSession } from '../src/engine/batch-session.js';
import { createSession } from '../src/engine/session.js';
import { BatchScheduler } from '../src/engine/scheduler.js';
import { generate } from '../src/engine/generate.js';
import { PIPELINE_DEPTH } from '../src/engine/types.js';
import { benchPrompt, GREEDY } from './e2e.js';
import { median } from './harness.js';

export interface BatchRow {
  model: string;
  streams: number;
  /** mean step time with PIPELINE_DEPTH steps in flight (as the scheduler runs them) */
  stepMs: number;
  tokensPerSecond: number;
  /** aggregate tokens/s over the single-stream rate of the ordinary session, both pipelined (as generate() runs) */
  speedup: number;
  target?: number;
  /** the same with one step at a time (host-fed tokens, each step read back before the next is recorded) */
  oneAtATime: { stepMs: number; tokensPerSecond: number; speedup: number };
}

export interface BatchReport {
  schema: 'webmoe-bench-batch/1';
  adapter: string;
  rows: BatchRow[];
  /** tokensPerSecond: pipelined, as generate() runs an ordinary session; and one step at a time */
  singleStream: Array<{ model: string; tokensPerSecond: number; oneAtATimeTokensPerSecond: number }>;
  bytes: Array<{ model: string; streams: number; sharedBytes: number; expertBytesById: number; expertBytesUnion: number }>;
  join: Array<{ model: string; ttftAloneMs: number; ttftWhileThreeDecodeMs: number; ratio: number; target: number }>;
  server: Array<ServerRow>;
}

export interface ServerRow {
  model: string;
  sequentialMs: number;
  concurrentMs: number;
  /** mean rows per batched step while the 4 requests ran at once */
  rowsPerStep: number;
  speedup: number;
  target: number;
  burstClients: number;
  burstCorrect: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  /** after a second, identical burst (rssAfterMiB is after the first) */
  rssAfterSecondMiB: number;
  gpuBytesBefore: number;
  gpuBytesAfter: number;
}

const STREAMS = [1, 2, 4, 8];
const TARGETS: Record<number, number> = { 4: 3, 8: 5 };

export async function runBatchBench(
  gpu: GpuContext,
  models: Array<{ name: string; ckpt: Checkpoint }>,
  opts: { steps?: number; onProgress?: (label: string) => void; serverModels?: Array<{ name: string; files: CheckpointFiles }> } = {},
): Promise<BatchReport> {
  const steps = opts.steps ?? 16;
  const report: BatchReport = { schema: 'webmoe-bench-batch/1', adapter: gpu.info.description || gpu.info.device, rows: [], singleStream: [], bytes: [], join: [], server: [] };
  for (const { name, ckpt } of models) {
    opts.onProgress?.(`${name}: single stream`);
    const single = await singleStreamRate(gpu, ckpt, steps);
    report.singleStream.push({ model: name, tokensPerSecond: single.pipelined, oneAtATimeTokensPerSecond: single.oneAtATime });
    const batch = await createBatchSession(gpu, ckpt, { ctxSize: 128, maxSequences: 8 });
    try {
      await batch.warmUp(); // as loadTextModel does: no pipeline compiles inside the timed steps
      for (const B of STREAMS) {
        opts.onProgress?.(`${name}: ${B} streams`);
        const ms = await batchStepMs(batch, B, steps);
        const tps = (B / ms.pipelined) * 1000;
        const tps1 = (B / ms.oneAtATime) * 1000;
        report.rows.push({
          model: name,
          streams: B,
          stepMs: ms.pipelined,
          tokensPerSecond: tps,
          speedup: tps / single.pipelined,
          target: TARGETS[B],
          oneAtATime: { stepMs: ms.oneAtATime, tokensPerSecond: tps1, speedup: tps1 / single.oneAtATime },
        });
        report.bytes.push({ model: name, streams: B, ...stepBytes(ckpt, B) });
      }
      opts.onProgress?.(`${name}: a request joining 3 decoding streams`);
      report.join.push({ model: name, ...(await joinTtft(batch, steps)), target: 2 });
    } finally {
      batch.dispose();
    }
  }
  for (const { name, files } of opts.serverModels ?? []) {
    opts.onProgress?.(`${name}: serve, 4 requests at once vs one after another, 16 streaming clients`);
    report.server.push(await serverRun(gpu, name, files));
  }
  return report;
}

/** A full garbage collection on demand (V8's gc, exposed at run time), so RSS compares live memory. */
async function collector(): Promise<() => void> {
  const v8 = await import('node:v8');
  const vm = await import('node:vm');
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/** The server path in process: a batched model behind startServer on 127.0.0.1, requests with fetch. */
async function serverRun(gpu: GpuContext, name: string, files: CheckpointFiles): Promise<ServerRow> {
  const { loadTextModel, requireTokenizer } = await import('../src/engine/text-model.js');
  const { startServer } = await import('../src/agent/server.js');
  const model = requireTokenizer(await loadTextModel(files, { backend: 'webgpu', gpu, ctxSize: 256, maxSequences: 16 }));
  const server = await startServer({ model, modelId: name, port: 0 });
  try {
    const chat = async (content: string, maxTokens: number, stream = false): Promise<string> => {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: name, messages: [{ role: 'user', content }], max_tokens: maxTokens, temperature: 0, stream }),
      });
      if (res.status !== 200) throw new Error(`serve answered ${res.status}: ${await res.text()}`);
      if (!stream) return ((await res.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content;
      let text = '';
      for (const line of (await res.text()).split('\n')) {
        if (!line.startsWith('data: {')) continue;
        text += (JSON.parse(line.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '';
      }
      return text;
    };
    const prompts = ['Write a function.', 'Explain the code below.', 'List three ideas.', 'Continue the story.'];
    await chat('warm up', 4);
    let t0 = performance.now();
    const alone: string[] = [];
    for (const p of prompts) alone.push(await chat(p, 48));
    const sequentialMs = performance.now() - t0;
    const before = model.scheduler!.stats();
    t0 = performance.now();
    await Promise.all(prompts.map((p) => chat(p, 48)));
    const concurrentMs = performance.now() - t0;
    const after = model.scheduler!.stats();
    const rowsPerStep = (after.rows - before.rows) / Math.max(1, after.steps - before.steps);
    // the burst: 16 streaming clients, each checked against its answer alone
    const burst = Array.from({ length: 16 }, (_, i) => `client ${i} asks`);
    const solo: string[] = [];
    for (const p of burst) solo.push(await chat(p, 12));
    const gc = await collector();
    gc();
    const rssBefore = process.memoryUsage().rss;
    const gpuBefore = model.session.gpuBytes();
    const got = await Promise.all(burst.map((p) => chat(p, 12, true)));
    await new Promise((r) => setTimeout(r, 100));
    gc();
    const rssAfter = process.memoryUsage().rss;
    // the same burst again: growth that repeats is a leak, growth that does not is first use (16-row steps'
    // pipelines, bind groups and the driver's pools are created during the first burst)
    const again = await Promise.all(burst.map((p) => chat(p, 12, true)));
    await new Promise((r) => setTimeout(r, 100));
    gc();
    return {
      model: name, sequentialMs, concurrentMs, speedup: sequentialMs / concurrentMs, target: 2.5, rowsPerStep,
      burstClients: burst.length, burstCorrect: got.filter((g, i) => g === solo[i] && again[i] === g).length,
      rssBeforeMiB: rssBefore / 2 ** 20, rssAfterMiB: rssAfter / 2 ** 20, rssAfterSecondMiB: process.memoryUsage().rss / 2 ** 20,
      gpuBytesBefore: gpuBefore, gpuBytesAfter: model.session.gpuBytes(),
    };
  } finally {
    await server.close();
    await model.close();
  }
}

/**
 * Decode tokens/s of one stream on an ordinary session, as generate() runs it: PIPELINE_DEPTH steps in flight,
 * each reading the token its predecessor sampled on the GPU (decodeNext); and the same one step at a time.
 */
async function singleStreamRate(gpu: GpuContext, ckpt: Checkpoint, steps: number): Promise<{ pipelined: number; oneAtATime: number }> {
  const s = await createSession(gpu, ckpt, { ctxSize: 128 });
  try {
    let t = await s.prefill(benchPrompt(s.vocabSize, 8), GREEDY);
    for (let i = 0; i < 3; i++) t = await s.decode(t, GREEDY);
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      t = await s.decode(t, GREEDY);
      times.push(performance.now() - t0);
    }
    const ms = await pipelinedMs(steps, () => s.decodeNext(GREEDY));
    return { pipelined: 1000 / ms, oneAtATime: 1000 / median(times) };
  } finally {
    s.dispose();
  }
}

/**
 * Time per step with PIPELINE_DEPTH steps in flight: the median over 3 runs of `steps` steps of each run's mean
 * (after 3 untimed steps). `submit` must not run past the context: 3 + 3·steps steps.
 */
async function pipelinedMs(steps: number, submit: () => Promise<unknown>): Promise<number> {
  const run = async (n: number) => {
    const ahead: Array<Promise<unknown>> = [];
    for (let i = 0; i < n; i++) {
      if (ahead.length === PIPELINE_DEPTH) await ahead.shift();
      ahead.push(submit());
    }
    await Promise.all(ahead);
  };
  await run(3);
  const means: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    await run(steps);
    means.push((performance.now() - t0) / steps);
  }
  return median(means);
}

/**
 * Time of a batched step of B streams (each prefilled with its own 8-token prompt first): pipelined (each step's
 * rows read their tokens on the GPU, PIPELINE_DEPTH steps in flight, as the scheduler runs them) and one at a time
 * (median, host-fed tokens).
 */
async function batchStepMs(batch: BatchSession, B: number, steps: number): Promise<{ pipelined: number; oneAtATime: number }> {
  const ids: number[] = [];
  const last: number[] = [];
  try {
    for (let b = 0; b < B; b++) {
      ids.push(batch.openSequence());
      last.push(await batch.prefill(ids[b]!, benchPrompt(batch.vocabSize, 8, 100 + b), GREEDY));
    }
    const step = async () => {
      const out = await batch.step(ids.map((sequence, b) => ({ sequence, token: last[b]!, sampling: GREEDY })));
      out.forEach((t, b) => (last[b] = t));
    };
    for (let i = 0; i < 3; i++) await step();
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      await step();
      times.push(performance.now() - t0);
    }
    const pipelined = await pipelinedMs(steps, () => batch.step(ids.map((sequence) => ({ sequence, sampling: GREEDY }))));
    return { pipelined, oneAtATime: median(times) };
  } finally {
    for (const id of ids) batch.closeSequence(id);
  }
}

/** TTFT of a 48-token prompt alone, then while three streams decode (through the scheduler, as serve runs it). */
async function joinTtft(batch: BatchSession, steps: number): Promise<{ ttftAloneMs: number; ttftWhileThreeDecodeMs: number; ratio: number }> {
  const scheduler = new BatchScheduler(batch);
  const prompt = benchPrompt(batch.vocabSize, 48, 7);
  const ttft = async (): Promise<number> => {
    const lane = scheduler.lane();
    try {
      for await (const ev of generate(lane, undefined, prompt, { maxTokens: 1, temperature: 0, ignoreEos: true })) if (ev.type === 'done') return ev.stats.ttftMs;
      return NaN;
    } finally {
      lane.release();
    }
  };
  await ttft(); // warm
  const alone = median([await ttft(), await ttft(), await ttft()]);
  const background = [0, 1, 2].map(async (i) => {
    const lane = scheduler.lane();
    try {
      for await (const _ of generate(lane, undefined, benchPrompt(batch.vocabSize, 8, 200 + i), { maxTokens: steps * 4, temperature: 0, ignoreEos: true }));
    } finally {
      lane.release();
    }
  });
  await new Promise((r) => setTimeout(r, 50)); // let the three start decoding
  const joined = await ttft();
  await Promise.all(background);
  return { ttftAloneMs: alone, ttftWhileThreeDecodeMs: joined, ratio: joined / alone };
}

/** Bytes one batched step reads: the shared part once, routed experts by id (today) and as a union (ideal). */
function stepBytes(ckpt: Checkpoint, B: number): { sharedBytes: number; expertBytesById: number; expertBytesUnion: number } {
  const c = ckpt.config;
  let shared = 0;
  let expertBytes = 0;
  const experts = new Set<string>();
  for (const t of ckpt.tensors.values()) {
    const expert = /^(?:language_model\.)?model\.layers\.(\d+)\.mlp\.experts\.(\d+)\./.exec(t.name);
    if (expert) {
      expertBytes += t.byteLength;
      experts.add(`${expert[1]}.${expert[2]}`);
    } else if (!/embed_tokens/.test(t.name)) shared += t.byteLength; // a step reads one embedding row
  }
  const moeLayers = c.derived.moeLayers.filter(Boolean).length;
  const perExpert = experts.size > 0 ? expertBytes / experts.size : 0;
  const E = c.n_routed_experts;
  const K = c.num_experts_per_tok;
  return {
    sharedBytes: shared,
    expertBytesById: moeLayers * B * K * perExpert,
    expertBytesUnion: moeLayers * E * (1 - Math.pow(1 - K / E, B)) * perExpert,
  };
}

export function formatBatchSummary(r: BatchReport): string {
  const lines = [`webmoe bench batch on ${r.adapter}`];
  for (const s of r.singleStream) {
    lines.push(`${s.model}: single stream (ordinary session, pipelined as generate() runs it) ${s.tokensPerSecond.toFixed(1)} tok/s (one step at a time ${s.oneAtATimeTokensPerSecond.toFixed(1)})`);
    for (const row of r.rows.filter((x) => x.model === s.model)) {
      const b = r.bytes.find((x) => x.model === s.model && x.streams === row.streams)!;
      const mib = (n: number) => (n / 2 ** 20).toFixed(2);
      lines.push(
        `  ${row.streams} streams: step ${row.stepMs.toFixed(1)} ms, ${row.tokensPerSecond.toFixed(1)} tok/s = ${row.speedup.toFixed(2)}x single` +
          (row.target ? ` (target >= ${row.target}x: ${row.speedup >= row.target ? 'met' : 'NOT met'})` : '') +
          `; one step at a time ${row.oneAtATime.stepMs.toFixed(1)} ms = ${row.oneAtATime.speedup.toFixed(2)}x single; reads ${mib(b.sharedBytes)} MiB shared + ${mib(b.expertBytesById)} MiB experts by id (union would be ${mib(b.expertBytesUnion)})`,
      );
    }
    const j = r.join.find((x) => x.model === s.model);
    if (j) lines.push(`  TTFT of a 48-token prompt: alone ${j.ttftAloneMs.toFixed(0)} ms, while 3 streams decode ${j.ttftWhileThreeDecodeMs.toFixed(0)} ms = ${j.ratio.toFixed(2)}x (target <= ${j.target}x: ${j.ratio <= j.target ? 'met' : 'NOT met'})`);
  }
  for (const s of r.server) {
    const within = (a: number, b: number) => Math.abs(a - b) <= 0.05 * b;
    lines.push(
      `${s.model} through serve: 4 chat requests of 48 tokens one after another ${s.sequentialMs.toFixed(0)} ms, at once ${s.concurrentMs.toFixed(0)} ms = ${s.speedup.toFixed(2)}x sooner (target >= ${s.target}x: ${s.speedup >= s.target ? "met" : "NOT met"}), ${s.rowsPerStep.toFixed(2)} rows per batched step`,
      `  16 streaming clients at once, twice: ${s.burstCorrect}/${s.burstClients} answers equal their solo answers both times; RSS ${s.rssBeforeMiB.toFixed(0)} -> ${s.rssAfterMiB.toFixed(0)} MiB after the first burst (target within 5 %: ${within(s.rssAfterMiB, s.rssBeforeMiB) ? 'met' : 'NOT met'}), -> ${s.rssAfterSecondMiB.toFixed(0)} MiB after the second (${within(s.rssAfterSecondMiB, s.rssAfterMiB) ? 'within 5 %' : s.rssAfterSecondMiB > s.rssAfterMiB ? 'GROWS' : 'shrinks'}); GPU ${(s.gpuBytesBefore / 2 ** 20).toFixed(1)} -> ${(s.gpuBytesAfter / 2 ** 20).toFixed(1)} MiB (${within(s.gpuBytesAfter, s.gpuBytesBefore) ? 'met' : 'NOT met'})`,
    );
  }
  return lines.join('\n');
}
