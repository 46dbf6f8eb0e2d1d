/**
 * The bench report's format (bench/schema.ts, documented in docs/benchmarks.md): the validator accepts a
 * well-formed report and names each problem of a broken one; rows carry clamped fractions and raw ratios.
 * Format only: nothing here measures or asserts speed.
 */
import { describe, expect, it } from 'vitest';
import { clamp01, validateReport } from '../../bench/schema.js';
import { kernelRow } from '../../bench/kernels.js';
import { CEILINGS, sampleReport, timing } from './fixtures.js';

describe('bench report schema', () => {
  it('accepts a well-formed report, and survives a JSON round trip', () => {
    const r = sampleReport();
    expect(validateReport(r)).toEqual([]);
    expect(validateReport(JSON.parse(JSON.stringify(r)))).toEqual([]);
  });

  it('has the documented fields (docs/benchmarks.md) on every kernel row and on the run', () => {
    const r = sampleReport();
    expect(Object.keys(r)).toEqual(expect.arrayContaining(['adapter', 'ceilings', 'kernels']));
    expect(Object.keys(r.ceilings)).toEqual(expect.arrayContaining(['bandwidth_gbps', 'fma_gflops']));
    for (const row of r.kernels) {
      expect(Object.keys(row)).toEqual(expect.arrayContaining(['kernel', 'shape', 'gbps', 'gflops', 'fraction_of_bandwidth', 'fraction_of_fma', 'method']));
    }
  });

  it('rejects what is not a report', () => {
    expect(validateReport(null)).toEqual(['report: expected a JSON object']);
    expect(validateReport([])).toEqual(['report: expected a JSON object']);
  });

  it.each([
    ['a fraction above 1', (r: ReturnType<typeof sampleReport>) => (r.kernels[0]!.fraction_of_bandwidth = 1.2), 'kernels[0].fraction_of_bandwidth: 1.2 > 1'],
    ['a negative fraction', (r: ReturnType<typeof sampleReport>) => (r.kernels[1]!.fraction_of_fma = -0.1), 'kernels[1].fraction_of_fma: -0.1 < 0'],
    ['a missing kernel name', (r: ReturnType<typeof sampleReport>) => ((r.kernels[0] as unknown as Record<string, unknown>).kernel = undefined), 'kernels[0].kernel'],
    ['a missing method', (r: ReturnType<typeof sampleReport>) => (r.kernels[2]!.method = ''), 'kernels[2].method'],
    ['a NaN speed', (r: ReturnType<typeof sampleReport>) => (r.kernels[0]!.gbps = NaN), 'kernels[0].gbps: expected a finite number'],
    ['an unknown variant', (r: ReturnType<typeof sampleReport>) => ((r.kernels[0] as unknown as Record<string, unknown>).variant = 'fast'), 'kernels[0].variant'],
    ['a zero time', (r: ReturnType<typeof sampleReport>) => (r.kernels[0]!.time_ms = 0), 'kernels[0].time_ms: must be > 0'],
    ['a zero ceiling', (r: ReturnType<typeof sampleReport>) => (r.ceilings.bandwidth_gbps = 0), 'ceilings: both must be > 0'],
    ['no adapter', (r: ReturnType<typeof sampleReport>) => ((r as unknown as Record<string, unknown>).adapter = undefined), 'adapter: expected an object'],
    ['an unmet target with no reason', (r: ReturnType<typeof sampleReport>) => delete r.targets.find((t) => !t.met)!.limited_by, 'limited_by'],
    ['an e2e roofline fraction above 1', (r: ReturnType<typeof sampleReport>) => (r.e2e[0]!.fraction_of_roofline = 3), 'e2e[0].fraction_of_roofline: 3 > 1'],
    ['shares that do not sum to 1', (r: ReturnType<typeof sampleReport>) => (r.telemetry[0]!.layers[0]!.share[0]! += 0.5), 'share: sums to'],
    ['one count per expert missing', (r: ReturnType<typeof sampleReport>) => r.telemetry[0]!.layers[0]!.counts.pop(), 'one entry per expert'],
    ['a wrong schema id', (r: ReturnType<typeof sampleReport>) => ((r as unknown as Record<string, unknown>).schema = 'other'), "schema: expected 'webmoe-bench/1'"],
  ])('names %s', (_what, mutate, message) => {
    const r = sampleReport();
    mutate(r);
    const problems = validateReport(r);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join('\n')).toContain(message);
  });

  it('rows clamp fractions to [0, 1] and keep the raw ratios', () => {
    // 16 MB in 0.5 ms = 32 GB/s against a 10 GB/s ceiling: a cache-resident kernel
    const r = sampleReport().kernels[2]!;
    expect(r.gbps).toBeCloseTo(32, 10);
    expect(r.raw_fraction_of_bandwidth).toBeCloseTo(3.2, 10);
    expect(r.fraction_of_bandwidth).toBe(1);
    expect(r.fraction_of_fma).toBeCloseTo(2 / 40, 10);
  });

  it('computes GB/s and GFLOP/s from bytes, FLOP and the median time', () => {
    const row = kernelRow({ kernel: 'k', variant: 'optimised', impl: 'k', shape: 's', dims: {}, bytes: 4e6, flops: 8e6 }, timing(2), CEILINGS);
    expect(row.gbps).toBeCloseTo(2, 12);
    expect(row.gflops).toBeCloseTo(4, 12);
    expect(row.fraction_of_bandwidth).toBeCloseTo(0.2, 12);
    expect(row.fraction_of_fma).toBeCloseTo(0.1, 12);
    expect(row.method).toMatch(/timestamp-query/);
    expect(row.wall_ms).toBeCloseTo(2.2, 12);
  });

  it('clamp01', () => {
    expect([clamp01(-1), clamp01(0.5), clamp01(7), clamp01(NaN), clamp01(Infinity)]).toEqual([0, 0.5, 1, 0, 1]);
  });
});
