/**
 * Checks shared by the engine tests: the argmax of each row of logits, a greedy continuation, a greedy run on a
 * GPU session that counts its submissions (one per decode step is the engine's rule), and a GPU session against
 * the CPU reference of the same checkpoint (logits within a tolerance, same argmax; the same greedy tokens).
 */
import { expect } from 'vitest';
import { createCpuSession } from '../../src/engine/cpu-session.js';
import type { GpuSession } from '../../src/engine/session.js';
import type { InferenceSession } from '../../src/engine/types.js';
import type { Checkpoint } from '../../src/model/checkpoint.js';
import { loadCpuWeights } from '../../src/model/cpu-weights.js';
import { referenceForward } from '../../src/model/reference.js';
import { compareRows } from '../model/reference-fixtures.js';

export const GREEDY = { temperature: 0, topK: 0, topP: 1, uniform: 0 };

/** The argmax of each row of [rows, V] logits (lowest index on ties). */
export function argmaxRows(x: ArrayLike<number>, V: number): number[] {
  const out: number[] = [];
  for (let t = 0; t * V < x.length; t++) {
    let best = 0;
    for (let i = 1; i < V; i++) if (x[t * V + i]! > x[t * V + best]!) best = i;
    out.push(best);
  }
  return out;
}

/** `n` greedy tokens after `prompt` (the first from the prefill), from an empty cache. */
export async function greedy(s: InferenceSession, prompt: number[], n: number): Promise<number[]> {
  s.reset();
  const out = [await s.prefill(prompt, GREEDY)];
  while (out.length < n) out.push(await s.decode(out[out.length - 1]!, GREEDY));
  return out;
}

/** Runs `f` while counting the device queue's submissions (`submits()`; `reset()` zeroes the count). */
export async function countingSubmits<T>(queue: GPUQueue, f: (submits: () => number, reset: () => void) => Promise<T>): Promise<T> {
  const submit = queue.submit.bind(queue);
  let n = 0;
  (queue as { submit: GPUQueue['submit'] }).submit = (cbs) => {
    n++;
    submit(cbs);
  };
  try {
    return await f(() => n, () => (n = 0));
  } finally {
    (queue as { submit: GPUQueue['submit'] }).submit = submit;
  }
}

/** `n` greedy tokens on a GPU session, expecting exactly one queue submission per decode step. */
export async function greedyOneSubmitPerStep(s: GpuSession, prompt: number[], n: number): Promise<number[]> {
  return countingSubmits(s.gpu.device.queue, async (submits, reset) => {
    s.reset();
    const out = [await s.prefill(prompt, GREEDY)];
    while (out.length < n) {
      reset();
      out.push(await s.decode(out[out.length - 1]!, GREEDY));
      expect(submits()).toBe(1);
    }
    return out;
  });
}

/**
 * The GPU session's logits of `prompt` against referenceForward on the same checkpoint: every position within
 * `tol` · max(1, max|ref|) and the same argmax. Logs the measured error under `label`.
 */
export async function expectLogitsMatchReference(s: GpuSession, ckpt: Checkpoint, prompt: number[], tol: number, label: string): Promise<void> {
  const V = s.vocabSize;
  const want = referenceForward(await loadCpuWeights(ckpt), prompt);
  s.reset();
  const got = await s.forwardLogits(prompt);
  const r = compareRows(got, want, V, tol);
  console.log(`${label}: GPU logits max |Δ| ${r.maxAbs.toExponential(2)} (relative ${r.maxRel.toExponential(2)})`);
  expect(r.failures).toEqual([]);
  expect(argmaxRows(got, V)).toEqual(argmaxRows(want, V));
}

/** `n` greedy tokens of the GPU session (one submission per decode step) equal the CPU reference session's. */
export async function expectGreedyMatchesCpu(s: GpuSession, ckpt: Checkpoint, prompt: number[], n: number): Promise<void> {
  const cpu = await createCpuSession(ckpt, { ctxSize: 64 });
  const want = await greedy(cpu, prompt, n);
  cpu.dispose();
  expect(await greedyOneSubmitPerStep(s, prompt, n)).toEqual(want);
}
