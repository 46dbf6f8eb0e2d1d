/**
 * MLA absorbed attention on the GPU (mla_absorb_q → mla_attention [→ mla_decode_reduce] → mla_absorb_v)
 * against the CPU reference's attentionAbsorbed AND attentionNaive (model/reference.ts), decode and prefill
 * chunks starting at p0 > 0, with and without key splits, on ragged geometries.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { attentionAbsorbed, attentionNaive, expandKv, type MlaShape } from '../../src/model/reference.js';
import type { Matrix } from '../../src/model/cpu-weights.js';
import { packFp8Rows } from '../../src/gpu/ops/fp8-layout.js';
import {
  chooseSplits, createMlaScratch, fusedCacheView, mlaAbsorbQ, mlaAttend, mlaAttention, type LatentCacheView, type MlaGeometry,
} from '../../src/gpu/ops/attention.js';
import { expectClose, randn, rng, testAdapter, testGpu } from '../helpers/gpu.js';
import { GPU_DECODE_SPLITS } from '../../src/gpu/plan.js';
import { checkClose, harness, printMeasured, randomFp8, readF32, runPass, toF64, upload, zeros } from './moe-mla-harness.js';

interface Problem {
  g: MlaGeometry;
  scale: number;
  T: number;
  p0: number;
  q: Float32Array; // [T, H, Dq]
  cHat: Float32Array; // [S, R]
  kPe: Float32Array; // [S, Dr]
  kvB: Matrix; // dequantised [H(Dn+Dv), R]
  kvBCodes: Uint8Array; // padded rows
  kvBScale: Float32Array;
}

function problem(seed: number, g: MlaGeometry, T: number, p0: number): Problem {
  const rand = rng(seed);
  const S = p0 + T;
  const rows = g.heads * (g.nope + g.v);
  const { m, w } = randomFp8(rand, rows, g.rank, 0.08);
  return {
    g, T, p0,
    scale: (g.nope + g.rope) ** -0.5 * 1.3465736 ** 2,
    q: randn(rand, T * g.heads * (g.nope + g.rope), 1),
    cHat: randn(rand, S * g.rank, 1),
    kPe: randn(rand, S * g.rope, 1),
    kvB: { rows, cols: g.rank, data: w },
    kvBCodes: packFp8Rows(m).bytes,
    kvBScale: m.scale,
  };
}

function shape(pr: Problem): MlaShape {
  const { heads, nope, rope, v, rank } = pr.g;
  return { heads, nope, rope, v, rank, scale: pr.scale };
}

/** Splits q [T, H, Dq] into the reference's qNope / qPe. */
function splitQ(pr: Problem): { qNope: Float64Array; qPe: Float64Array } {
  const { heads: H, nope: Dn, rope: Dr } = pr.g;
  const qNope = new Float64Array(pr.T * H * Dn);
  const qPe = new Float64Array(pr.T * H * Dr);
  for (let i = 0; i < pr.T * H; i++) {
    for (let d = 0; d < Dn; d++) qNope[i * Dn + d] = pr.q[i * (Dn + Dr) + d]!;
    for (let d = 0; d < Dr; d++) qPe[i * Dr + d] = pr.q[i * (Dn + Dr) + Dn + d]!;
  }
  return { qNope, qPe };
}

function cpu(pr: Problem, form: 'absorbed' | 'naive'): Float64Array {
  const { qNope, qPe } = splitQ(pr);
  const S = pr.p0 + pr.T;
  const qPos = Array.from({ length: pr.T }, (_, t) => pr.p0 + t);
  const kPos = Array.from({ length: S }, (_, j) => j);
  const cHat = toF64(pr.cHat);
  const kPe = toF64(pr.kPe);
  if (form === 'absorbed') return attentionAbsorbed(qNope, qPe, cHat, kPe, pr.kvB, qPos, kPos, shape(pr));
  const { kNope, v } = expandKv(cHat, pr.kvB, shape(pr));
  return attentionNaive(qNope, qPe, kNope, kPe, v, qPos, kPos, shape(pr));
}

