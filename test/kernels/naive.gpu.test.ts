/**
 * The naive twins (shaders/*_naive.wgsl, launched by bench/naive.ts) against the CPU reference. They are the
 * baselines of `webmoe bench`, so they must be right: a fast wrong baseline would make every speedup a lie.
 * Shapes are seeded random and include awkward sizes (1, not a multiple of 4, 16, 64 or 128); the seed is in
 * each test's name. Tolerances: the GPU decodes the same FP8 codes exactly and accumulates in f32 while the
 * reference accumulates in f64, so only the f32 rounding of the sum differs: |err| <= 1e-4 + 1e-4·|ref| is
 * ~100x the expected f32 error for these lengths (<= 4k terms of magnitude ~1).
 */
import { describe, expect, it } from 'vitest';
import { createBuffer, readBuffer, uploadBuffer } from '../../src/gpu/buffers.js';
import { Kernels } from '../../src/gpu/kernels.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { dequantizeFp8Block, f32ArrayToBf16, bf16ArrayToF32, quantizeFp8Block } from '../../src/format/fp8.js';
import { packFp8Rows, packFp8Stack } from '../../src/gpu/ops/fp8-layout.js';
import { attentionAbsorbed, ffn, linear, routerLogits } from '../../src/model/reference.js';
import type { Matrix } from '../../src/model/cpu-weights.js';
import { moeRoute } from '../../src/model/router.js';
import { naiveExperts, naiveFp8Gemm, naiveFp8Gemv, naiveMlaDecode, naiveRouter, type EncodedOp } from '../../bench/naive.js';
import { expectClose, randInt, randn, rng, testAdapter, testGpu } from '../helpers/gpu.js';

const TOL = { atol: 1e-4, rtol: 1e-4 };

async function run(gpu: GpuContext, op: EncodedOp): Promise<void> {
  gpu.device.pushErrorScope('validation');
  const enc = gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  op.encode(pass);
  pass.end();
  gpu.device.queue.submit([enc.finish()]);
  await gpu.device.queue.onSubmittedWorkDone();
  const err = await gpu.device.popErrorScope();
  if (err) throw new Error(err.message);
  gpu.check();
}

async function readF32(gpu: GpuContext, buf: GPUBuffer, n: number): Promise<Float32Array> {
  return new Float32Array(await readBuffer(gpu, buf, 0, n * 4));
}

function randomFp8(rand: () => number, rows: number, cols: number) {
  const q = quantizeFp8Block(randn(rand, rows * cols), rows, cols);
  return { ...q, w: { rows, cols, data: dequantizeFp8Block(q.data, q.scale, rows, cols) } as Matrix };
}

function f64(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a);
}

