/**
 * The experts on the GPU (decode: moe_gateup_id + moe_down_id; prefill: moe_align + moe_gateup_grouped +
 * moe_down_grouped + moe_combine) against the CPU SwiGLU of model/reference.ts on the same dequantised FP8
 * weights; ids vary across tokens; ragged D / F; expert stacks split across buffers (shards); the shared expert;
 * and router → experts end to end against reference.ts moe().
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ffn, moe as cpuMoe } from '../../src/model/reference.js';
import type { FfnWeights, Matrix } from '../../src/model/cpu-weights.js';
import { expertShards, fp8StackLayout, packFp8Stack, type Fp8Matrix } from '../../src/gpu/ops/fp8-layout.js';
import {
  createMoeScratch, moeExpertsDecode, moeExpertsPrefill, moeRouter, slotsPerToken,
  type MoeGeometry, type MoeWeightBuffers,
} from '../../src/gpu/ops/moe.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { expectClose, randInt, randn, rng, testAdapter, testGpu } from '../helpers/gpu.js';
import { checkClose, harness, printMeasured, randomFp8, readF32, runPass, toF64, upload, zeros } from './moe-mla-harness.js';

interface Expert {
  q: { gate: Fp8Matrix; up: Fp8Matrix; down: Fp8Matrix };
  w: FfnWeights; // dequantised
}

function expert(rand: () => number, D: number, F: number): Expert {
  const g = randomFp8(rand, F, D, 0.06);
  const u = randomFp8(rand, F, D, 0.06);
  const d = randomFp8(rand, D, F, 0.06);
  const mat = (rows: number, cols: number, data: Float32Array): Matrix => ({ rows, cols, data });
  return { q: { gate: g.m, up: u.m, down: d.m }, w: { gate: mat(F, D, g.w), up: mat(F, D, u.w), down: mat(D, F, d.w) } };
}

interface Layer {
  g: MoeGeometry;
  experts: Expert[];
  shared: Expert | null;
}

function layer(seed: number, g: MoeGeometry): Layer {
  const rand = rng(seed);
  return {
    g,
    experts: Array.from({ length: g.experts }, () => expert(rand, g.hidden, g.inter)),
    shared: g.sharedInter > 0 ? expert(rand, g.hidden, g.sharedInter) : null,
  };
}

/** Uploads the layer's experts in `shardCount`-expert shards (or as expertShards decides from a byte cap). */
function uploadLayer(gpu: GpuContext, l: Layer, maxBindingBytes?: number): MoeWeightBuffers {
  const { hidden: D, inter: F, experts: E } = l.g;
  const perExpert = 2 * fp8StackLayout(1, F, D).codeBytes + 0; // gate + up codes of one expert
  const shards = expertShards(E, perExpert, maxBindingBytes ?? gpu.limits.maxStorageBufferBindingSize);
  return {
    shards: shards.map((s) => {
      const ex = l.experts.slice(s.first, s.first + s.count);
      const gu = packFp8Stack(ex.flatMap((e) => [e.q.gate, e.q.up]));
      const dn = packFp8Stack(ex.map((e) => e.q.down));
      return {
        ...s,
        gateUp: { codes: upload(gpu, gu.codes), scales: upload(gpu, gu.scales) },
        down: { codes: upload(gpu, dn.codes), scales: upload(gpu, dn.scales) },
      };
    }),
    shared: l.shared
      ? (() => {
          const gu = packFp8Stack([l.shared.q.gate, l.shared.q.up]);
          const dn = packFp8Stack([l.shared.q.down]);
          return {
            gateUp: { codes: upload(gpu, gu.codes), scales: upload(gpu, gu.scales) },
            down: { codes: upload(gpu, dn.codes), scales: upload(gpu, dn.scales) },
          };
        })()
      : null,
  };
}

/** out = residual + Σ_k w_k FFN_{ids_k}(x) + FFN_shared(x), in f64 on the dequantised weights. */
function cpuExperts(l: Layer, x: Float32Array, ids: Uint32Array, wts: Float32Array, residual: Float32Array): Float64Array {
  const { hidden: D, topK: K } = l.g;
  const T = x.length / D;
  const out = toF64(residual);
  for (let t = 0; t < T; t++) {
    const xt = toF64(x.subarray(t * D, (t + 1) * D));
    const parts: Array<[number, FfnWeights]> = [];
    for (let k = 0; k < K; k++) parts.push([wts[t * K + k]!, l.experts[ids[t * K + k]!]!.w]);
    if (l.shared) parts.push([1, l.shared.w]);
    for (const [w, f] of parts) {
      const y = ffn(xt, f);
      for (let i = 0; i < D; i++) out[t * D + i]! += w * y[i]!;
    }
  }
  return out;
}

