/** moe_router.wgsl against model/router.ts moeRoute: hand-derived cases (groups, bias, ties) and random shapes. */
import { describe, expect, it } from 'vitest';
import { moeRoute, type RouterConfig } from '../../src/model/router.js';
import { moeRouter } from '../../src/gpu/ops/moe.js';
import { uploadLinear } from '../../src/gpu/ops/linear.js';
import { bf16ArrayToF32, f32ArrayToBf16 } from '../../src/format/fp8.js';
import { rmsNorm } from '../../src/model/reference.js';
import { ShapeError } from '../../src/errors.js';
import { expectClose, randInt, randn, rng, testAdapter, testGpu } from '../helpers/gpu.js';
import { harness, readF32, readU32, runPass, upload, zeros } from './moe-mla-harness.js';

interface Case {
  T: number;
  E: number;
  K: number;
  G: number;
  TG: number;
  norm: boolean;
  scaling: number;
  logits: Float32Array; // [T, E]
  bias: Float32Array; // [E]
}

async function route(c: Case): Promise<{ ids: Uint32Array; weights: Float32Array }> {
  const gpu = await testGpu();
  const h = harness(gpu);
  const ids = zeros(gpu, c.T * c.K * 4);
  const weights = zeros(gpu, c.T * c.K * 4);
  const logits = upload(gpu, c.logits);
  const bias = upload(gpu, c.bias);
  await runPass(h, (pass) =>
    moeRouter(h.k, pass, h.arena, {
      logits, bias, ids, weights, tokens: c.T, experts: c.E, topK: c.K, groups: c.G, topkGroups: c.TG, normTopkProb: c.norm, scaling: c.scaling,
    }),
  );
  return { ids: await readU32(gpu, ids, c.T * c.K), weights: await readF32(gpu, weights, c.T * c.K) };
}

function cfg(c: Case): RouterConfig {
  return {
    n_routed_experts: c.E, num_experts_per_tok: c.K, n_group: c.G, topk_group: c.TG,
    norm_topk_prob: c.norm, routed_scaling_factor: c.scaling,
  };
}

function cpuRoute(c: Case): { ids: number[]; weights: number[] } {
  const ids: number[] = [];
  const weights: number[] = [];
  for (let t = 0; t < c.T; t++) {
    const r = moeRoute(c.logits.subarray(t * c.E, (t + 1) * c.E), c.bias, cfg(c));
    ids.push(...r.ids);
    weights.push(...r.weights);
  }
  return { ids, weights };
}

/** Smallest gap around the selection boundaries (K-th vs K+1-th biased score, TG-th vs TG+1-th group), in f64. */
function margin(logits: ArrayLike<number>, bias: ArrayLike<number>, c: Case): number {
  const b = Array.from({ length: c.E }, (_, e) => 1 / (1 + Math.exp(-logits[e]!)) + bias[e]!);
  let m = Infinity;
  const per = c.E / c.G;
  let kept = b;
  if (c.G > 1) {
    const gs = Array.from({ length: c.G }, (_, g) => {
      const v = b.slice(g * per, (g + 1) * per).sort((x, y) => y - x);
      return v[0]! + v[1]!;
    });
    const sorted = [...gs].sort((x, y) => y - x);
    if (c.TG < c.G) m = Math.min(m, sorted[c.TG - 1]! - sorted[c.TG]!);
    const keep = new Set(gs.map((v, g) => [v, g] as const).sort((x, y) => y[0] - x[0] || x[1] - y[1]).slice(0, c.TG).map((x) => x[1]));
    kept = b.map((v, e) => (keep.has(Math.floor(e / per)) ? v : -Infinity));
  }
  const s = [...kept].sort((x, y) => y - x);
  if (c.K < c.E && Number.isFinite(s[c.K]!)) m = Math.min(m, s[c.K - 1]! - s[c.K]!);
  return m;
}

