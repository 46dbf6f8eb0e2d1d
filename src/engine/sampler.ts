/**
 * The sampling rule, in plain TypeScript: the CPU reference the GPU sampling kernel must match, and the seeded
 * generator that draws each step's uniform number.
 *
 * V vocab size, K top-k candidates, l logits [V].
 *
 * The rule, given logits l, temperature T, top-k K, top-p P and a uniform u in [0, 1):
 *   0. Logits with a NaN or +Infinity, or with no finite value, are a NumericError (the GPU kernel returns
 *      NO_TOKEN, which checkSampledToken turns into the same error). -Infinity alone is a weight of 0.
 *   1. Greedy when T < GREEDY_BELOW_TEMPERATURE or K == 1: the index of the largest logit, the lowest index on ties.
 *   2. Order tokens by (logit descending, index ascending); keep the first K (K = 0: all V).
 *   3. Weights w_i = exp((l_i - l_max) / T) over the kept tokens (l_max = the largest logit).
 *   4. Top-p (0 < P < 1): keep the shortest prefix of that order whose weight sum reaches P * (sum of all kept
 *      weights); at least one token. P >= 1 (or <= 0): no cut.
 *   5. With W the weight sum of what is left, return the first token in order whose running sum exceeds u * W
 *      (the last one left if rounding leaves none).
 * Sampling happens on the GPU (one readback per step, the token id); only `uniform` comes from here, so a seed
 * makes a run reproducible on one adapter. This file is the executable spec of the kernel and the oracle for
 * its test; `generate` itself never calls `sampleToken`.
 */
import { DeviceError, InputError, NumericError } from '../errors.js';
import type { StepSampling } from './types.js';

/**
 * Temperatures below this are greedy. The kernel computes 1/T and (l - l_max)/T in f32: below ~1.2e-38 T is
 * subnormal (a GPU may flush it to 0) and below ~2.9e-39 1/T overflows to Infinity, and then the top token's
 * weight is 0·Infinity = NaN (T = 1e-40 once made the sampler return no token). At T <= 1e-30 the rule is
 * already greedy for any two distinct f32 logits of magnitude >= 1e-7 (their gap, at least one ulp ~7e-15, over
 * T is beyond e^-104, where exp underflows to 0 in f32): the only difference is that exact ties go to the lowest
 * index instead of being drawn. So the cut changes nothing a user can see, and both backends use it.
 */
export const GREEDY_BELOW_TEMPERATURE = 1e-30;

/** What the GPU sampler writes instead of a token id when the logits are not finite (sample.wgsl NONE). */
export const NO_TOKEN = 0xffffffff;

/** True when the step picks the argmax (rule step 1). */
export function isGreedy(s: { temperature: number; topK: number }): boolean {
  return !(s.temperature >= GREEDY_BELOW_TEMPERATURE) || s.topK === 1;
}

/** Index of the first NaN or +Infinity logit; -1 when there is none and at least one logit is finite, else 0. */
export function firstNonFinite(logits: ArrayLike<number>): number {
  let anyFinite = false;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (Number.isNaN(v) || v === Infinity) return i;
    if (v !== -Infinity) anyFinite = true;
  }
  return anyFinite ? -1 : 0;
}

function nonFiniteError(detail: string, position?: number): NumericError {
  return new NumericError(
    `the logits${position === undefined ? '' : ` at position ${position}`} are not finite (${detail}), so no token can be sampled: ` +
      "the checkpoint's weights may hold NaN/Inf (check with 'webmoe inspect --verify-data MODEL') or the computation overflowed " +
      '(compare with --backend cpu)',
    position,
  );
}

/**
 * Checks a token id read back from the GPU sampler: NO_TOKEN means non-finite logits (NumericError); any other id
 * outside the vocabulary is a kernel or device fault (DeviceError), never passed on as a token.
 */
export function checkSampledToken(id: number, vocab: number, position?: number): number {
  if (id === NO_TOKEN) throw nonFiniteError('NaN or Infinity', position);
  if (!Number.isInteger(id) || id < 0 || id >= vocab) {
    throw new DeviceError(`the GPU sampler returned token id ${id}, outside the vocabulary (vocab_size ${vocab})`, { reason: 'sampler' });
  }
  return id;
}

