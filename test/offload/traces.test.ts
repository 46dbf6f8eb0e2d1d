/**
 * Routing traces: the file format's validation, statistics computed by hand on a small trace, and synthetic traces
 * that reach the locality asked for (the figures expert offloading is benchmarked with).
 */
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { parseTrace, serializeTrace, syntheticTrace, traceStats, uniformTrace, type RoutingTrace } from '../../src/offload/traces.js';

const small: RoutingTrace = {
  experts: 4,
  topK: 2,
  layers: [1],
  tokens: [[[0, 1]], [[0, 2]], [[0, 1]], [[3, 0]]],
};

describe('trace files', () => {
  it('round-trip through JSON', () => {
    expect(parseTrace(JSON.parse(serializeTrace(small)))).toEqual(small);
  });

  it.each([
    ['a wrong format tag', { ...JSON.parse(serializeTrace(small)), format: 'other/1' }, /format is "other\/1"/],
    ['an id out of range', { ...JSON.parse(serializeTrace(small)), tokens: [[[0, 4]]] }, /expert id 4 outside 0..3/],
    ['a repeated id', { ...JSON.parse(serializeTrace(small)), tokens: [[[1, 1]]] }, /expert 1 selected twice/],
    ['too few ids', { ...JSON.parse(serializeTrace(small)), tokens: [[[1]]] }, /expected 2 expert ids/],
    ['a missing layer', { ...JSON.parse(serializeTrace(small)), tokens: [[]] }, /expected 1 layers/],
    ['topK above experts', { ...JSON.parse(serializeTrace(small)), topK: 5 }, /topK must be/],
    ['not an object', 42, /not a JSON object/],
  ])('refuse %s with a FormatError', (_what, json, message) => {
    expect(() => parseTrace(json, 'trace.json')).toThrow(FormatError);
    expect(() => parseTrace(json, 'trace.json')).toThrow(message);
  });
});

describe('traceStats', () => {
  it('match the counts worked out by hand', () => {
    const [st] = traceStats(small);
    // reuse: token 1 keeps 0 of {0,1} (1 of 2), token 2 keeps 0 (1 of 2), token 3 keeps 0 (1 of 2) -> 3 / 6
    expect(st!.reuse).toBeCloseTo(0.5, 12);
    // loads: 0:4, 1:2, 2:1, 3:1 of 8; the top quarter is expert 0
    expect(st!.topQuarterShare).toBeCloseTo(4 / 8, 12);
    expect(st!.maxOverMean).toBeCloseTo(4 / 2, 12);
    expect(st!.unused).toBe(0);
  });
});

describe('syntheticTrace', () => {
  it.each([
    [256, 8],
    [64, 6],
  ])('E=%i K=%i reaches reuse 0.55 and top-quarter share 0.70 within 0.05', (experts, topK) => {
    const t = syntheticTrace({ experts, topK, layers: 3, tokens: 600, seed: 11 });
    expect(parseTrace(JSON.parse(serializeTrace(t)))).toEqual(t);
    for (const st of traceStats(t)) {
      expect(Math.abs(st.reuse - 0.55), `reuse ${st.reuse}`).toBeLessThan(0.05);
      expect(Math.abs(st.topQuarterShare - 0.7), `share ${st.topQuarterShare}`).toBeLessThan(0.05);
    }
  });

  it('is reproducible from its seed and differs across seeds', () => {
    const a = syntheticTrace({ experts: 32, topK: 4, layers: 2, tokens: 50, seed: 3 });
    expect(syntheticTrace({ experts: 32, topK: 4, layers: 2, tokens: 50, seed: 3 })).toEqual(a);
    expect(syntheticTrace({ experts: 32, topK: 4, layers: 2, tokens: 50, seed: 4 })).not.toEqual(a);
  });

  it('uniform routing has no locality: reuse about K/E, top quarter about a quarter', () => {
    const [st] = traceStats(uniformTrace({ experts: 64, topK: 8, layers: 1, tokens: 2000, seed: 5 }));
    expect(Math.abs(st!.reuse - 8 / 64)).toBeLessThan(0.02);
    expect(Math.abs(st!.topQuarterShare - 0.25)).toBeLessThan(0.04);
  });
});
