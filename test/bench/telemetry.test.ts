/** MoE expert-load telemetry (src/engine/telemetry.ts): counts, shares and evenness statistics by hand. */
import { describe, expect, it } from 'vitest';
import { ExpertLoadRecorder, layerLoad } from '../../src/engine/telemetry.js';
import type { TapMap } from '../../src/model/taps.js';

describe('expert-load telemetry', () => {
  it('a perfectly even router: max/mean 1, CV 0, normalised entropy 1', () => {
    const l = layerLoad(3, [5, 5, 5, 5], 10);
    expect(l).toMatchObject({ layer: 3, tokens: 10, max_over_mean: 1, cv: 0, unused: 0, share: [0.25, 0.25, 0.25, 0.25] });
    expect(l.normalized_entropy).toBeCloseTo(1, 12);
  });

  it('a router that always picks the same two of four experts', () => {
    const l = layerLoad(0, [6, 6, 0, 0], 6);
    expect(l.max_over_mean).toBe(2);
    expect(l.cv).toBeCloseTo(1, 12); // mean 3, std 3
    expect(l.normalized_entropy).toBeCloseTo(0.5, 12); // ln 2 / ln 4
    expect(l.unused).toBe(2);
  });

  it('records ids per layer from calls and from reference taps', () => {
    const rec = new ExpertLoadRecorder(4, 2);
    rec.add(1, [0, 1, 0, 2]); // two tokens
    const taps: TapMap = new Map([
      ['layers.1.moe.topk_idx', { shape: [1, 2], data: Int32Array.from([3, 0]) }],
      ['layers.2.moe.topk_idx', { shape: [2, 2], data: Int32Array.from([1, 2, 2, 3]) }],
      ['layers.2.moe.topk_weight', { shape: [2, 2], data: Float64Array.from([0.5, 0.5, 0.5, 0.5]) }],
    ]);
    rec.addTaps(taps);
    const s = rec.summary('toy', 'cpu-reference');
    expect(s).toMatchObject({ model: 'toy', source: 'cpu-reference', experts: 4, topk: 2, tokens: 3 });
    expect(s.layers.map((l) => [l.layer, l.counts, l.tokens])).toEqual([
      [1, [3, 1, 1, 1], 3],
      [2, [0, 1, 2, 1], 2],
    ]);
    expect(s.layers[1]!.share.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  it('rejects ids outside the expert range', () => {
    expect(() => new ExpertLoadRecorder(4, 1).add(0, [4])).toThrow(/outside 0..3/);
  });
});
