/**
 * The BF16 twins of the attention absorb and expert kernels (mla_absorb_q_bf16, mla_absorb_v_bf16,
 * moe_gateup_id_bf16, moe_down_id_bf16, moe_gateup_grouped_bf16, moe_down_grouped_bf16), run through the same
 * launchers as the FP8 kernels (selected by the weights' `format: 'bf16'`), against the CPU reference
 * (model/reference.ts attentionAbsorbed / attentionNaive, ffn) on the same BF16 weights widened exactly
 * (format/fp8.ts bf16ArrayToF32). Seeded random shapes: R, D, F not multiples of 4 (odd ones leave a padding
 * half-word in the last word of a row), 128-row blocks crossed mid-head, expert stacks split into shards, a hot
 * expert spanning several grouped blocks, prefill chunks at p0 > 0 and split-KV decode.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { bf16ArrayToF32, f32ArrayToBf16 } from '../../src/format/fp8.js';
import { attentionAbsorbed, attentionNaive, expandKv, ffn, type MlaShape } from '../../src/model/reference.js';
import type { FfnWeights, Matrix } from '../../src/model/cpu-weights.js';
import { bf16RowStrideWords, bf16StackLayout, expertShards, packBf16Rows, packBf16Stack, type Bf16Matrix } from '../../src/gpu/ops/fp8-layout.js';
import { createMlaScratch, fusedCacheView, mlaAbsorbQ, mlaAttend, type MlaGeometry } from '../../src/gpu/ops/attention.js';
import { createMoeScratch, moeExpertsDecode, moeExpertsPrefill, type MoeGeometry, type MoePrefillVariant, type MoeWeightBuffers } from '../../src/gpu/ops/moe.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { ShapeError } from '../../src/errors.js';
import { expectClose, randInt, randn, rng, testAdapter, testGpu } from '../helpers/gpu.js';
import { checkClose, harness, printMeasured, readF32, runPass, toF64, upload, zeros, cpuExperts, randomRoutes } from './moe-mla-harness.js';

/** A random BF16 weight: N(0, std) rounded to BF16, and its exact f32 value. */
function randomBf16(rand: () => number, rows: number, cols: number, std: number): { m: Bf16Matrix; w: Float32Array } {
  const data = f32ArrayToBf16(randn(rand, rows * cols, std));
  return { m: { rows, cols, data }, w: bf16ArrayToF32(data) };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

// Tolerance: f32 GPU vs f64 CPU on identical (exactly widened) BF16 weights; only f32 rounding and summation
// order of ≤ 576-long dots, exp and the softmax rescaling differ (~1e-6 relative, as the FP8 kernels' tests):
// 2e-5 · max(1, max|ref|) leaves an order of magnitude.
const TOL = 2e-5;

// ---------------------------------------------------------------------------------------------------------------
// MLA absorb twins

interface MlaProblem {
  g: MlaGeometry;
  scale: number;
  T: number;
  p0: number;
  q: Float32Array; // [T, H, Dq]
  cHat: Float32Array; // [S, R]
  kPe: Float32Array; // [S, Dr]
  kvB: Matrix; // widened [H(Dn+Dv), R]
  kvBCodes: Uint8Array; // padded BF16 rows
}

function mlaProblem(seed: number, g: MlaGeometry, T: number, p0: number): MlaProblem {
  const rand = rng(seed);
  const S = p0 + T;
  const rows = g.heads * (g.nope + g.v);
  const { m, w } = randomBf16(rand, rows, g.rank, 0.08);
  return {
    g, T, p0,
    scale: (g.nope + g.rope) ** -0.5 * 1.3465736 ** 2,
    q: randn(rand, T * g.heads * (g.nope + g.rope), 1),
    cHat: randn(rand, S * g.rank, 1),
    kPe: randn(rand, S * g.rope, 1),
    kvB: { rows, cols: g.rank, data: w },
    kvBCodes: packBf16Rows(m).bytes,
  };
}

function cpuAttention(pr: MlaProblem, form: 'absorbed' | 'naive'): Float64Array {
  const { heads: H, nope: Dn, rope: Dr, v, rank } = pr.g;
  const shape: MlaShape = { heads: H, nope: Dn, rope: Dr, v, rank, scale: pr.scale };
  const qNope = new Float64Array(pr.T * H * Dn);
  const qPe = new Float64Array(pr.T * H * Dr);
  for (let i = 0; i < pr.T * H; i++) {
    for (let d = 0; d < Dn; d++) qNope[i * Dn + d] = pr.q[i * (Dn + Dr) + d]!;
    for (let d = 0; d < Dr; d++) qPe[i * Dr + d] = pr.q[i * (Dn + Dr) + Dn + d]!;
  }
  const S = pr.p0 + pr.T;
  const qPos = Array.from({ length: pr.T }, (_, t) => pr.p0 + t);
  const kPos = Array.from({ length: S }, (_, j) => j);
  const cHat = toF64(pr.cHat);
  const kPe = toF64(pr.kPe);
  if (form === 'absorbed') return attentionAbsorbed(qNope, qPe, cHat, kPe, pr.kvB, qPos, kPos, shape);
  const { kNope, v: vv } = expandKv(cHat, pr.kvB, shape);
  return attentionNaive(qNope, qPe, kNope, kPe, vv, qPos, kPos, shape);
}

async function gpuAttend(pr: MlaProblem, splits: number): Promise<Float32Array> {
  const gpu = await testGpu();
  const h = harness(gpu);
  const { g, T } = pr;
  const S = pr.p0 + T;
  const L = g.rank + g.rope;
  const rows = new Float32Array(S * L);
  for (let j = 0; j < S; j++) {
    rows.set(pr.cHat.subarray(j * g.rank, (j + 1) * g.rank), j * L);
    rows.set(pr.kPe.subarray(j * g.rope, (j + 1) * g.rope), j * L + g.rank);
  }
  const cache = fusedCacheView(upload(gpu, rows), g);
  const scratch = createMlaScratch(gpu, g, T, Math.max(1, splits));
  const out = zeros(gpu, T * g.heads * g.v * 4);
  const kvB = { format: 'bf16' as const, codes: upload(gpu, pr.kvBCodes) };
  const q = upload(gpu, pr.q);
  await runPass(h, (pass) =>
    mlaAttend(h.k, pass, h.arena, { q, kvB, cache, out, tokens: T, startPos: pr.p0, geometry: g, scale: pr.scale, scratch, splits }),
  );
  return readF32(gpu, out, T * g.heads * g.v);
}

const MLA_TINY: MlaGeometry = { heads: 2, nope: 16, rope: 8, v: 16, rank: 32 };
const MLA_RAGGED: MlaGeometry = { heads: 3, nope: 40, rope: 24, v: 56, rank: 72 }; // golden `ragged`
const MLA_ODD: MlaGeometry = { heads: 5, nope: 24, rope: 6, v: 20, rank: 50 }; // R % 4 == 2: half-empty last group
const MLA_ODD1: MlaGeometry = { heads: 2, nope: 36, rope: 4, v: 70, rank: 45 }; // R odd: padding half-word; Dv > WG
const MLA_K2: MlaGeometry = { heads: 3, nope: 128, rope: 64, v: 128, rank: 512 }; // kv_b rows cross 128-row blocks

describe(`BF16 MLA absorb twins (${testAdapter()})`, () => {
  afterAll(() => printMeasured(`BF16 MLA absorb twins (${testAdapter()}), measured errors:`));

  it('debug case: tiny decode at p0 = 3, absorbed and naive CPU forms', async () => {
    const pr = mlaProblem(7, MLA_TINY, 1, 3);
    const got = await gpuAttend(pr, 1);
    checkClose(got, cpuAttention(pr, 'absorbed'), TOL, 'bf16 debug: gpu vs absorbed');
    checkClose(got, cpuAttention(pr, 'naive'), TOL, 'bf16 debug: gpu vs naive');
  });

  it('absorb_q alone: q̃ = W_UK^T q_nope and the q_pe copy (odd R, TT = 8 + remainder)', async () => {
    const gpu = await testGpu();
    const h = harness(gpu);
    for (const [g, T] of [[MLA_RAGGED, 5], [MLA_ODD1, 9], [MLA_K2, 2]] as const) {
      const pr = mlaProblem(11, g, T, 0);
      const L = g.rank + g.rope;
      const qLat = zeros(gpu, T * g.heads * L * 4);
      const q = upload(gpu, pr.q);
      await runPass(h, (pass) => mlaAbsorbQ(h.k, pass, h.arena, { q, kvB: { format: 'bf16', codes: upload(gpu, pr.kvBCodes) }, qLat, tokens: T, geometry: g }));
      const got = await readF32(gpu, qLat, T * g.heads * L);
      const want = new Float64Array(T * g.heads * L);
      const Dq = g.nope + g.rope;
      for (let th = 0; th < T * g.heads; th++) {
        const hh = th % g.heads;
        for (let r = 0; r < g.rank; r++) {
          let acc = 0;
          for (let d = 0; d < g.nope; d++) acc += pr.kvB.data[(hh * (g.nope + g.v) + d) * g.rank + r]! * pr.q[th * Dq + d]!;
          want[th * L + r] = acc;
        }
        for (let i = 0; i < g.rope; i++) want[th * L + g.rank + i] = pr.q[th * Dq + g.nope + i]!;
      }
      // Dn ≤ 128-long f32 dots: ~1e-6 relative
      checkClose(got, want, 1e-5, `bf16 absorb_q ${JSON.stringify(g)} T=${T}`);
    }
  });

  it('decode (with and without key splits) and prefill chunks at p0 > 0, ragged geometries', async () => {
    for (const [g, T, p0, splits, seed] of [
      [MLA_RAGGED, 1, 40, 1, 21],
      [MLA_ODD, 1, 60, 3, 22],
      [MLA_K2, 1, 33, 2, 23],
      [MLA_ODD1, 7, 5, 1, 24],
      [MLA_RAGGED, 11, 0, 1, 25],
      [MLA_TINY, 9, 17, 2, 26],
    ] as const) {
      const pr = mlaProblem(seed, g, T, p0);
      const got = await gpuAttend(pr, splits);
      checkClose(got, cpuAttention(pr, 'absorbed'), TOL, `bf16 attend ${JSON.stringify(g)} T=${T} p0=${p0} splits=${splits}`);
    }
  });

  it('rejects a BF16 kv_b whose codes are too small (checked against the BF16 row stride)', async () => {
    const gpu = await testGpu();
    const h = harness(gpu);
    const g = MLA_ODD1;
    const rows = g.heads * (g.nope + g.v);
    const exact = rows * bf16RowStrideWords(g.rank) * 4;
    const big = zeros(gpu, 1 << 16);
    const enc = gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    expect(() => mlaAbsorbQ(h.k, pass, h.arena, { q: big, kvB: { format: 'bf16', codes: zeros(gpu, exact - 16) }, qLat: big, tokens: 1, geometry: g })).toThrow(/kv_b\.codes/);
    expect(() => mlaAbsorbQ(h.k, pass, h.arena, { q: big, kvB: { format: 'bf16', codes: zeros(gpu, exact) }, qLat: big, tokens: 1, geometry: g })).not.toThrow();
    pass.end();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// MoE expert twins

interface Expert {
  q: { gate: Bf16Matrix; up: Bf16Matrix; down: Bf16Matrix };
  w: FfnWeights; // widened
}

function expert(rand: () => number, D: number, F: number): Expert {
  const g = randomBf16(rand, F, D, 0.06);
  const u = randomBf16(rand, F, D, 0.06);
  const d = randomBf16(rand, D, F, 0.06);
  return {
    q: { gate: g.m, up: u.m, down: d.m },
    w: { gate: { rows: F, cols: D, data: g.w }, up: { rows: F, cols: D, data: u.w }, down: { rows: D, cols: F, data: d.w } },
  };
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

/** BF16 stacks as the engine lays them out; `cap` experts per shard when given (else one shard). */
function uploadLayer(gpu: GpuContext, l: Layer, cap = 0): MoeWeightBuffers {
  const { hidden: D, inter: F, experts: E } = l.g;
  const perExpert = bf16StackLayout(2, F, D).codeBytes;
  const shards = expertShards(E, perExpert, cap ? cap * perExpert : gpu.limits.maxStorageBufferBindingSize);
  const stack = (mats: Bf16Matrix[]) => ({ format: 'bf16' as const, codes: upload(gpu, packBf16Stack(mats).codes) });
  return {
    shards: shards.map((s) => {
      const ex = l.experts.slice(s.first, s.first + s.count);
      return { ...s, gateUp: stack(ex.flatMap((e) => [e.q.gate, e.q.up])), down: stack(ex.map((e) => e.q.down)) };
    }),
    shared: l.shared ? { gateUp: stack([l.shared.q.gate, l.shared.q.up]), down: stack([l.shared.q.down]) } : null,
  };
}

async function gpuExperts(
  l: Layer, x: Float32Array, ids: Uint32Array, wts: Float32Array, residual: Float32Array,
  path: 'decode' | 'prefill', cap = 0, variant?: 'f32' | 'subgroup', prefill?: MoePrefillVariant,
): Promise<Float32Array> {
  const gpu = await testGpu();
  const h = harness(gpu);
  const T = x.length / l.g.hidden;
  const w = uploadLayer(gpu, l, cap);
  if (cap) expect(w.shards.length).toBe(Math.ceil(l.g.experts / cap));
  const scratch = createMoeScratch(gpu, l.g, T, path === 'prefill');
  const out = upload(gpu, residual);
  const args = { x: upload(gpu, x), ids: upload(gpu, ids), weights: upload(gpu, wts), out, accumulate: true, tokens: T, geometry: l.g, w, scratch, variant, prefill };
  await runPass(h, (pass) => (path === 'decode' ? moeExpertsDecode : moeExpertsPrefill)(h.k, pass, h.arena, args));
  return readF32(gpu, out, T * l.g.hidden);
}

const TINY: MoeGeometry = { hidden: 64, experts: 8, topK: 2, inter: 32, sharedInter: 32 };
const RAGGED: MoeGeometry = { hidden: 200, experts: 16, topK: 4, inter: 72, sharedInter: 144 }; // golden `ragged`
const ODD: MoeGeometry = { hidden: 150, experts: 6, topK: 3, inter: 50, sharedInter: 0 }; // D, F % 4 == 2, no shared
const ODD1: MoeGeometry = { hidden: 201, experts: 5, topK: 2, inter: 75, sharedInter: 131 }; // odd: padding half-words
const WIDE: MoeGeometry = { hidden: 300, experts: 5, topK: 2, inter: 260, sharedInter: 260 }; // rows > 4 workgroups

describe(`BF16 MoE expert twins (${testAdapter()})`, () => {
  afterAll(() => printMeasured(`BF16 MoE expert twins (${testAdapter()}), measured errors:`));

  it('debug case: tiny, one token, decode path', async () => {
    const l = layer(1, TINY);
    const rand = rng(2);
    const x = randn(rand, TINY.hidden);
    const residual = randn(rand, TINY.hidden);
    const ids = Uint32Array.from([5, 2]);
    const wts = Float32Array.from([0.7, 0.4]);
    checkClose(await gpuExperts(l, x, ids, wts, residual, 'decode'), cpuExperts(l, x, ids, wts, residual), TOL, 'bf16 tiny decode');
  });

  it('decode path (by id): ids vary across tokens, ragged and odd shapes, shards; a subgroup request runs the BF16 twin', async () => {
    for (const [g, T, seed, cap] of [[RAGGED, 3, 10, 0], [ODD, 2, 11, 0], [ODD1, 4, 12, 2], [WIDE, 1, 13, 0], [RAGGED, 2, 14, 3]] as const) {
      const l = layer(seed, g);
      const rand = rng(seed + 100);
      const x = randn(rand, T * g.hidden);
      const residual = randn(rand, T * g.hidden);
      const { ids, wts } = randomRoutes(rand, T, g.experts, g.topK);
      const want = cpuExperts(l, x, ids, wts, residual);
      const got = await gpuExperts(l, x, ids, wts, residual, 'decode', cap);
      checkClose(got, want, TOL, `bf16 decode ${JSON.stringify(g)} T=${T} cap=${cap}`);
      if (seed === 12) {
        const sub = await gpuExperts(l, x, ids, wts, residual, 'decode', cap, 'subgroup');
        expect(Array.from(sub)).toEqual(Array.from(got)); // same kernel, same order
      }
    }
  });

  it('prefill path (grouped by expert, grouped and tiled kernels): a hot expert spans several blocks, shards, ragged and odd shapes', async () => {
    for (const [g, T, seed, cap, hot] of [[RAGGED, 37, 20, 0, 3], [ODD, 23, 21, 2, 1], [ODD1, 18, 22, 2, 0], [WIDE, 9, 23, 0, -1], [TINY, 50, 24, 3, 7]] as const) {
      const l = layer(seed, g);
      const rand = rng(seed + 100);
      const x = randn(rand, T * g.hidden);
      const residual = randn(rand, T * g.hidden);
      const { ids, wts } = randomRoutes(rand, T, g.experts, g.topK, hot);
      const want = cpuExperts(l, x, ids, wts, residual);
      const grouped = await gpuExperts(l, x, ids, wts, residual, 'prefill', cap, undefined, 'grouped');
      checkClose(grouped, want, TOL, `bf16 prefill grouped ${JSON.stringify(g)} T=${T} cap=${cap}`);
      const got = await gpuExperts(l, x, ids, wts, residual, 'prefill', cap, undefined, 'tiled');
      checkClose(got, want, TOL, `bf16 prefill tiled ${JSON.stringify(g)} T=${T} cap=${cap}`);
      if (T <= 9) {
        // the two paths compute the same sums in a different order
        const dec = await gpuExperts(l, x, ids, wts, residual, 'decode', cap);
        expectClose(got, dec, { atol: 1e-5 * Math.max(1, maxAbs(want)), label: 'bf16 prefill vs decode path' });
      }
    }
  });

  it('rejects routed stacks that mix FP8 and BF16 (or a shared stack that mixes its own), and BF16 stacks that are too small', async () => {
    const gpu = await testGpu();
    const h = harness(gpu);
    const l = layer(50, TINY);
    const w = uploadLayer(gpu, l);
    const scratch = createMoeScratch(gpu, TINY, 2, false);
    const b = zeros(gpu, 1 << 16);
    const base = { x: b, ids: b, weights: b, out: b, accumulate: false, tokens: 2, geometry: TINY, w, scratch };
    const enc = gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    // a shared expert in another format than the routed ones is a second launch group (INT4 + BF16 in Kimi), but
    // its own two stacks must agree, as must the routed shards
    const mixedShared = { gateUp: { codes: b, scales: b }, down: w.shared!.down };
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, w: { ...w, shared: mixedShared } })).toThrow(ShapeError);
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, w: { ...w, shared: mixedShared } })).toThrow(/shared\.down.*bf16.*fp8/);
    const w3 = uploadLayer(gpu, l, 3); // 3 shards
    const mixedShards = { ...w3, shards: w3.shards.map((s, i) => (i === 0 ? s : { ...s, gateUp: { codes: b, scales: b } })) };
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, w: mixedShards })).toThrow(/shard 3\.gateUp.*fp8.*bf16/);
    const short = { ...w, shards: w.shards.map((s) => ({ ...s, down: { format: 'bf16' as const, codes: zeros(gpu, 16) } })) };
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, w: short })).toThrow(/down\.codes/);
    pass.end();
  });
});
