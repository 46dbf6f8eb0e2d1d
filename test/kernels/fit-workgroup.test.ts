/**
 * fitRowWorkgroup (src/gpu/ops/moe.ts): the wide expert kernels' threads per workgroup, fitted to the rows so the last
 * workgroup is not mostly idle (idle threads recompute the last row). It must keep the plan's workgroup count, cover
 * every row, never exceed the plan's threads, and stay a multiple of 8.
 */
import { describe, expect, it } from 'vitest';
import { fitRowWorkgroup } from '../../src/gpu/ops/moe.js';
import { mulberry32 } from '../../src/random.js';

describe('fitRowWorkgroup', () => {
  it('fits the toy experts and leaves Kimi widths alone', () => {
    expect(fitRowWorkgroup(96, 4, 64)).toBe(24); // kimi-toy gate/up: 96 rows, one workgroup
    expect(fitRowWorkgroup(128, 4, 64)).toBe(32); // small gate/up
    expect(fitRowWorkgroup(384, 4, 64)).toBe(48); // kimi-toy down: 2 workgroups of 48 x 4
    expect(fitRowWorkgroup(2048, 4, 64)).toBe(64); // Kimi gate/up: full workgroups
    expect(fitRowWorkgroup(1, 4, 64)).toBe(8); // never below one SIMD group
  });

  it('keeps the workgroup count and covers every row (seeded shapes)', () => {
    const r = mulberry32(17);
    for (let i = 0; i < 500; i++) {
      const rows = 1 + Math.floor(r() * 9000);
      const rpt = [1, 2, 4][Math.floor(r() * 3)]!;
      const wg = [8, 16, 32, 64, 128][Math.floor(r() * 5)]!;
      const fit = fitRowWorkgroup(rows, rpt, wg);
      const where = `rows ${rows} rpt ${rpt} wg ${wg} -> ${fit}`;
      expect(fit % 8, where).toBe(0);
      expect(fit, where).toBeLessThanOrEqual(wg);
      expect(Math.ceil(rows / (fit * rpt)), where).toBe(Math.ceil(rows / (wg * rpt)));
    }
  });
});
