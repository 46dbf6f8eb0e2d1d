/**
 * `webmoe bench batch`: what concurrent streams cost (issue: concurrent streams), ratios within one run.
 *   engine   aggregate decode tokens/s of B streams in batched steps (BatchSession.step, sequences prefilled
 *            first, decode steps only) for B = 1, 2, 4, 8, against the single-stream rate of the ordinary session
 *            (GpuSession.decode); targets: >= 3x at 4 streams and >= 5x at 8 on the `small` toy
 *   bytes    why: the weights a step reads once whatever B (dense, attention, router, shared expert, lm_head)
 *            and the routed experts, read per (token, slot) by the by-id kernels today (a union-of-experts kernel
 *            would read E·(1 - (1 - K/E)^B) experts per layer: printed beside it)
 *   join     time to first token of a request that arrives while 3 others decode, against the same request alone
 *            (target <= 2x)
 * Greedy sampling; the machine's load shows in absolute figures, so read the ratios.
 */
import type { GpuContext } from '../src/gpu/device.js';
import type { Checkpoint } from '../src/model/checkpoint.js';
import { createBatchSession, type BatchSession } from '../src/engine/batch-session.js';
import { createSession } from '../src/engine/session.js';
import { BatchScheduler } from '../src/engine/scheduler.js';
import { generate } from '../src/engine/generate.js';
import { benchPrompt, GREEDY } from './e2e.js';
import { median } from './harness.js';

export interface BatchRow {
  model: string;
  streams: number;
  stepMs: number;
  tokensPerSecond: number;
  /** aggregate tokens/s over the single-stream rate of the ordinary session */
  speedup: number;
  target?: number;
}

export interface BatchReport {
  schema: 'webmoe-bench-batch/1';
  adapter: string;
  rows: BatchRow[];
  singleStream: Array<{ model: string; tokensPerSecond: number }>;
  bytes: Array<{ model: string; streams: number; sharedBytes: number; expertBytesById: number; expertBytesUnion: number }>;
  join: Array<{ model: string; ttftAloneMs: number; ttftWhileThreeDecodeMs: number; ratio: number; target: number }>;
}

const STREAMS = [1, 2, 4, 8];
const TARGETS: Record<number, number> = { 4: 3, 8: 5 };

export async function runBatchBench(gpu: GpuContext, models: Array<{ name: string; ckpt: Checkpoint }>, opts: { steps?: number; onProgress?: (label: string) => void } = {}): Promise<BatchReport> {
  const steps = opts.steps ?? 16;
  const report: BatchReport = { schema: 'webmoe-bench-batch/1', adapter: gpu.info.description || gpu.info.device, rows: [], singleStream: [], bytes: [], join: [] };
  for (const { name, ckpt } of models) {
    opts.onProgress?.(`${name}: single stream`);
    const single = await singleStreamRate(gpu, ckpt, steps);
    report.singleStream.push({ model: name, tokensPerSecond: single });
    const batch = await createBatchSession(gpu, ckpt, { ctxSize: 128, maxSequences: 8 });
    try {
      for (const B of STREAMS) {
        opts.onProgress?.(`${name}: ${B} streams`);
        const ms = await batchStepMs(batch, B, steps);
        const tps = (B / ms) * 1000;
        report.rows.push({ model: name, streams: B, stepMs: ms, tokensPerSecond: tps, speedup: tps / single, target: TARGETS[B] });
        report.bytes.push({ model: name, streams: B, ...stepBytes(ckpt, B) });
      }
      opts.onProgress?.(`${name}: a request joining 3 decoding streams`);
      report.join.push({ model: name, ...(await joinTtft(batch, steps)), target: 2 });
    } finally {
      batch.dispose();
    }
  }
  return report;
}

async function singleStreamRate(gpu: GpuContext, ckpt: Checkpoint, steps: number): Promise<number> {
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
    return 1000 / median(times);
  } finally {
    s.dispose();
  }
}

/** Median time of a batched step of B streams (each prefilled with its own 8-token prompt first). */
async function batchStepMs(batch: BatchSession, B: number, steps: number): Promise<number> {
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
    return median(times);
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
    lines.push(`${s.model}: single stream (ordinary session) ${s.tokensPerSecond.toFixed(1)} tok/s`);
    for (const row of r.rows.filter((x) => x.model === s.model)) {
      const b = r.bytes.find((x) => x.model === s.model && x.streams === row.streams)!;
      const mib = (n: number) => (n / 2 ** 20).toFixed(2);
      lines.push(
        `  ${row.streams} streams: step ${row.stepMs.toFixed(1)} ms, ${row.tokensPerSecond.toFixed(1)} tok/s = ${row.speedup.toFixed(2)}x single` +
          (row.target ? ` (target >= ${row.target}x: ${row.speedup >= row.target ? 'met' : 'NOT met'})` : '') +
          `; reads ${mib(b.sharedBytes)} MiB shared + ${mib(b.expertBytesById)} MiB experts by id (union would be ${mib(b.expertBytesUnion)})`,
      );
    }
    const j = r.join.find((x) => x.model === s.model);
    if (j) lines.push(`  TTFT of a 48-token prompt: alone ${j.ttftAloneMs.toFixed(0)} ms, while 3 streams decode ${j.ttftWhileThreeDecodeMs.toFixed(0)} ms = ${j.ratio.toFixed(2)}x (target <= ${j.target}x: ${j.ratio <= j.target ? 'met' : 'NOT met'})`);
  }
  return lines.join('\n');
}