/** Index of the largest value; the lowest index on ties (NaN never wins). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** Token ids in sampling order: logit descending, index ascending; only the first `k` when 0 < k < V. */
export function candidateOrder(logits: ArrayLike<number>, k: number): number[] {
  const ids = Array.from({ length: logits.length }, (_, i) => i);
  ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
  return k > 0 && k < ids.length ? ids.slice(0, k) : ids;
}

/** Steps 2-4 of the rule: candidates in order, their weights, and how many survive top-p. */
function nucleus(logits: ArrayLike<number>, s: Omit<StepSampling, 'uniform'>): { order: number[]; weights: number[]; kept: number; mass: number } {
  const order = candidateOrder(logits, s.topK); // [K]
  const lmax = logits[order[0]!]!;
  const weights = order.map((id) => Math.exp((logits[id]! - lmax) / s.temperature)); // [K], weights[0] = 1
  let kept = weights.length;
  if (s.topP > 0 && s.topP < 1) {
    const total = weights.reduce((a, b) => a + b, 0);
    let run = 0;
    for (kept = 0; kept < weights.length; ) {
      run += weights[kept++]!;
      if (run >= s.topP * total) break;
    }
  }
  let mass = 0;
  for (let i = 0; i < kept; i++) mass += weights[i]!;
  return { order, weights, kept, mass };
}

/** The sampling rule above (f64 arithmetic; the GPU kernel computes the same in f32). `position`: for errors. */
export function sampleToken(logits: ArrayLike<number>, s: StepSampling, position?: number): number {
  if (logits.length === 0) throw new InputError('sampleToken: empty logits', 'logits');
  const bad = firstNonFinite(logits);
  if (bad >= 0) throw nonFiniteError(logits[bad] === -Infinity ? 'no finite logit' : `logit ${bad} is ${logits[bad]}`, position);
  if (isGreedy(s)) return argmax(logits);
  const { order, weights, kept, mass } = nucleus(logits, s);
  const target = s.uniform * mass;
  let run = 0;
  for (let i = 0; i < kept; i++) {
    run += weights[i]!;
    if (run > target) return order[i]!;
  }
  return order[kept - 1]!;
}

/** Probability of each token under the rule (the rule is a step function of u), for distribution tests. */
export function samplingProbabilities(logits: ArrayLike<number>, s: Omit<StepSampling, 'uniform'>): Float64Array {
  const p = new Float64Array(logits.length);
  if (isGreedy(s)) {
    p[argmax(logits)] = 1;
    return p;
  }
  const { order, weights, kept, mass } = nucleus(logits, s);
  for (let i = 0; i < kept; i++) p[order[i]!] = weights[i]! / mass;
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// Seeded uniforms

/**
 * The per-step random numbers: splitmix32 over a 32-bit seed, one draw per generated token (greedy steps
 * draw too, so the sequence does not depend on the temperature). Each uniform keeps 24 bits, so it is exactly
 * representable in f32 and the GPU sees the very number the CPU drew (a 32-bit value could round up to 1.0).
 */
export class SamplingRng {
  private state: number;
  constructor(readonly seed: number) {
    if (!Number.isInteger(seed)) throw new InputError(`seed must be an integer, got ${seed}`, 'seed');
    this.state = seed >>> 0;
  }

  /** Next 32 random bits. */
  nextUint32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1) with 24-bit resolution. */
  nextUniform(): number {
    return (this.nextUint32() >>> 8) / 16777216;
  }
}

/** A random seed for runs that did not ask for one (reported so the run can be repeated). */
export function randomSeed(): number {
  const c = globalThis.crypto;
  if (c?.getRandomValues) return c.getRandomValues(new Uint32Array(1))[0]!;
  return Math.floor(Math.random() * 2 ** 32);
}

/** Checks sampling options and fills in defaults (temperature 1, top-k off, top-p off). */
export function normalizeSampling(o: { temperature?: number; topK?: number; topP?: number }): Omit<StepSampling, 'uniform'> {
  const temperature = o.temperature ?? 1;
  const topK = o.topK ?? 0;
  const topP = o.topP ?? 1;
  if (!Number.isFinite(temperature) || temperature < 0) throw new InputError(`temperature must be >= 0, got ${temperature}`, 'temperature');
  if (!Number.isInteger(topK) || topK < 0) throw new InputError(`top-k must be an integer >= 0, got ${topK}`, 'topK');
  if (!Number.isFinite(topP) || topP <= 0 || topP > 1) throw new InputError(`top-p must be in (0, 1], got ${topP}`, 'topP');
  return { temperature, topK, topP };
}