/** Runs the whole GPU attention; `fused` stores the cache as one [S, R + Dr] buffer, else two with padding. */
async function gpuAttend(pr: Problem, splits: number, fused = true, variant?: 'tiled' | 'rows'): Promise<Float32Array> {
  const gpu = await testGpu();
  const h = harness(gpu);
  const { g, T } = pr;
  const S = pr.p0 + T;
  const L = g.rank + g.rope;
  let cache: LatentCacheView;
  if (fused) {
    const rowsBuf = new Float32Array(S * L);
    for (let j = 0; j < S; j++) {
      rowsBuf.set(pr.cHat.subarray(j * g.rank, (j + 1) * g.rank), j * L);
      rowsBuf.set(pr.kPe.subarray(j * g.rope, (j + 1) * g.rope), j * L + g.rank);
    }
    cache = fusedCacheView(upload(gpu, rowsBuf), g);
  } else {
    // ĉ rows padded to R + 3, k_pe rows to Dr + 5 at offset 2: exercises the strides of the view
    const c = new Float32Array(S * (g.rank + 3)).fill(NaN);
    const pe = new Float32Array(S * (g.rope + 5)).fill(NaN);
    for (let j = 0; j < S; j++) {
      c.set(pr.cHat.subarray(j * g.rank, (j + 1) * g.rank), j * (g.rank + 3));
      pe.set(pr.kPe.subarray(j * g.rope, (j + 1) * g.rope), j * (g.rope + 5) + 2);
    }
    cache = { c: upload(gpu, c), cStride: g.rank + 3, pe: upload(gpu, pe), peStride: g.rope + 5, peOffset: 2 };
  }
  const scratch = createMlaScratch(gpu, g, T, Math.max(1, splits));
  const out = zeros(gpu, T * g.heads * g.v * 4);
  const kvB = { codes: upload(gpu, pr.kvBCodes), scales: upload(gpu, pr.kvBScale) };
  const q = upload(gpu, pr.q);
  await runPass(h, (pass) =>
    mlaAttend(h.k, pass, h.arena, {
      q, kvB, cache, out, tokens: T, startPos: pr.p0, geometry: g, scale: pr.scale, scratch, splits, tuning: variant ? { variant } : undefined,
    }),
  );
  return readF32(gpu, out, T * g.heads * g.v);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

// tiny (golden `tiny` head geometry), ragged (golden `ragged`: R = 72 is not a multiple of 128, Dv = 56 not of
// the workgroup size, 3 heads), K2 head geometry (R = 512, Dr = 64, kv_b rows cross 128-row blocks mid-head)
const TINY: MlaGeometry = { heads: 2, nope: 16, rope: 8, v: 16, rank: 32 };
const RAGGED: MlaGeometry = { heads: 3, nope: 40, rope: 24, v: 56, rank: 72 };
const K2: MlaGeometry = { heads: 3, nope: 128, rope: 64, v: 128, rank: 512 };
const ODD: MlaGeometry = { heads: 5, nope: 24, rope: 6, v: 20, rank: 50 }; // R % 4 == 2: ragged last code word

// Tolerance: f32 GPU vs f64 CPU on the same dequantised weights; only summation order and f32 rounding of
// the L ≤ 576-long dots, exp and the rescaling differ (~1e-6 relative); 2e-5 · max|ref| leaves 10x margin.
const TOL = 2e-5;

// both attention kernels run on every adapter (the default picks 'rows' on CPU adapters, 'tiled' elsewhere)
const VARIANTS = ['tiled', 'rows'] as const;

describe(`mla attention (${testAdapter()})`, () => {
  afterAll(() => printMeasured(`mla attention (${testAdapter()}), measured errors:`));

  it('debug case: tiny decode at p0 = 3, absorbed and naive CPU forms agree with the GPU', async () => {
    const pr = problem(7, TINY, 1, 3);
    const got = await gpuAttend(pr, 1);
    const abs = cpu(pr, 'absorbed');
    const naive = cpu(pr, 'naive');
    checkClose(got, abs, TOL, 'debug: gpu vs absorbed');
    checkClose(got, naive, TOL, 'debug: gpu vs naive');
  });

  it('absorb_q alone: q̃ = W_UK^T q_nope and the q_pe copy (ragged R, 128-row blocks across heads)', async () => {
    const gpu = await testGpu();
    const h = harness(gpu);
    for (const [g, T] of [[RAGGED, 5], [K2, 2], [ODD, 9]] as const) {
      const pr = problem(11, g, T, 0);
      const L = g.rank + g.rope;
      const qLat = zeros(gpu, T * g.heads * L * 4);
      const kvB = { codes: upload(gpu, pr.kvBCodes), scales: upload(gpu, pr.kvBScale) };
      const q = upload(gpu, pr.q);
      await runPass(h, (pass) => mlaAbsorbQ(h.k, pass, h.arena, { q, kvB, qLat, tokens: T, geometry: g }));
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
      checkClose(got, want, 1e-5, `absorb_q ${JSON.stringify(g)} T=${T}`);
    }
  });

  it('decode: split vs no split vs naive CPU, long cache', async () => {
    for (const [g, p0, seed] of [[RAGGED, 300, 21], [K2, 97, 22], [ODD, 130, 23]] as const) {
      const pr = problem(seed, g, 1, p0);
      const naive = cpu(pr, 'naive');
      for (const variant of VARIANTS) {
        const one = await gpuAttend(pr, 1, true, variant);
        checkClose(one, naive, TOL, `decode ${variant} no split ${JSON.stringify(g)} p0=${p0}`);
        // 2, 7, and what a GPU's rule picks (many splits of few keys: 9, 3 and 4 splits of 32-34 keys here)
        for (const splits of [2, 7, chooseSplits(1, p0 + 1, g, GPU_DECODE_SPLITS.maxSplits, GPU_DECODE_SPLITS)]) {
          const split = await gpuAttend(pr, splits, true, variant);
          checkClose(split, naive, TOL, `decode ${variant} ${splits} splits ${JSON.stringify(g)} p0=${p0}`);
          // splitting only reorders the softmax sums
          expectClose(split, one, { atol: 1e-5 * Math.max(1, maxAbs(one)), label: `${variant} split vs no split` });
        }
      }
    }
  });

  it('prefill chunks at p0 > 0 (causal over cached + own tokens), T·H not a multiple of the row block', async () => {
    for (const [g, T, p0, splits, fused] of [
      [RAGGED, 7, 5, 1, true],
      [TINY, 13, 0, 1, false],
      [ODD, 6, 17, 3, false],
      [K2, 4, 9, 2, true],
    ] as const) {
      const pr = problem(31 + T, g, T, p0);
      const abs = cpu(pr, 'absorbed');
      for (const variant of VARIANTS) {
        const got = await gpuAttend(pr, splits, fused, variant);
        checkClose(got, abs, TOL, `prefill ${variant} ${JSON.stringify(g)} T=${T} p0=${p0} splits=${splits}`);
      }
    }
  });
});

describe(`mla launchers reject bad shapes (${testAdapter()})`, () => {
  it('names the argument that is too small, and a split without scratch', async () => {
    const { ShapeError } = await import('../../src/errors.js');
    const gpu = await testGpu();
    const h = harness(gpu);
    const g = TINY;
    const small = zeros(gpu, 64);
    const big = zeros(gpu, 1 << 16);
    const enc = gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    const cache = fusedCacheView(big, g);
    expect(() => mlaAbsorbQ(h.k, pass, h.arena, { q: small, kvB: { codes: big, scales: big }, qLat: big, tokens: 4, geometry: g })).toThrow(/'q'/);
    expect(() => mlaAbsorbQ(h.k, pass, h.arena, { q: big, kvB: { codes: small, scales: big }, qLat: big, tokens: 1, geometry: g })).toThrow(ShapeError);
    expect(() =>
      mlaAttention(h.k, pass, h.arena, { qLat: big, cache, oLat: big, tokens: 1, startPos: 10, geometry: g, scale: 1, splits: 2 }),
    ).toThrow(/partO/);
    expect(() =>
      mlaAttention(h.k, pass, h.arena, { qLat: big, cache: fusedCacheView(small, g), oLat: big, tokens: 1, startPos: 10, geometry: g, scale: 1 }),
    ).toThrow(/cache\.c/);
    pass.end();
  });
});
