/**
 * The sampling rule (the CPU reference of the GPU kernel) on cases worked by hand, its distribution against the
 * closed form, and the seeded uniforms.
 */
import { describe, expect, it } from 'vitest';
import {
  GREEDY_BELOW_TEMPERATURE, NO_TOKEN, SamplingRng, argmax, candidateOrder, checkSampledToken, isGreedy, normalizeSampling, sampleToken, samplingProbabilities,
} from '../../src/engine/sampler.js';
import { DeviceError, InputError, NumericError } from '../../src/errors.js';
import { rng } from '../helpers/gpu.js';

// weights at T = 1 relative to the max: [1, 0.6, 0.4] (probabilities 0.5, 0.3, 0.2), token order 2, 0, 1
const L = [Math.log(0.3), Math.log(0.2), Math.log(0.5)];
const s = (o: Partial<{ temperature: number; topK: number; topP: number; uniform: number }>) => ({ temperature: 1, topK: 0, topP: 1, uniform: 0, ...o });

describe('sampling rule', () => {
  it('argmax takes the lowest index on ties and ignores NaN', () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
    expect(argmax([NaN, 0, -1])).toBe(1);
    expect(candidateOrder([1, 3, 3, 2], 0)).toEqual([1, 2, 3, 0]);
    expect(candidateOrder([1, 3, 3, 2], 2)).toEqual([1, 2]);
  });

  it('temperature 0 and top-k 1 are greedy whatever the uniform', () => {
    for (const u of [0, 0.3, 0.999]) {
      expect(sampleToken(L, s({ temperature: 0, uniform: u }))).toBe(2);
      expect(sampleToken(L, s({ topK: 1, uniform: u }))).toBe(2);
    }
  });

  it('maps the uniform onto the cumulative weights (worked by hand)', () => {
    // cumulative probabilities in order (2, 0, 1): 0.5, 0.8, 1.0
    expect(sampleToken(L, s({ uniform: 0.49 }))).toBe(2);
    expect(sampleToken(L, s({ uniform: 0.51 }))).toBe(0);
    expect(sampleToken(L, s({ uniform: 0.79 }))).toBe(0);
    expect(sampleToken(L, s({ uniform: 0.81 }))).toBe(1);
  });

  it('top-k keeps the k best and renormalises', () => {
    // k = 2: weights 1, 0.6 → cumulative 0.625, 1
    expect(sampleToken(L, s({ topK: 2, uniform: 0.6 }))).toBe(2);
    expect(sampleToken(L, s({ topK: 2, uniform: 0.65 }))).toBe(0);
    expect(sampleToken(L, s({ topK: 2, uniform: 0.99 }))).toBe(0);
  });

  it('top-p keeps the shortest prefix reaching p', () => {
    expect(sampleToken(L, s({ topP: 0.4, uniform: 0.99 }))).toBe(2); // 0.5 >= 0.4: one token
    expect(sampleToken(L, s({ topP: 0.75, uniform: 0.99 }))).toBe(0); // 0.5 + 0.3 >= 0.75: two
    expect(sampleToken(L, s({ topP: 0.85, uniform: 0.99 }))).toBe(1); // all three
  });

  it('temperature sharpens: at T = 0.5 the weights are squared', () => {
    // weights 1, 0.36, 0.16 → cumulative 1/1.52 = 0.658, 1.36/1.52 = 0.895
    expect(sampleToken(L, s({ temperature: 0.5, uniform: 0.65 }))).toBe(2);
    expect(sampleToken(L, s({ temperature: 0.5, uniform: 0.66 }))).toBe(0);
    expect(sampleToken(L, s({ temperature: 0.5, uniform: 0.9 }))).toBe(1);
  });

  it('frequencies over a grid of uniforms equal samplingProbabilities, which equal softmax(l / T) restricted', () => {
    const r = rng(3);
    const logits = Float32Array.from({ length: 50 }, () => 4 * r() - 2);
    const opts = { temperature: 0.8, topK: 20, topP: 0.9 };
    const p = samplingProbabilities(logits, opts);
    const n = 20000;
    const counts = new Float64Array(50);
    for (let i = 0; i < n; i++) counts[sampleToken(logits, { ...opts, uniform: (i + 0.5) / n })]++;
    for (let t = 0; t < 50; t++) expect(Math.abs(counts[t]! / n - p[t]!)).toBeLessThan(2 / n + 1e-9);
    // the kept set: a prefix of the top 20 with probabilities proportional to exp(l / T)
    const kept = [...p.keys()].filter((t) => p[t]! > 0);
    const top20 = candidateOrder(logits, 20);
    expect(top20.slice(0, kept.length).sort((a, b) => a - b)).toEqual(kept);
    const z = kept.reduce((a, t) => a + Math.exp(logits[t]! / 0.8), 0);
    for (const t of kept) expect(p[t]).toBeCloseTo(Math.exp(logits[t]! / 0.8) / z, 12);
  });

  it('normalizeSampling fills defaults and rejects bad values with InputError', () => {
    expect(normalizeSampling({})).toEqual({ temperature: 1, topK: 0, topP: 1 });
    expect(() => normalizeSampling({ temperature: -1 })).toThrow(InputError);
    expect(() => normalizeSampling({ topK: 1.5 })).toThrow(/top-k/);
    expect(() => normalizeSampling({ topP: 0 })).toThrow(/top-p/);
    expect(() => normalizeSampling({ topP: 1.2 })).toThrow(/top-p/);
  });
});

