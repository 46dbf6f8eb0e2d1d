/**
 * `webmoe bench e2e`: end-to-end numbers of toy checkpoints through any InferenceSession (the WebGPU engine
 * and the CPU reference as the baseline), measured the way a user experiences them:
 *   TTFT        prefill(prompt) until the first sampled token is back on the CPU (median of `repeats`, each on
 *               a reset cache); prefill tokens/s = prompt tokens / TTFT
 *   decode      `decodeTokens` single-token steps after the prompt, each timed to its sampled token; the step
 *               time is the median, decode tokens/s = steps / their total time
 *   roofline    the bytes one decode step must read (roofline.ts) / the measured streaming-read bandwidth;
 *               fraction = roofline time / median step time
 *   submissions queue.submit calls and compute dispatches of one decode step (WebGPU; target: 1 submission),
 *               counted on an extra, untimed step; with the measured per-dispatch and submit costs they give
 *               the step's fixed cost, which is what dominates toy-scale steps on CPU adapters
 * A warm-up generation (pipelines, first-use clears, first mapAsync) runs before anything is timed. Greedy
 * sampling. Browser-safe (the caller opens the checkpoints).
 */
import type { GpuContext } from '../src/gpu/device.js';
import type { Checkpoint } from '../src/model/checkpoint.js';
import type { DoneEvent, InferenceSession, StepSampling } from '../src/engine/types.js';
import { generate } from '../src/engine/generate.js';
import type { Ceilings } from './ceilings.js';
import { median } from './harness.js';
import { captureWork, profileDispatches, timeSequence, type KernelTime } from './profile.js';
import { decodeStepBytes } from './roofline.js';
import { clamp01, type E2eRow, type LayerDispatches } from './schema.js';
import { HEAD_MARKER, parseLayerMarker } from '../src/engine/forward.js';
import { rng } from './data.js';

export const GREEDY: StepSampling = { temperature: 0, topK: 0, topP: 1, uniform: 0 };

export interface E2eOptions {
  /** Prompt length (tokens); the prompt is seeded random ids (timing does not depend on them). */
  promptTokens: number;
  decodeTokens: number;
  /** Prefill measurements (each on a reset cache). */
  repeats: number;
  /** Replay one decode step's dispatches one by one for a per-kernel breakdown (WebGPU). */
  profile: boolean;
}

export const DEFAULT_E2E: E2eOptions = { promptTokens: 64, decodeTokens: 32, repeats: 3, profile: true };

/** A deterministic prompt of `n` ids in [2, vocab) (0 and 1 are often bos / eos). */
export function benchPrompt(vocab: number, n: number, seed = 1234): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => 2 + Math.floor(r() * Math.max(1, vocab - 2)));
}

export interface SessionTimings {
  ttftMs: number;
  stepMs: number[];
  tokens: number[];
  submissionsPerStep?: number;
  /** decode tokens/s of generate() over the same prompt and token count (see E2eRow.generate_decode_tokens_per_s) */
  generateTokensPerS?: number;
  generateSameTokens?: boolean;
  dispatchesPerStep?: number;
  /** Dispatches per layer and outside the layers (from the engine's layer markers). */
  layerDispatches?: { layers: LayerDispatches[]; outside: number };
  /** Isolated GPU time of the step's dispatches, per kernel (profile.ts). */
  profile?: KernelTime[];
  /** GPU time of the recorded steps (pass timestamps, median), or of a step's dispatches replayed as one sequence (ms). */
  kernelMs?: number;
}

/** Times one session (see the file header); leaves it reset. */
export async function timeSession(session: InferenceSession, prompt: number[], opts: E2eOptions, gpu?: GpuContext): Promise<SessionTimings> {
  // warm-up: a short prefill and two steps
  session.reset();
  let t = await session.prefill(prompt.slice(0, Math.min(4, prompt.length)), GREEDY);
  for (let i = 0; i < 2; i++) t = await session.decode(t, GREEDY);
  const ttfts: number[] = [];
  let first = 0;
  for (let r = 0; r < Math.max(1, opts.repeats); r++) {
    session.reset();
    const t0 = performance.now();
    first = await session.prefill(prompt, GREEDY);
    ttfts.push(performance.now() - t0);
  }
  const stepMs: number[] = [];
  const tokens = [first];
  let tok = first;
  for (let i = 0; i < opts.decodeTokens && session.position + 1 < session.contextSize; i++) {
    const t0 = performance.now();
    tok = await session.decode(tok, GREEDY);
    stepMs.push(performance.now() - t0);
    tokens.push(tok);
  }
  const out: SessionTimings = { ttftMs: median(ttfts), stepMs, tokens };
  if (gpu) {
    // more, untimed steps with their work recorded, then each dispatch of the last one replayed alone (this
    // garbles the activations and the cache row of that step, so it comes last and the session is reset after it)
    // five recorded steps: the GPU time is their median (timestamps are stable; wall times on a shared
    // machine are not, so the step time stays the median of the timed steps above)
    const gpuMs: number[] = [];
    let next = tok;
    let c: Awaited<ReturnType<typeof captureWork<number>>>;
    for (let i = 0; ; i++) {
      c = await captureWork(gpu, () => session.decode(next, GREEDY));
      next = c.result;
      if (c.gpuMs !== undefined) gpuMs.push(c.gpuMs);
      if (i === 4 || session.position + 1 >= session.contextSize) break;
    }
    out.submissionsPerStep = c.submissions;
    out.dispatchesPerStep = c.dispatches.length;
    out.layerDispatches = dispatchesByLayer(c.markers, c.dispatches.length);
    if (gpuMs.length) out.kernelMs = median(gpuMs);
    if (opts.profile) {
      out.kernelMs ??= await timeSequence(gpu, c!.dispatches);
      out.profile = await profileDispatches(gpu, c!.dispatches);
    }
  }
  // the same decode through generate(), as a user runs it: pipelined where the session offers decodeNext
  // (median of `repeats` generations: one generation's rate is a single sample, not a median of steps)
  const rates: number[] = [];
  out.generateSameTokens = true;
  for (let r = 0; r < Math.max(1, opts.repeats); r++) {
    const gen = await generationOf(session, prompt, opts.decodeTokens + 1);
    rates.push(gen.stats.decodeTokensPerSecond);
    out.generateSameTokens &&= gen.tokens.length === tokens.length && gen.tokens.every((t, i) => t === tokens[i]);
  }
  out.generateTokensPerS = median(rates);
  session.reset();
  return out;
}

