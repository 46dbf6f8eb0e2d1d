/**
 * YaRN RoPE and the softmax scale against the reference numbers of docs/model.md §5.5 (Dr = 64, Dq = 192),
 * and the interleaved-pair rotation of §5.3.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig, type ModelConfig } from '../../src/model/config.js';
import { mlaShape } from '../../src/model/reference.js';
import { applyRope, ropeInvFreq, ropeTables, yarnCorrectionDim, yarnCorrectionRange } from '../../src/model/rope.js';

/** A production-geometry config (128/64/128 head dims) with the given rope settings. */
function config(theta: number, yarn: { factor: number; beta_fast: number; beta_slow: number } | null): ModelConfig {
  const L0 = 4096;
  return parseConfig({
    model_type: 'kimi_k2', vocab_size: 16, hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2,
    q_lora_rank: 32, kv_lora_rank: 32, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128,
    intermediate_size: 64, moe_intermediate_size: 16, n_routed_experts: 8, num_experts_per_tok: 2, n_shared_experts: 1,
    first_k_dense_replace: 1, rope_theta: theta,
    rope_scaling: yarn && { type: 'yarn', ...yarn, original_max_position_embeddings: L0, mscale: 1.0, mscale_all_dim: 1.0 },
    max_position_embeddings: yarn ? yarn.factor * L0 : L0,
  });
}

const relClose = (a: number, b: number, rtol: number) => expect(Math.abs(a - b), `${a} vs ${b}`).toBeLessThanOrEqual(rtol * Math.abs(b));

// docs/model.md §5.5: theta, beta_fast / slow, factor → corr_dim raw, (low, high), m = 1 + 0.1 ln f, softmax_scale
const ROWS = [
  { name: 'Kimi K2-Instruct', theta: 50000, fast: 1, slow: 1, factor: 32, corr: [19.1646, 19.1646], range: [19, 20], m: 1.3465736, scale: 0.1308608 },
  { name: 'K2.5-style', theta: 50000, fast: 32, slow: 1, factor: 64, corr: [8.9145, 19.1646], range: [8, 20], m: 1.4158883, scale: 0.14467963 },
  { name: 'DeepSeek-V3', theta: 10000, fast: 32, slow: 1, factor: 40, corr: [10.4722, 22.5134], range: [10, 23], m: 1.3688879, scale: 0.13523378 },
];

describe.each(ROWS)('YaRN, $name', (row) => {
  const c = config(row.theta, { factor: row.factor, beta_fast: row.fast, beta_slow: row.slow });

  it('correction dims and ramp range', () => {
    expect(yarnCorrectionDim(row.fast, 64, row.theta, 4096)).toBeCloseTo(row.corr[0]!, 4);
    expect(yarnCorrectionDim(row.slow, 64, row.theta, 4096)).toBeCloseTo(row.corr[1]!, 4);
    expect(yarnCorrectionRange(row.fast, row.slow, 64, row.theta, 4096)).toEqual(row.range);
  });

  it('softmax scale = 192^-0.5 · m²', () => {
    expect(1 + 0.1 * Math.log(row.factor)).toBeCloseTo(row.m, 7);
    relClose(c.derived.softmaxScale, row.scale, 1e-7);
    expect(mlaShape(c).scale).toBe(c.derived.softmaxScale);
  });

  it('inverse frequencies: f_i below the ramp, f_i / factor above it, blended inside', () => {
    const inv = ropeInvFreq(c);
    expect(inv).toBeInstanceOf(Float32Array);
    expect(inv.length).toBe(32);
    const [low, high] = row.range as [number, number];
    for (let i = 0; i < 32; i++) {
      const f = Math.pow(row.theta, -i / 32);
      const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
      relClose(inv[i]!, (f / row.factor) * ramp + f * (1 - ramp), 6e-8); // one f32 rounding
      if (i <= low) relClose(inv[i]!, f, 6e-8);
      if (i >= high) relClose(inv[i]!, f / row.factor, 6e-8);
    }
  });
});

describe('Kimi K2 inverse frequencies, docs/model.md §5.5 values', () => {
  const inv = ropeInvFreq(config(50000, { factor: 32, beta_fast: 1, beta_slow: 1 }));
  it.each([
    [0, 1.0], [1, 0.7131111], [2, 0.50852746], [19, 1.62176e-3], [20, 3.6140467e-5], [31, 8.7644128e-7],
  ])('inv_f[%i] = %f', (i, want) => relClose(inv[i]!, want, 2e-7));
});

describe('without rope_scaling', () => {
  const c = config(10000, null);
  it('plain θ^(−2i/Dr) and scale Dq^-0.5', () => {
    const inv = ropeInvFreq(c);
    for (let i = 0; i < 32; i++) relClose(inv[i]!, Math.pow(10000, -i / 32), 6e-8);
    expect(c.derived.softmaxScale).toBeCloseTo(1 / Math.sqrt(192), 15);
  });
});

describe('ropeTables / applyRope', () => {
  const c = config(50000, { factor: 32, beta_fast: 1, beta_slow: 1 });

  it('angle is one fp32 product, cos/sin rounded to f32 (docs/model.md §5.6)', () => {
    const positions = [0, 1, 7, 95, 4095, 100000];
    const t = ropeTables(c, positions);
    const inv = ropeInvFreq(c);
    expect(t.pairs).toBe(32);
    positions.forEach((p, row) => {
      for (let i = 0; i < 32; i++) {
        const angle = Math.fround(p * inv[i]!);
        expect(t.cos[row * 32 + i]).toBe(Math.fround(Math.cos(angle)));
        expect(t.sin[row * 32 + i]).toBe(Math.fround(Math.sin(angle)));
      }
    });
    expect(Array.from(t.cos.subarray(0, 32))).toEqual(new Array(32).fill(1));
    expect(Array.from(t.sin.subarray(0, 32))).toEqual(new Array(32).fill(0));
  });

  it('rotates interleaved pairs (2i, 2i+1) by angle i', () => {
    const t = ropeTables(c, [3]);
    const x = new Float64Array(2 + 64);
    x[2 + 0] = 1; // pair 0 = (1, 0)
    x[2 + 3] = 1; // pair 1 = (0, 1)
    x[2 + 62] = 2; // pair 31 = (2, 3)
    x[2 + 63] = 3;
    applyRope(x, 2, t, 0);
    const [c0, s0, c1, s1, c31, s31] = [t.cos[0]!, t.sin[0]!, t.cos[1]!, t.sin[1]!, t.cos[31]!, t.sin[31]!];
    expect([x[0], x[1]]).toEqual([0, 0]); // nothing before `at` is touched
    expect([x[2], x[3]]).toEqual([c0, s0]);
    expect([x[4], x[5]]).toEqual([-s1, c1]);
    expect(x[2 + 62]).toBeCloseTo(2 * c31 - 3 * s31, 15);
    expect(x[2 + 63]).toBeCloseTo(2 * s31 + 3 * c31, 15);
    expect(x[2 + 6]).toBe(0);
  });
});