describe('tiny temperatures and non-finite logits', () => {
  it('temperatures below GREEDY_BELOW_TEMPERATURE are greedy, whatever the uniform', () => {
    expect(GREEDY_BELOW_TEMPERATURE).toBe(1e-30);
    for (const t of [0, 1e-40, Number.MIN_VALUE, 5e-31]) {
      expect(isGreedy({ temperature: t, topK: 0 })).toBe(true);
      for (const u of [0, 0.5, 0.999]) expect(sampleToken(L, s({ temperature: t, uniform: u }))).toBe(2);
      expect(samplingProbabilities(L, { temperature: t, topK: 0, topP: 1 })[2]).toBe(1);
    }
    expect(isGreedy({ temperature: 1e-30, topK: 0 })).toBe(false);
    // already greedy in effect just above the cut: exp(-gap / T) underflows
    expect(sampleToken(L, s({ temperature: 1e-29, uniform: 0.999 }))).toBe(2);
  });

  it('NaN, +Infinity or no finite logit is a NumericError; -Infinity alone is a zero weight', () => {
    for (const bad of [[0, NaN, 1], [Infinity, 0], [-Infinity, -Infinity]]) {
      for (const t of [0, 1]) expect(() => sampleToken(bad, s({ temperature: t })), JSON.stringify(bad)).toThrow(NumericError);
    }
    expect(() => sampleToken([0, NaN], s({}))).toThrow(/not finite \(logit 1 is NaN\).*inspect --verify-data/);
    expect(() => sampleToken([0, NaN], s({}), 4)).toThrow(/logits at position 4 are not finite/);
    expect(sampleToken([-Infinity, 0, -Infinity], s({ uniform: 0.99 }))).toBe(1);
  });

  it('checkSampledToken: the GPU sentinel is a NumericError, another id outside the vocabulary a DeviceError', () => {
    expect(checkSampledToken(3, 10)).toBe(3);
    expect(() => checkSampledToken(NO_TOKEN, 10, 7)).toThrow(NumericError);
    expect(() => checkSampledToken(NO_TOKEN, 10, 7)).toThrow(/position 7/);
    expect(() => checkSampledToken(10, 10)).toThrow(DeviceError);
  });
});

describe('SamplingRng', () => {
  it('is reproducible from a seed, and different seeds differ', () => {
    const a = new SamplingRng(42);
    const b = new SamplingRng(42);
    const c = new SamplingRng(43);
    const xa = Array.from({ length: 100 }, () => a.nextUniform());
    expect(Array.from({ length: 100 }, () => b.nextUniform())).toEqual(xa);
    expect(Array.from({ length: 100 }, () => c.nextUniform())).not.toEqual(xa);
  });

  it('draws 24-bit uniforms in [0, 1), exactly representable in f32, with mean 1/2', () => {
    const r = new SamplingRng(0);
    let sum = 0;
    const n = 100000;
    for (let i = 0; i < n; i++) {
      const u = r.nextUniform();
      expect(u >= 0 && u < 1).toBe(true);
      if (i < 1000) expect(Math.fround(u)).toBe(u);
      sum += u;
    }
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.005);
  });

  it('rejects a non-integer seed', () => {
    expect(() => new SamplingRng(1.5)).toThrow(InputError);
  });
});