/**
 * Splits a step's dispatches at the engine's markers: each layer's run from its marker to the next marker, and the
 * rest (before the first layer, from the head marker on) outside. Undefined when the step carries no layer marker.
 */
export function dispatchesByLayer(markers: ReadonlyArray<{ marker: string; at: number }>, total: number): SessionTimings['layerDispatches'] {
  // the layer markers and the head marker bound the layers; other markers (a user's) split nothing
  const bounds = markers.map((m) => ({ ...m, layer: parseLayerMarker(m.marker) })).filter((m) => m.layer || m.marker === HEAD_MARKER);
  const layers: LayerDispatches[] = [];
  for (const [i, b] of bounds.entries()) {
    if (!b.layer) continue;
    const dispatches = (bounds[i + 1]?.at ?? total) - b.at;
    layers.push(b.layer.moeShards === null ? { layer: b.layer.layer, kind: 'dense', dispatches } : { layer: b.layer.layer, kind: 'moe', shards: b.layer.moeShards, dispatches });
  }
  return layers.length ? { layers, outside: total - layers.reduce((n, l) => n + l.dispatches, 0) } : undefined;
}

async function generationOf(session: InferenceSession, prompt: number[], maxTokens: number): Promise<DoneEvent> {
  for await (const ev of generate(session, undefined, prompt, { maxTokens, temperature: 0, ignoreEos: true })) if (ev.type === 'done') return ev;
  throw new Error('generate() ended without its done event');
}

/** The report row of one (model, backend) timing. */
export function e2eRow(
  model: string,
  backend: string,
  ckpt: Pick<Checkpoint, 'config'>,
  promptLen: number,
  t: SessionTimings,
  ceilings: Pick<Ceilings, 'bandwidth_gbps' | 'dispatch_us' | 'submit_ms'>,
  method: string,
): E2eRow {
  const bandwidthGbps = ceilings.bandwidth_gbps;
  const steps = t.stepMs.length;
  const stepMs = median(t.stepMs);
  // the average step attends over prompt + 1 .. prompt + steps cached tokens: use the middle one
  const bytes = decodeStepBytes(ckpt.config, promptLen + Math.ceil(steps / 2));
  const rooflineMs = bytes.total / (bandwidthGbps * 1e6);
  const raw = stepMs > 0 ? rooflineMs / stepMs : 0;
  const row: E2eRow = {
    model,
    backend,
    prompt_tokens: promptLen,
    decode_tokens: steps,
    ttft_ms: t.ttftMs,
    prefill_tokens_per_s: (promptLen / t.ttftMs) * 1000,
    decode_tokens_per_s: steps > 0 ? (steps / t.stepMs.reduce((a, b) => a + b, 0)) * 1000 : 0,
    decode_step_ms: stepMs,
    step_bytes: bytes,
    roofline_ms: rooflineMs,
    fraction_of_roofline: clamp01(raw),
    raw_fraction_of_roofline: raw,
    method,
  };
  if (t.submissionsPerStep !== undefined) row.submissions_per_decode_step = t.submissionsPerStep;
  if (t.generateTokensPerS !== undefined) row.generate_decode_tokens_per_s = t.generateTokensPerS;
  if (t.generateSameTokens !== undefined) row.generate_same_tokens = t.generateSameTokens;
  if (t.profile) row.profile = t.profile;
  if (t.kernelMs !== undefined) row.kernel_ms = t.kernelMs;
  if (t.layerDispatches) {
    row.dispatches_per_layer = t.layerDispatches.layers;
    row.dispatches_outside_layers = t.layerDispatches.outside;
  }
  if (t.dispatchesPerStep !== undefined) {
    row.dispatches_per_decode_step = t.dispatchesPerStep;
    // what a step costs before it moves a byte: its dispatches' fixed cost + one submit-and-wait
    row.fixed_cost_ms = t.dispatchesPerStep * (ceilings.dispatch_us / 1000) + (t.submissionsPerStep ?? 1) * ceilings.submit_ms;
  }
  return row;
}
