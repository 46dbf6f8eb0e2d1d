/**
 * `webmoe inspect --gpu-memory` on the real Kimi K2 config (no weights): what stays resident, the expert slots per
 * MoE layer and the bytes streamed per token at a stated hit rate, checked against numbers worked by hand from the
 * config (block-FP8 experts: 3 matrices of 7168 x 2048 codes plus one f32 scale per 128 x 128 block).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatOffloadPlan, inspectPath, offloadReport } from '../../src/cli/inspect.js';
import { InputError } from '../../src/errors.js';
import { FIXTURES_DIR } from '../format/shared-paths.js';

const KIMI = join(FIXTURES_DIR, 'configs', 'kimi-k2.json');

describe('inspect --gpu-memory', () => {
  it('Kimi K2 at 48 GiB: resident part, slots per layer, bytes per token', async () => {
    const report = await inspectPath(KIMI);
    const r = offloadReport(report, 48 * 1024, 4096, 0.9);
    // one FP8 expert: 3 · 7168 · 2048 codes + 3 · (56 · 16) f32 scales
    const expert = 3 * 7168 * 2048 + 3 * 56 * 16 * 4;
    expect(r.expertBytes).toBe(expert);
    expect(r.moeLayers).toBe(60);
    expect(r.slotsPerLayer).toBeGreaterThanOrEqual(8);
    expect(r.slotsPerLayer).toBeLessThan(384);
    // the budget holds the resident part and the slots, and one more slot per layer would not fit
    expect(r.fixed + 60 * r.slotsPerLayer * expert).toBeLessThanOrEqual(48 * 2 ** 30);
    expect(r.fixed + 60 * (r.slotsPerLayer + 1) * expert).toBeGreaterThan(48 * 2 ** 30 - 60 * 64);
    // misses of 8 experts in 60 layers at 10 %
    expect(r.streamedPerToken).toBe(Math.round(60 * 8 * 0.1 * expert));
    const text = formatOffloadPlan(r);
    expect(text).toMatch(new RegExp(`${r.slotsPerLayer} of 384 expert slots per MoE layer`));
    expect(text).toMatch(/streams [\d.]+ MiB per decoded token at a hit rate of 0.9/);
  });

  it('a budget below the resident part says so and names the minimum', async () => {
    const r = offloadReport(await inspectPath(KIMI), 1024, 4096, 0.9);
    expect(r.slotsPerLayer).toBe(0);
    expect(formatOffloadPlan(r)).toMatch(/too small: the minimum is [\d.]+ MiB \(8 expert slots in each of 60 MoE layers\)/);
  });

  it('a non-positive budget is an InputError', async () => {
    const report = await inspectPath(KIMI);
    expect(() => offloadReport(report, 0, undefined, 0.9)).toThrow(InputError);
    expect(() => offloadReport(report, -5, undefined, 0.9)).toThrow(/--gpu-memory must be a positive number of MiB/);
  });
});
