/**
 * The CPU reference against the golden fixtures (logits, taps and greedy continuations from an independent
 * float64 implementation of the architecture, docs/model.md).
 *
 * Tolerance (docs/model.md §8.3): |ours − theirs| ≤ 1e-4 · max(1, max |theirs|) per position. The fixtures were
 * made with float64 dequantisation and float64 RoPE angles, while webmoe follows docs/model.md §3.3 / §5.6 (fp8 × scale
 * rounded once to f32; fp32 angle, f32 cos/sin tables, which the GPU also uses); those roundings alone cost
 * ~3e-7 relative (measured). So the tests also hold a tighter 2e-6 bound: a real bug such as a wrong norm eps
 * moves taps by ~1e-5 and would hide under 1e-4.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ReferenceSession, referenceForward } from '../../src/model/reference.js';
import type { TapMap } from '../../src/model/taps.js';
import { compareRows, goldenCases, GOLDEN_DIR, loadGolden, type Golden } from './reference-fixtures.js';

const RTOL = 1e-4; // docs/model.md §8.3
const RTOL_TIGHT = 2e-6; // measured worst ≈ 2.5e-7 (yarn logits); see the header

function argmax(x: Float64Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

describe(`golden fixtures (${GOLDEN_DIR ?? 'not found: set WEBMOE_GOLDEN_DIR'})`, () => {
  it('has the four fixtures', () => {
    expect(goldenCases()).toEqual(expect.arrayContaining(['ragged', 'small', 'tiny', 'yarn']));
  });

  describe.each(goldenCases())('%s', (name) => {
    let g: Golden;
    let logits: Float64Array;
    const taps: TapMap = new Map();
    beforeAll(async () => {
      g = await loadGolden(name);
      logits = referenceForward(g.weights, g.prompt, { taps, attention: 'naive' });
    });

    it('logits match at every position', () => {
      const V = g.weights.config.vocab_size;
      const r = compareRows(logits, g.logits, V, RTOL);
      console.log(`${name}: logits max |Δ| ${r.maxAbs.toExponential(2)} (relative ${r.maxRel.toExponential(2)})`);
      expect(r.failures).toEqual([]);
      expect(r.maxRel).toBeLessThanOrEqual(RTOL_TIGHT);
    });

    it('every golden tap matches (same shape, expert ids identical)', () => {
      let worst = 0;
      for (const [tapName, theirs] of g.taps) {
        const ours = taps.get(tapName);
        expect(ours, `tap ${tapName} not produced`).toBeDefined();
        expect(ours!.shape, tapName).toEqual(theirs.shape);
        if (theirs.data instanceof BigInt64Array) {
          expect(ours!.data, tapName).toBeInstanceOf(Int32Array);
          expect(Array.from(ours!.data), tapName).toEqual(Array.from(theirs.data, Number));
        } else {
          const r = compareRows(ours!.data, theirs.data, theirs.shape[theirs.shape.length - 1]!, RTOL);
          expect(r.failures, tapName).toEqual([]);
          expect(r.maxRel, tapName).toBeLessThanOrEqual(RTOL_TIGHT);
          worst = Math.max(worst, r.maxRel);
        }
      }
      console.log(`${name}: ${g.taps.size} taps, worst relative error ${worst.toExponential(2)}`);
    });

    it('absorbed prefill gives the same logits', () => {
      const absorbed = referenceForward(g.weights, g.prompt, { attention: 'absorbed' });
      const r = compareRows(absorbed, logits, g.weights.config.vocab_size, 1e-9);
      expect(r.failures).toEqual([]);
    });

    it('greedy decoding through the latent cache reproduces the golden continuation', () => {
      const s = new ReferenceSession(g.weights, 'absorbed');
      const V = g.weights.config.vocab_size;
      const prefill = s.prefill(g.prompt);
      let next = argmax(prefill.subarray((g.prompt.length - 1) * V));
      const out: number[] = [];
      for (let i = 0; i < g.greedy.length; i++) {
        out.push(next);
        if (i + 1 < g.greedy.length) next = argmax(s.decode(next));
      }
      expect(out).toEqual(g.greedy);
    });
  });
});
