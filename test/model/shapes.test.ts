/**
 * Shape sweep of the CPU reference (test/helpers/shape-fuzz.ts configs, written by the toy writer into memory):
 * the absorbed form over the latent cache — chunked prefill and token-by-token decode — against the naive
 * full-sequence forward. In f64 they differ only by summation order: 1e-9 relative per row. Also: every drawn
 * config survives the toy writer and the loader (shapes, scales, routing tables), and the logits are finite.
 *
 * WEBMOE_SHAPES=<n> (WEBMOE_SHAPES_FROM=<first>) sweeps seeds first..first+n-1 instead of the committed list.
 */
import { describe, expect, it } from 'vitest';
import { memoryFiles, openCheckpoint } from '../../src/model/checkpoint.js';
import { loadCpuWeights } from '../../src/model/cpu-weights.js';
import { ReferenceSession, referenceForward } from '../../src/model/reference.js';
import { makeToyCheckpointInMemory } from '../../src/model/toy.js';
import { describeConfig, fuzzCase, fuzzPrompt, sweepSeeds } from '../helpers/shape-fuzz.js';
import { compareRows } from './reference-fixtures.js';

const RTOL = 1e-9;
const COMMITTED = Array.from({ length: 24 }, (_, i) => i);

describe('CPU reference on fuzzed shapes: absorbed (chunked, incremental) == naive', () => {
  it.each(sweepSeeds(COMMITTED))('seed %i', async (seed) => {
    const fc = fuzzCase(seed);
    const where = `seed ${seed}: ${describeConfig(fc.config)} | prompt ${fc.promptLength} chunk ${fc.chunkSize} decode ${fc.decodeSteps}`;
    const toy = await makeToyCheckpointInMemory(fc.config, { seed, shards: fc.shards });
    const ckpt = await openCheckpoint(memoryFiles(`fuzz-${seed}`, toy.data));
    const w = await loadCpuWeights(ckpt);
    await ckpt.close();
    const V = w.config.vocab_size;
    const total = fc.promptLength + fc.decodeSteps;
    const tokens = fuzzPrompt(seed, total, V);
    const naive = referenceForward(w, tokens, { attention: 'naive' });
    expect(naive.every(Number.isFinite), where).toBe(true);

    // absorbed: the prompt in chunks of chunkSize, then one token at a time
    const s = new ReferenceSession(w, 'absorbed');
    const got = new Float64Array(total * V);
    for (let at = 0; at < fc.promptLength; at += fc.chunkSize) {
      const end = Math.min(fc.promptLength, at + fc.chunkSize);
      got.set(s.prefill(tokens.slice(at, end)), at * V);
    }
    for (let t = fc.promptLength; t < total; t++) got.set(s.decode(tokens[t]!), t * V);
    expect(s.position).toBe(total);
    const r = compareRows(got, naive, V, RTOL);
    expect(r.failures, where).toEqual([]);

    // the whole sequence absorbed in one chunk, and the naive form through the cache
    expect(compareRows(referenceForward(w, tokens, { attention: 'absorbed' }), naive, V, RTOL).failures, where).toEqual([]);
    const n = new ReferenceSession(w, 'naive');
    const split = Math.max(1, Math.floor(total / 2));
    const inc = new Float64Array(total * V);
    inc.set(n.prefill(tokens.slice(0, split)), 0);
    if (split < total) inc.set(n.prefill(tokens.slice(split)), split * V);
    expect(compareRows(inc, naive, V, RTOL).failures, where).toEqual([]);
  });
});