describe(`moe_router (${testAdapter()})`, () => {
  it('debug case: groups, tie between groups → lower group, masked group beats a kept expert', async () => {
    // all logits 0 ⇒ s = 0.5 exactly; biases are binary fractions ⇒ every b is exact in f32.
    // b = [.75 .5 | .625 .625 | .875 .5625 | .5 .5625]; group sums 1.25, 1.25, 1.4375, 1.0625.
    // TG = 2 keeps group 2 and (tie 1.25 = 1.25) group 0; top-3 of {0,1,4,5} = 4, 0, 5 (experts 2, 3 masked).
    const c: Case = {
      T: 1, E: 8, K: 3, G: 4, TG: 2, norm: true, scaling: 2.5,
      logits: new Float32Array(8),
      bias: Float32Array.from([0.25, 0, 0.125, 0.125, 0.375, 0.0625, 0, 0.0625]),
    };
    const r = await route(c);
    expect([...r.ids]).toEqual([4, 0, 5]);
    // s / Σs · 2.5 in f32: two roundings away from 2.5 / 3
    expectClose(r.weights, [2.5 / 3, 2.5 / 3, 2.5 / 3], { rtol: 3e-7, label: 'weights' });
    expect(cpuRoute(c).ids).toEqual([4, 0, 5]);
  });

  it('negative biased scores: dropped groups are masked with -inf, not 0 (docs/model.md §6.2, HF #45441)', async () => {
    // all logits 0 ⇒ s = 0.5; biases -1.5 + binary fractions ⇒ every b < 0 and exact in f32.
    // b = [-.75 -1 | -.875 -.875 | -.625 -.9375 | -1 -.9375]; group sums -1.75, -1.75, -1.5625, -1.9375.
    // TG = 2 keeps group 2 and (tie) group 0; top-3 of {0,1,4,5} = 4, 0, 5. A 0.0 mask would pick masked experts.
    const c: Case = {
      T: 1, E: 8, K: 3, G: 4, TG: 2, norm: false, scaling: 1,
      logits: new Float32Array(8),
      bias: Float32Array.from([-1.25, -1.5, -1.375, -1.375, -1.125, -1.4375, -1.5, -1.4375]),
    };
    const r = await route(c);
    expect([...r.ids]).toEqual([4, 0, 5]);
    expect(cpuRoute(c).ids).toEqual([4, 0, 5]);
    expectClose(r.weights, [0.5, 0.5, 0.5], { rtol: 3e-7, label: 'weights (unbiased s, not normalised)' });
  });

  it('bias selects, the unbiased score weighs; ties between experts → lower index', async () => {
    const c: Case = {
      T: 3, E: 4, K: 2, G: 1, TG: 1, norm: false, scaling: 2,
      // token 0: expert 0 has the largest s but expert 1 the largest b; token 1: all tied; token 2: tie 2/3
      logits: Float32Array.from([2, 0, -1, -3, 0, 0, 0, 0, -2, -1, 1, 1]),
      bias: Float32Array.from([0, 0.5, 0, 0]),
    };
    const r = await route(c);
    const want = cpuRoute(c);
    expect([...r.ids]).toEqual(want.ids);
    expect([...r.ids]).toEqual([1, 0, 1, 0, 1, 2]);
    // tolerance: f32 sigmoid (WGSL exp) vs f64, relative ~1e-7
    expectClose(r.weights, want.weights, { atol: 1e-6, rtol: 1e-6, label: 'weights' });
    expect(r.weights[0]).toBe(1); // s = 0.5 exactly, unnormalised, × 2
  });

  it('random shapes (E up to 384, K up to 8, G 1..8) match moeRoute', async () => {
    const rand = rng(1234);
    const shapes = [
      { E: 8, K: 2, G: 1, TG: 1 },
      { E: 16, K: 4, G: 4, TG: 2 },
      { E: 32, K: 8, G: 8, TG: 4 },
      { E: 48, K: 5, G: 3, TG: 2 },
      { E: 256, K: 8, G: 8, TG: 4 },
      { E: 384, K: 8, G: 1, TG: 1 },
      { E: 72, K: 1, G: 2, TG: 1 },
    ];
    for (const s of shapes) {
      const T = randInt(rand, 1, 13);
      const c: Case = { ...s, T, norm: rand() < 0.7, scaling: 1 + 2 * rand(), logits: new Float32Array(T * s.E), bias: new Float32Array(s.E) };
      c.bias.set(Array.from({ length: s.E }, () => 0.1 * rand()));
      for (let t = 0; t < T; t++) {
        // re-draw a token whose selection margins are below 1e-5: f32 vs f64 could then legitimately differ
        let row: Float32Array;
        do row = randn(rand, s.E, 1.5);
        while (margin(row, c.bias, c) < 1e-5);
        c.logits.set(row, t * s.E);
      }
      const r = await route(c);
      const want = cpuRoute(c);
      const label = `E=${s.E} K=${s.K} G=${s.G} TG=${s.TG} T=${T} (seed 1234)`;
      expect([...r.ids], label).toEqual(want.ids);
      expectClose(r.weights, want.weights, { atol: 1e-6, rtol: 2e-6, label });
    }
  });

  it('GATE: the RMSNorm and the BF16 gate GEMV inside the router (decode routing in one dispatch) match rmsNorm, the f64 logits and moeRoute; xn is written', async () => {
    const gpu = await testGpu();
    const h = harness(gpu);
    const rand = rng(4321);
    const eps = 1e-6;
    // D odd (the last word's high half is padding), D a multiple of 64, Kimi-toy widths, the largest D taken
    const shapes = [
      { D: 63, E: 16, K: 4, G: 4, TG: 2 },
      { D: 256, E: 32, K: 8, G: 1, TG: 1 },
      { D: 384, E: 64, K: 8, G: 1, TG: 1 },
      { D: 2048, E: 72, K: 6, G: 8, TG: 3 },
    ];
    for (const sh of shapes) {
      const T = randInt(rand, 1, 5);
      const c: Case = { ...sh, T, norm: rand() < 0.7, scaling: 1 + 2 * rand(), logits: new Float32Array(T * sh.E), bias: new Float32Array(sh.E) };
      c.bias.set(Array.from({ length: sh.E }, () => 0.1 * rand()));
      const wBits = f32ArrayToBf16(randn(rand, sh.E * sh.D, 1 / Math.sqrt(sh.D)));
      const wDense = bf16ArrayToF32(wBits);
      const nw = Float32Array.from(randn(rand, sh.D, 0.3), (v) => 1 + v);
      const hid = new Float32Array(T * sh.D);
      const xnWant = new Float64Array(T * sh.D);
      for (let t = 0; t < T; t++) {
        // re-draw a token whose selection margins (f64 logits) are below 1e-4: f32 vs f64 could then legitimately differ
        for (;;) {
          const row = randn(rand, sh.D, 2);
          const xn = rmsNorm(Float64Array.from(row), nw, eps);
          const logits = Float64Array.from({ length: sh.E }, (_, e) => xn.reduce((acc, v, j) => acc + wDense[e * sh.D + j]! * v, 0));
          if (margin(logits, c.bias, c) < 1e-4) continue;
          hid.set(row, t * sh.D);
          xnWant.set(xn, t * sh.D);
          c.logits.set(logits, t * sh.E);
          break;
        }
      }
      const gw = uploadLinear(gpu, 'gate', { format: 'bf16', rows: sh.E, cols: sh.D, data: wBits });
      const [hb, nwb, ids, weights, xn] = [upload(gpu, hid), upload(gpu, nw), zeros(gpu, T * c.K * 4), zeros(gpu, T * c.K * 4), zeros(gpu, T * sh.D * 4)];
      const bias = upload(gpu, c.bias);
      await runPass(h, (pass) =>
        moeRouter(h.k, pass, h.arena, {
          logits: zeros(gpu, 16), bias, ids, weights, tokens: T, experts: c.E, topK: c.K, groups: c.G, topkGroups: c.TG, normTopkProb: c.norm, scaling: c.scaling,
          gate: { h: hb, codes: gw.chunks[0]!.codes, strideWords: gw.strideWords, norm: nwb, eps, xn, hidden: sh.D },
        }),
      );
      const label = `GATE D=${sh.D} E=${sh.E} K=${sh.K} G=${sh.G} TG=${sh.TG} T=${T} (seed 4321)`;
      const want = cpuRoute(c); // moeRoute on the f64 logits
      expect([...(await readU32(gpu, ids, T * c.K))], label).toEqual(want.ids);
      // f32 sigmoid of f32 logits (D-term sums in f32: |Δlogit| ≲ D·2^-24·Σ|w·x|) vs f64
      expectClose(await readF32(gpu, weights, T * c.K), want.weights, { atol: 1e-5, rtol: 1e-5, label: `${label} weights` });
      // xn = nw · (h · inv) in f32: a few roundings of each value, and the D-term Σ h² in f32
      expectClose(await readF32(gpu, xn, T * sh.D), xnWant, { atol: 1e-6, rtol: 1e-5, label: `${label} xn` });
      gw.chunks[0]!.codes.destroy();
    }
  });

  it('rejects shapes it cannot route', async () => {
    const gpu = await testGpu();
    const h = harness(gpu);
    const b = zeros(gpu, 4096);
    const enc = gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    const base = { logits: b, bias: b, ids: b, weights: b, tokens: 1, normTopkProb: true, scaling: 1 };
    expect(() => moeRouter(h.k, pass, h.arena, { ...base, experts: 10, topK: 2, groups: 3, topkGroups: 1 })).toThrow(ShapeError);
    expect(() => moeRouter(h.k, pass, h.arena, { ...base, experts: 16, topK: 9, groups: 4, topkGroups: 2 })).toThrow(ShapeError);
    expect(() => moeRouter(h.k, pass, h.arena, { ...base, experts: 600, topK: 2, groups: 1, topkGroups: 1 })).toThrow(ShapeError);
    // GATE: a hidden size whose workgroup copy of xn exceeds the device's workgroup memory; gate rows too short for D
    const D = gpu.limits.maxComputeWorkgroupStorageSize / 4;
    const gate = { h: b, codes: b, strideWords: D / 2, norm: b, eps: 1e-6, xn: b, hidden: D };
    expect(() => moeRouter(h.k, pass, h.arena, { ...base, experts: 8, topK: 2, groups: 1, topkGroups: 1, gate })).toThrow(/workgroup memory for hidden/);
    expect(() => moeRouter(h.k, pass, h.arena, { ...base, experts: 8, topK: 2, groups: 1, topkGroups: 1, gate: { ...gate, hidden: 64, strideWords: 16 } })).toThrow(ShapeError);
    pass.end();
  });
});