describe(`naive twins vs the CPU reference (${testAdapter()})`, () => {
  const gemvShapes: Array<[number, number]> = [
    [1, 1],
    [5, 16],
    [64, 128],
    [127, 150],
    [200, 257],
    [300, 1000],
  ];
  for (const [i, [rows, cols]] of gemvShapes.entries()) {
    it(`fp8_gemv_naive ${rows}x${cols} (seed ${i})`, async () => {
      const gpu = await testGpu();
      const rand = rng(i);
      const m = randomFp8(rand, rows, cols);
      const x = randn(rand, cols);
      const y = createBuffer(gpu, rows * 4, 'y');
      const b = { w: uploadBuffer(gpu, packFp8Rows(m).bytes, 'w'), scale: uploadBuffer(gpu, m.scale, 's'), x: uploadBuffer(gpu, x, 'x'), y };
      await run(gpu, naiveFp8Gemv(gpu, new Kernels(gpu), b, rows, cols));
      expectClose(await readF32(gpu, y, rows), linear(f64(x), m.w), { ...TOL, label: 'y' });
    });
  }

  for (let seed = 10; seed < 14; seed++) {
    it(`fp8_gemm_naive random shape (seed ${seed})`, async () => {
      const gpu = await testGpu();
      const rand = rng(seed);
      const rows = randInt(rand, 1, 260);
      const cols = randInt(rand, 1, 300);
      const T = randInt(rand, 1, 9);
      const m = randomFp8(rand, rows, cols);
      const x = randn(rand, T * cols);
      const y = createBuffer(gpu, T * rows * 4, 'y');
      const b = { w: uploadBuffer(gpu, packFp8Rows(m).bytes, 'w'), scale: uploadBuffer(gpu, m.scale, 's'), x: uploadBuffer(gpu, x, 'x'), y };
      await run(gpu, naiveFp8Gemm(gpu, new Kernels(gpu), b, rows, cols, T));
      expectClose(await readF32(gpu, y, T * rows), linear(f64(x), m.w), { ...TOL, label: `Y [${T}, ${rows}] from [${cols}]` });
    });
  }

  const mlaCases = [
    { heads: 1, tokens: 1, nope: 8, rope: 4, v: 8, rank: 16 },
    { heads: 4, tokens: 37, nope: 16, rope: 8, v: 12, rank: 64 },
    { heads: 3, tokens: 300, nope: 32, rope: 16, v: 32, rank: 72 },
  ];
  for (const [i, s] of mlaCases.entries()) {
    it(`mla_{scores,softmax,combine}_naive H${s.heads} S${s.tokens} Rkv${s.rank} (seed ${20 + i})`, async () => {
      const gpu = await testGpu();
      const rand = rng(20 + i);
      const { heads: H, tokens: S, rope: Dr, nope: Dn, v: Dv, rank: R } = s;
      const shape = { ...s, scale: 1 / Math.sqrt(Dn + Dr) };
      const qNope = f64(randn(rand, H * Dn));
      const qPe = f64(randn(rand, H * Dr));
      const cHat = f64(randn(rand, S * R));
      const kPe = f64(randn(rand, S * Dr));
      const kvB: Matrix = { rows: H * (Dn + Dv), cols: R, data: randn(rand, H * (Dn + Dv) * R, 0.2) };
      // the absorption (q̃ = W_UKᵀ q_nope) and the W_UV step happen outside the kernel; done here on the CPU
      const W = R + Dr;
      const q = new Float32Array(H * W);
      for (let h = 0; h < H; h++) {
        for (let r = 0; r < R; r++) {
          let acc = 0;
          for (let d = 0; d < Dn; d++) acc += kvB.data[(h * (Dn + Dv) + d) * R + r]! * qNope[h * Dn + d]!;
          q[h * W + r] = acc;
        }
        for (let d = 0; d < Dr; d++) q[h * W + R + d] = qPe[h * Dr + d]!;
      }
      const cache = new Float32Array(S * W);
      for (let t = 0; t < S; t++) {
        cache.set(cHat.subarray(t * R, (t + 1) * R), t * W);
        cache.set(kPe.subarray(t * Dr, (t + 1) * Dr), t * W + R);
      }
      const out = createBuffer(gpu, H * R * 4, 'out');
      const b = { q: uploadBuffer(gpu, q, 'q'), cache: uploadBuffer(gpu, cache, 'cache'), p: createBuffer(gpu, H * S * 4, 'p'), out };
      await run(gpu, naiveMlaDecode(gpu, new Kernels(gpu), b, { heads: H, tokens: S, rank: R, rope: Dr, scale: shape.scale }));
      const latent = await readF32(gpu, out, H * R);
      const got = new Float64Array(H * Dv);
      for (let h = 0; h < H; h++) {
        for (let d = 0; d < Dv; d++) {
          let acc = 0;
          for (let r = 0; r < R; r++) acc += kvB.data[(h * (Dn + Dv) + Dn + d) * R + r]! * latent[h * R + r]!;
          got[h * Dv + d] = acc;
        }
      }
      const kPos = Array.from({ length: S }, (_, j) => j);
      const want = attentionAbsorbed(qNope, qPe, cHat, kPe, kvB, [S - 1], kPos, shape);
      expectClose(got, want, { ...TOL, label: 'attention output (after W_UV)' });
    });
  }

  const routerCases = [
    { tokens: 1, hidden: 64, experts: 8, topk: 2, groups: 1, topkGroup: 1, norm: true, scaling: 1 },
    { tokens: 5, hidden: 256, experts: 32, topk: 8, groups: 8, topkGroup: 4, norm: true, scaling: 2.5 },
    { tokens: 3, hidden: 200, experts: 384, topk: 8, groups: 1, topkGroup: 1, norm: true, scaling: 2.827 },
    { tokens: 2, hidden: 33, experts: 64, topk: 6, groups: 4, topkGroup: 2, norm: false, scaling: 1.5 },
  ];
  for (const [i, s] of routerCases.entries()) {
    it(`moe_router_{logits,select}_naive E${s.experts} K${s.topk} G${s.groups}/${s.topkGroup} (seed ${30 + i})`, async () => {
      const gpu = await testGpu();
      const rand = rng(30 + i);
      const { tokens: T, hidden: D, experts: E, topk: K } = s;
      const gateBits = f32ArrayToBf16(randn(rand, E * D, 0.3));
      const gate: Matrix = { rows: E, cols: D, data: bf16ArrayToF32(gateBits) };
      const bias = randn(rand, E, 0.1);
      const x = randn(rand, T * D);
      const b = {
        x: uploadBuffer(gpu, x, 'x'),
        gate: uploadBuffer(gpu, gateBits, 'gate'),
        bias: uploadBuffer(gpu, bias, 'bias'),
        logits: createBuffer(gpu, T * E * 4, 'logits'),
        ids: createBuffer(gpu, T * K * 4, 'ids'),
        weights: createBuffer(gpu, T * K * 4, 'weights'),
      };
      await run(gpu, naiveRouter(gpu, new Kernels(gpu), b, s));
      const logits = await readF32(gpu, b.logits, T * E);
      const ids = new Uint32Array(await readBuffer(gpu, b.ids, 0, T * K * 4));
      const weights = await readF32(gpu, b.weights, T * K);
      const cfg = { n_routed_experts: E, num_experts_per_tok: K, n_group: s.groups, topk_group: s.topkGroup, norm_topk_prob: s.norm, routed_scaling_factor: s.scaling };
      for (let t = 0; t < T; t++) {
        expectClose(logits.subarray(t * E, (t + 1) * E), routerLogits(f64(x), t * D, gate), { ...TOL, label: `logits of token ${t}` });
        // selection is checked on the GPU's own logits: an f32 vs f64 near-tie is not the router's fault
        const want = moeRoute(logits.subarray(t * E, (t + 1) * E), bias, cfg);
        expect(Array.from(ids.subarray(t * K, (t + 1) * K)), `ids of token ${t}`).toEqual(Array.from(want.ids));
        expectClose(weights.subarray(t * K, (t + 1) * K), want.weights, { atol: 1e-5, rtol: 1e-5, label: `weights of token ${t}` });
      }
    });
  }

  const expertCases = [
    { hidden: 64, inter: 32, experts: 4, topk: 2, shardSize: 4 },
    { hidden: 200, inter: 72, experts: 9, topk: 3, shardSize: 4 }, // ragged dims, 3 shards
    { hidden: 256, inter: 130, experts: 16, topk: 8, shardSize: 16 },
  ];
  for (const [i, s] of expertCases.entries()) {
    it(`moe_{gateup,down}_id_naive D${s.hidden} F${s.inter} E${s.experts} K${s.topk} shards of ${s.shardSize} (seed ${40 + i})`, async () => {
      const gpu = await testGpu();
      const rand = rng(40 + i);
      const { hidden: D, inter: F, experts: E, topk: K } = s;
      const experts = Array.from({ length: E }, () => ({ gate: randomFp8(rand, F, D), up: randomFp8(rand, F, D), down: randomFp8(rand, D, F) }));
      const ids = Array.from({ length: E }, (_, e) => e).sort(() => rand() - 0.5).slice(0, K);
      const weights = Float32Array.from(ids, () => rand());
      const x = randn(rand, D);
      const shards = [];
      for (let first = 0; first < E; first += s.shardSize) {
        const members = experts.slice(first, first + s.shardSize);
        const gu = packFp8Stack(members.flatMap((e) => [e.gate, e.up]));
        const dn = packFp8Stack(members.map((e) => e.down));
        shards.push({
          first,
          count: members.length,
          gu: uploadBuffer(gpu, gu.codes, 'gu'),
          guScale: uploadBuffer(gpu, gu.scales, 'gu scales'),
          dn: uploadBuffer(gpu, dn.codes, 'dn'),
          dnScale: uploadBuffer(gpu, dn.scales, 'dn scales'),
        });
      }
      const out = createBuffer(gpu, D * 4, 'out');
      const b = {
        x: uploadBuffer(gpu, x, 'x'),
        ids: uploadBuffer(gpu, Uint32Array.from(ids), 'ids'),
        weights: uploadBuffer(gpu, weights, 'weights'),
        h: createBuffer(gpu, K * F * 4, 'h'),
        out,
        shards,
      };
      await run(gpu, naiveExperts(gpu, new Kernels(gpu), b, { hidden: D, inter: F, topk: K }));
      const want = new Float64Array(D);
      ids.forEach((e, k) => {
        const ex = experts[e]!;
        const y = ffn(f64(x), { gate: ex.gate.w, up: ex.up.w, down: ex.down.w });
        for (let d = 0; d < D; d++) want[d] += weights[k]! * y[d]!;
      });
      expectClose(await readF32(gpu, out, D), want, { atol: 1e-3, rtol: 1e-3, label: 'routed expert output' }); // two chained f32 GEMVs + silu: 10x the GEMV tolerance
    });
  }
});