/** K distinct experts per token; `hot` gets picked by most tokens (several BM-row blocks for one expert). */
function randomRoutes(rand: () => number, T: number, E: number, K: number, hot = -1): { ids: Uint32Array; wts: Float32Array } {
  const ids = new Uint32Array(T * K);
  const wts = new Float32Array(T * K);
  for (let t = 0; t < T; t++) {
    const pool = Array.from({ length: E }, (_, e) => e);
    for (let k = 0; k < K; k++) {
      let pick = randInt(rand, 0, pool.length - 1);
      if (k === 0 && hot >= 0 && rand() < 0.8) pick = pool.indexOf(hot);
      ids[t * K + k] = pool.splice(pick, 1)[0]!;
      wts[t * K + k] = 0.2 + rand();
    }
  }
  return { ids, wts };
}

async function gpuExperts(
  l: Layer, x: Float32Array, ids: Uint32Array, wts: Float32Array, residual: Float32Array,
  path: 'decode' | 'prefill', maxBindingBytes?: number, variant?: 'f32' | 'subgroup',
): Promise<Float32Array> {
  const gpu = await testGpu();
  const h = harness(gpu);
  const T = x.length / l.g.hidden;
  const w = uploadLayer(gpu, l, maxBindingBytes);
  const scratch = createMoeScratch(gpu, l.g, T, path === 'prefill');
  const out = upload(gpu, residual);
  const args = {
    x: upload(gpu, x), ids: upload(gpu, ids), weights: upload(gpu, wts), out, accumulate: true,
    tokens: T, geometry: l.g, w, scratch, variant,
  };
  await runPass(h, (pass) => (path === 'decode' ? moeExpertsDecode : moeExpertsPrefill)(h.k, pass, h.arena, args));
  return readF32(gpu, out, T * l.g.hidden);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

// Tolerance: f32 GPU vs f64 CPU on identical dequantised weights; D, F ≤ 300-long f32 dots, silu via exp:
// ~1e-6 relative; 2e-5 · max|ref| leaves an order of magnitude.
const TOL = 2e-5;

/** The decode kernels this adapter runs: f32 always, the subgroup variants where the feature exists. */
async function decodeVariants(): Promise<Array<'f32' | 'subgroup'>> {
  const gpu = await testGpu();
  return gpu.features.has('subgroups') ? ['f32', 'subgroup'] : ['f32'];
}

const TINY: MoeGeometry = { hidden: 64, experts: 8, topK: 2, inter: 32, sharedInter: 32 };
const RAGGED: MoeGeometry = { hidden: 200, experts: 16, topK: 4, inter: 72, sharedInter: 144 }; // golden `ragged`
const ODD: MoeGeometry = { hidden: 150, experts: 6, topK: 3, inter: 50, sharedInter: 0 }; // rows not u32-aligned, no shared
const WIDE: MoeGeometry = { hidden: 300, experts: 5, topK: 2, inter: 260, sharedInter: 260 }; // F crosses two 128-row blocks

describe(`moe experts (${testAdapter()})`, () => {
  afterAll(() => printMeasured(`moe experts (${testAdapter()}), measured errors:`));

  it('debug case: tiny, one token, decode path', async () => {
    const l = layer(1, TINY);
    const rand = rng(2);
    const x = randn(rand, TINY.hidden);
    const residual = randn(rand, TINY.hidden);
    const ids = Uint32Array.from([5, 2]);
    const wts = Float32Array.from([0.7, 0.4]);
    const want = cpuExperts(l, x, ids, wts, residual);
    const got = await gpuExperts(l, x, ids, wts, residual, 'decode');
    checkClose(got, want, TOL, 'tiny decode');
  });

  it('decode path (small T), ids vary across tokens, ragged shapes, with and without shards', async () => {
    for (const [g, T, seed, cap] of [[RAGGED, 3, 10, 0], [ODD, 2, 11, 0], [WIDE, 1, 12, 0], [RAGGED, 2, 13, 3]] as const) {
      const l = layer(seed, g);
      const rand = rng(seed + 100);
      const x = randn(rand, T * g.hidden);
      const residual = randn(rand, T * g.hidden);
      const { ids, wts } = randomRoutes(rand, T, g.experts, g.topK);
      const want = cpuExperts(l, x, ids, wts, residual);
      // cap > 0: binding cap of `cap` experts' gate_up codes ⇒ ⌈E / cap⌉ shards, one dispatch pair each
      const maxBinding = cap ? cap * 2 * fp8StackLayout(1, g.inter, g.hidden).codeBytes : undefined;
      for (const variant of await decodeVariants()) {
        const got = await gpuExperts(l, x, ids, wts, residual, 'decode', maxBinding, variant);
        checkClose(got, want, TOL, `decode ${variant} ${JSON.stringify(g)} T=${T} cap=${cap}`);
      }
    }
  });

  it('prefill path: grouped by expert (a hot expert spans several blocks), shards, ragged shapes', async () => {
    for (const [g, T, seed, cap, hot] of [[RAGGED, 37, 20, 0, 3], [ODD, 23, 21, 2, 1], [WIDE, 9, 22, 0, -1], [TINY, 50, 23, 3, 7]] as const) {
      const l = layer(seed, g);
      const rand = rng(seed + 100);
      const x = randn(rand, T * g.hidden);
      const residual = randn(rand, T * g.hidden);
      const { ids, wts } = randomRoutes(rand, T, g.experts, g.topK, hot);
      const want = cpuExperts(l, x, ids, wts, residual);
      const maxBinding = cap ? cap * 2 * fp8StackLayout(1, g.inter, g.hidden).codeBytes : undefined;
      const got = await gpuExperts(l, x, ids, wts, residual, 'prefill', maxBinding);
      checkClose(got, want, TOL, `prefill ${JSON.stringify(g)} T=${T} cap=${cap}`);
      // the two paths compute the same sums in a different order
      if (T <= 9) {
        const dec = await gpuExperts(l, x, ids, wts, residual, 'decode', maxBinding);
        expectClose(got, dec, { atol: 1e-5 * Math.max(1, maxAbs(want)), label: 'prefill vs decode path' });
      }
    }
  });

  it('router → experts on the GPU equals reference.ts moe() (ids never leave the GPU)', async () => {
    const g = RAGGED;
    const l = layer(40, g);
    const rand = rng(41);
    const T = 6;
    const x = randn(rand, T * g.hidden);
    const gate: Matrix = { rows: g.experts, cols: g.hidden, data: randn(rand, g.experts * g.hidden, 0.1) };
    const bias = Float32Array.from({ length: g.experts }, () => 0.1 * rand());
    const rc = { n_routed_experts: g.experts, num_experts_per_tok: g.topK, n_group: 4, topk_group: 2, norm_topk_prob: true, routed_scaling_factor: 2.827 };
    const want = cpuMoe(toF64(x), { gate, bias, experts: l.experts.map((e) => e.w), shared: l.shared!.w }, rc);
    // logits as part A's GEMV would produce them (f32), computed here in f64 and rounded
    const logits = new Float32Array(T * g.experts);
    for (let t = 0; t < T; t++) {
      for (let e = 0; e < g.experts; e++) {
        let acc = 0;
        for (let i = 0; i < g.hidden; i++) acc += x[t * g.hidden + i]! * gate.data[e * g.hidden + i]!;
        logits[t * g.experts + e] = acc;
      }
    }
    const gpu = await testGpu();
    const h = harness(gpu);
    const w = uploadLayer(gpu, l);
    const ids = zeros(gpu, T * g.topK * 4);
    const weights = zeros(gpu, T * g.topK * 4);
    const out = zeros(gpu, T * g.hidden * 4);
    const xb = upload(gpu, x);
    for (const path of ['decode', 'prefill'] as const) {
      const scratch = createMoeScratch(gpu, g, T, path === 'prefill');
      await runPass(h, (pass) => {
        moeRouter(h.k, pass, h.arena, {
          logits: upload(gpu, logits), bias: upload(gpu, bias), ids, weights, tokens: T, experts: g.experts, topK: g.topK,
          groups: rc.n_group, topkGroups: rc.topk_group, normTopkProb: true, scaling: rc.routed_scaling_factor,
        });
        (path === 'decode' ? moeExpertsDecode : moeExpertsPrefill)(h.k, pass, h.arena, {
          x: xb, ids, weights, out, accumulate: false, tokens: T, geometry: g, w, scratch,
        });
      });
      const gotIds = new Uint32Array(await (await import('../../src/gpu/buffers.js')).readBuffer(gpu, ids, 0, T * g.topK * 4));
      expect([...gotIds], 'ids').toEqual([...want.ids]);
      const got = await readF32(gpu, out, T * g.hidden);
      checkClose(got, want.out, TOL, `router + experts (${path})`);
    }
    expect(slotsPerToken(g)).toBe(5);
  });
});

describe(`moe launchers reject bad shapes (${testAdapter()})`, () => {
  it('shards that do not cover the experts, missing shared weights, too many tokens', async () => {
    const { ShapeError } = await import('../../src/errors.js');
    const gpu = await testGpu();
    const h = harness(gpu);
    const l = layer(50, TINY);
    const w = uploadLayer(gpu, l);
    const scratch = createMoeScratch(gpu, TINY, 2, false);
    const b = zeros(gpu, 1 << 16);
    const base = { x: b, ids: b, weights: b, out: b, accumulate: false, tokens: 2, geometry: TINY, w, scratch };
    const enc = gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, w: { ...w, shards: w.shards.map((s) => ({ ...s, count: s.count - 1 })) } })).toThrow(ShapeError);
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, w: { ...w, shared: null } })).toThrow(/shared/);
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, tokens: 3 })).toThrow(ShapeError);
    expect(() => moeExpertsPrefill(h.k, pass, h.arena, base)).toThrow(/grouped/);
    pass.end();
  });
});
