/**
 * The decode roofline's numerator (bench/roofline.ts) and the targets (bench/targets.ts), by hand on the `tiny`
 * toy config: every term of the bytes one decode step must read, and which targets a set of rows meets.
 */
import { describe, expect, it } from 'vitest';
import { decodeStepBytes } from '../../bench/roofline.js';
import { e2eTargets, kernelTargets } from '../../bench/targets.js';
import { toyConfig } from '../../src/model/toy.js';
import { CEILINGS, sampleReport } from './fixtures.js';

describe('decode-step bytes', () => {
  it('tiny: hand count per term', () => {
    const c = toyConfig('tiny'); // D 64, 2 layers (1 dense, I 128), H 2, Dn 16, Dr 8, Dv 16, Rq 32, Rkv 32, E 8 top-2 + 1 shared (F 32), V 128
    const fp8 = (r: number, k: number) => r * k + Math.ceil(r / 128) * Math.ceil(k / 128) * 4; // codes + one f32 scale per 128x128 block
    const attn = fp8(32, 64) + fp8(2 * 24, 32) + 4 * 32 + fp8(40, 64) + fp8(2 * 32, 32) + fp8(64, 32) + 4 * (2 * 64 + 32);
    const ffn = (w: number) => 2 * fp8(w, 64) + fp8(64, w);
    const S = 10;
    const b = decodeStepBytes(c, S);
    expect(b.attention).toBe(2 * attn);
    expect(b.experts).toBe(ffn(128) + 2 * ffn(32) + ffn(32)); // dense layer; MoE layer: 2 routed + 1 shared
    expect(b.kv_cache).toBe(2 * S * 40 * 4);
    expect(b.other).toBe(2 * 8 * 64 + 4 * 8 + 2 * 64 + 4 * 64 + 2 * 128 * 64);
    expect(b.total).toBe(b.attention + b.experts + b.kv_cache + b.other);
  });

  it('grows with the cache by exactly one latent row per layer per token', () => {
    const c = toyConfig('small');
    expect(decodeStepBytes(c, 101).total - decodeStepBytes(c, 100).total).toBe(c.num_hidden_layers * (c.kv_lora_rank + c.qk_rope_head_dim) * 4);
  });
});

describe('targets', () => {
  it('checks the Kimi GEMV bandwidth target on the engine default and faster-than-naive on every optimised row', () => {
    const r = sampleReport();
    const t = kernelTargets(r.kernels.map((k) => ({ ...k, targets: undefined })), CEILINGS);
    const rows = r.kernels.map((k) => ({ ...k, targets: undefined }));
    rows[2]!.engine_default = true;
    const t2 = kernelTargets(rows, CEILINGS);
    expect(t2.map((x) => [x.id, x.met])).toEqual([
      ['fp8_gemv_bandwidth', false], // 0.73 GB/s of 10
      ['faster_than_naive', true], // 3x
      ['faster_than_naive', false], // 0.8x
    ]);
    // a variant the engine does not run shows its speedup but carries no target
    expect(t.map((x) => x.id)).toEqual(['fp8_gemv_bandwidth', 'faster_than_naive']);
    expect(t[0]!.limited_by).toMatch(/FP8 decoding caps it/); // decode ceiling 2.5 GB/s < 70 % of 10 GB/s
    expect(t[0]!.limited_by).toContain('29% of that decode rate'); // 0.736 / 2.5
    for (const x of t) expect(x.met || typeof x.limited_by === 'string').toBe(true);
  });

  it('checks the small-toy roofline and one submission per decode step', () => {
    const rows = sampleReport().e2e.map((e) => ({ ...e, targets: undefined }));
    const t = e2eTargets(rows);
    expect(t.map((x) => [x.id, x.met])).toEqual([
      ['decode_roofline', false],
      ['one_submission', true],
    ]);
    expect(t[0]!.limited_by).toContain('55 dispatches');
    expect(rows[0]!.targets).toHaveLength(2);
  });
});
