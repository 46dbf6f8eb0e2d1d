/**
 * The small dense kernels against their CPU counterparts: rmsnorm (reference.ts rmsNorm), embed_bf16
 * (reference.ts embed), rope (rope.ts applyRope on ropeTables), add, swiglu (reference.ts swiglu), argmax and
 * sample (engine/sampler.ts argmax / sampleToken). Seeded random sizes, one fixed small case each.
 *
 * Tolerances:
 *   rmsnorm: f32 sum of squares (≤ 1000 terms) vs f64, then one division / sqrt / two products: rtol 1e-5.
 *   embed, add: exact (a widening, one f32 add of the same operands) — compared with atol 0.
 *   rope: two f32 products and one add per output on the same f32 table values: atol 1e-6 + rtol 1e-6.
 *   swiglu: f32 exp (WGSL: 3 + 2·|x| ulp) and division: rtol 1e-5 + atol 1e-6.
 *   argmax/sample: exact token ids; sample cases avoid near-ties of the running sums (see sampler.ts).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { f32ArrayToBf16, bf16ArrayToF32 } from '../../src/format/fp8.js';
import { addInPlace, swiglu } from '../../src/gpu/ops/elementwise.js';
import { embedTokens } from '../../src/gpu/ops/embed.js';
import { uploadLinear } from '../../src/gpu/ops/linear.js';
import { rmsNorm } from '../../src/gpu/ops/norm.js';
import { ropeCopy, ropeInPlace, uploadRopeTable } from '../../src/gpu/ops/rope.js';
import { argmaxToken, sampleToken as gpuSample } from '../../src/gpu/ops/sample.js';
import { argmax, sampleToken, SamplingRng } from '../../src/engine/sampler.js';
import type { StepSampling } from '../../src/engine/types.js';
import { embed, rmsNorm as cpuRmsNorm, swiglu as cpuSwiglu } from '../../src/model/reference.js';
import { applyRope, ropeTables, type RopeConfig } from '../../src/model/rope.js';
import { expectClose, randInt, randn, rng, testAdapter, testGpu } from '../helpers/gpu.js';
import { f32Buffer, readF32, readU32, record, u32Buffer } from './ops-harness.js';

describe(`dense kernels (${testAdapter()})`, () => {
  afterAll(async () => (await testGpu()).destroy());

  it('rmsnorm: debug case [2, 3] and random strided rows (seeds 0-2)', async () => {
    const gpu = await testGpu();
    {
      const x = f32Buffer(gpu, new Float32Array([1, 2, 3, 0, 0, 4]));
      const w = f32Buffer(gpu, new Float32Array([1, 0.5, 2]));
      const y = f32Buffer(gpu, 6);
      await record(gpu, (r) => rmsNorm(r.k, r.pass, r.arena, { x, weight: w, y, n: 3, tokens: 2, eps: 1e-6 }));
      expectClose(await readF32(gpu, y, 6), cpuRmsNorm(Float64Array.from([1, 2, 3, 0, 0, 4]), [1, 0.5, 2], 1e-6), { rtol: 1e-6, label: 'debug' });
    }
    for (let seed = 0; seed < 3; seed++) {
      const rand = rng(seed);
      const n = randInt(rand, 1, 700);
      const T = randInt(rand, 1, 5);
      const xStride = n + randInt(rand, 0, 9);
      const yStride = n + randInt(rand, 0, 9);
      const xOffset = randInt(rand, 0, 5);
      const yOffset = randInt(rand, 0, 5);
      const rows = randn(rand, T * n, 3);
      const xs = new Float32Array(xOffset + T * xStride);
      for (let t = 0; t < T; t++) xs.set(rows.subarray(t * n, (t + 1) * n), xOffset + t * xStride);
      const wt = randn(rand, n);
      const x = f32Buffer(gpu, xs);
      const w = f32Buffer(gpu, wt);
      const y = f32Buffer(gpu, yOffset + T * yStride);
      await record(gpu, (r) => rmsNorm(r.k, r.pass, r.arena, { x, xOffset, xStride, weight: w, y, yOffset, yStride, n, tokens: T, eps: 1e-6 }));
      const ys = await readF32(gpu, y, yOffset + T * yStride);
      const got = new Float32Array(T * n);
      for (let t = 0; t < T; t++) got.set(ys.subarray(yOffset + t * yStride, yOffset + t * yStride + n), t * n);
      expectClose(got, cpuRmsNorm(Float64Array.from(rows), wt, 1e-6), { rtol: 1e-5, atol: 1e-6, label: `rmsnorm seed ${seed} n=${n} T=${T}` });
    }
  });

  it('embed_bf16: gathers rows exactly, odd D, repeated ids', async () => {
    const gpu = await testGpu();
    const rand = rng(3);
    const V = 37;
    const D = 29;
    const bits = f32ArrayToBf16(randn(rand, V * D));
    const table = uploadLinear(gpu, 'embed', { format: 'bf16', rows: V, cols: D, data: bits });
    const ids = [5, 0, 36, 5, 17];
    const tok = u32Buffer(gpu, Uint32Array.from(ids));
    const out = f32Buffer(gpu, ids.length * D);
    await record(gpu, (r) => embedTokens(r.k, r.pass, r.arena, { table, tokens: tok, count: ids.length, out }));
    const want = embed(ids, { rows: V, cols: D, data: bf16ArrayToF32(bits) });
    expectClose(await readF32(gpu, out, ids.length * D), want, { label: 'embed' });
  });

  it('rope: in place over heads and copy into a cache row, YaRN tables (seeds 0-1)', async () => {
    const gpu = await testGpu();
    const cfgs: RopeConfig[] = [
      { qk_rope_head_dim: 8, rope_theta: 10000, rope_scaling: null },
      {
        qk_rope_head_dim: 24,
        rope_theta: 50000,
        rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 64, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
      },
    ];
    for (const [seed, c] of cfgs.entries()) {
      const rand = rng(10 + seed);
      const Dr = c.qk_rope_head_dim;
      const ctx = 200;
      const table = uploadRopeTable(gpu, ropeTables(c, Array.from({ length: ctx }, (_, i) => i)), ctx);
      const T = randInt(rand, 1, 6);
      const pos0 = randInt(rand, 0, ctx - T);
      const H = 3;
      const Dn = 5;
      const Dq = Dn + Dr;
      const q = randn(rand, T * H * Dq);
      const qb = f32Buffer(gpu, q);
      const kvW = 7 + Dr; // [c (7) | k_pe (Dr)]
      const kv = randn(rand, T * kvW);
      const kvb = f32Buffer(gpu, kv);
      const cache = f32Buffer(gpu, ctx * kvW);
      await record(gpu, (r) => {
        ropeInPlace(r.k, r.pass, r.arena, { table, tokens: T, pos0, heads: H, x: { buf: qb, offset: Dn, tokenStride: H * Dq, headStride: Dq } });
        ropeCopy(r.k, r.pass, r.arena, {
          table, tokens: T, pos0, heads: 1,
          src: { buf: kvb, offset: 7, tokenStride: kvW, headStride: 0 },
          dst: { buf: cache, offset: pos0 * kvW + 7, tokenStride: kvW, headStride: 0 },
        });
      });
      const tabs = ropeTables(c, Array.from({ length: T }, (_, t) => pos0 + t));
      const wantQ = Float64Array.from(q);
      for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) applyRope(wantQ, (t * H + h) * Dq + Dn, tabs, t);
      expectClose(await readF32(gpu, qb, q.length), wantQ, { atol: 1e-6, rtol: 1e-6, label: `q rope seed ${seed}` });
      const gotC = await readF32(gpu, cache, T * kvW, pos0 * kvW);
      for (let t = 0; t < T; t++) {
        const kpe = Float64Array.from(kv.subarray(t * kvW + 7, (t + 1) * kvW));
        applyRope(kpe, 0, tabs, t);
        expectClose(gotC.subarray(t * kvW + 7, (t + 1) * kvW), kpe, { atol: 1e-6, rtol: 1e-6, label: `k_pe t=${t}` });
        expect(Array.from(gotC.subarray(t * kvW, t * kvW + 7))).toEqual(new Array(7).fill(0)); // c part untouched
      }
    }
  });

  it('add and swiglu on sizes not divisible by the workgroup', async () => {
    const gpu = await testGpu();
    const rand = rng(20);
    const n = 1000 + randInt(rand, 1, 255);
    const a = randn(rand, n + 3, 4);
    const b = randn(rand, n + 5, 4);
    const ya = f32Buffer(gpu, a);
    const xb = f32Buffer(gpu, b);
    const out = f32Buffer(gpu, n);
    await record(gpu, (r) => {
      swiglu(r.k, r.pass, r.arena, { gate: ya, gateOffset: 3, up: xb, upOffset: 5, out, n });
      addInPlace(r.k, r.pass, r.arena, { y: ya, yOffset: 3, x: xb, xOffset: 5, n });
    });
    const sw = cpuSwiglu(Float64Array.from(a.subarray(3)), Float64Array.from(b.subarray(5)));
    expectClose(await readF32(gpu, out, n), sw, { rtol: 1e-5, atol: 1e-6, label: 'swiglu' });
    const sum = Float32Array.from(a.subarray(3), (v, i) => Math.fround(v + b[5 + i]!));
    expectClose(await readF32(gpu, ya, n, 3), sum, { label: 'add' });
  });

  it('argmax: ties go to the lowest index; random vocabularies', async () => {
    const gpu = await testGpu();
    const cases: Float32Array[] = [new Float32Array([1, 3, 3, -1]), new Float32Array([-Infinity, -Infinity]), new Float32Array([2])];
    const rand = rng(30);
    for (let i = 0; i < 3; i++) cases.push(randn(rand, randInt(rand, 1, 5000)));
    const tied = randn(rand, 3000);
    tied[2999] = 10;
    tied[1234] = 10;
    cases.push(tied);
    const out = u32Buffer(gpu, new Uint32Array(cases.length));
    const bufs = cases.map((c) => f32Buffer(gpu, c));
    await record(gpu, (r) => cases.forEach((c, i) => argmaxToken(r.k, r.pass, r.arena, { logits: bufs[i]!, vocab: c.length, out, outIndex: i })));
    expect(Array.from(await readU32(gpu, out, cases.length))).toEqual(cases.map((c) => argmax(c)));
  });

  it('sample: matches sampler.ts sampleToken for temperature / top-k / top-p / uniforms (seeded)', async () => {
    const gpu = await testGpu();
    const rand = rng(40);
    const uni = new SamplingRng(7);
    type Case = { logits: Float32Array; s: StepSampling };
    const cases: Case[] = [];
    const settings: Array<Omit<StepSampling, 'uniform'>> = [
      { temperature: 0, topK: 0, topP: 1 },
      { temperature: 1, topK: 0, topP: 1 },
      { temperature: 0.7, topK: 5, topP: 1 },
      { temperature: 1.3, topK: 0, topP: 0.8 },
      { temperature: 1, topK: 40, topP: 0.9 },
      { temperature: 2, topK: 1, topP: 1 },
      { temperature: 1, topK: 100000, topP: 0.5 },
    ];
    for (const V of [1, 7, 300, 2049]) {
      for (const s of settings) {
        for (let rep = 0; rep < 3; rep++) {
          const logits = randn(rand, V, 2);
          if (V > 10 && rep === 2) logits.fill(logits[3]!, 5, 9); // exact ties (lower index first in the order)
          cases.push({ logits, s: { ...s, uniform: uni.nextUniform() } });
        }
      }
    }
    const out = u32Buffer(gpu, new Uint32Array(cases.length));
    const maxV = Math.max(...cases.map((c) => c.logits.length));
    const probs = f32Buffer(gpu, maxV);
    const bufs = cases.map((c) => f32Buffer(gpu, c.logits));
    await record(gpu, (r) =>
      cases.forEach((c, i) =>
        gpuSample(r.k, r.pass, r.arena, { logits: bufs[i]!, vocab: c.logits.length, out, outIndex: i, probs, ...c.s }),
      ),
    );
    const got = await readU32(gpu, out, cases.length);
    const bad: string[] = [];
    cases.forEach((c, i) => {
      const want = sampleToken(c.logits, c.s);
      if (got[i] !== want) bad.push(`case ${i} V=${c.logits.length} ${JSON.stringify(c.s)}: got ${got[i]} want ${want}`);
    });
    expect(bad).toEqual([]);
  });
});
