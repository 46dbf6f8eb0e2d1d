/**
 * What `webmoe bench kernels` measures: each BenchShape uploads one set of seeded data and returns the
 * variants (naive twin, optimised kernel) to time on it, so both run on the same buffers.
 * Shapes go from the `small` toy (golden fixture) to Kimi-K2 widths (shared/configs/kimi-k2.json):
 *   D 7168 hidden, F 2048 expert width, Rq 1536, R 512 + Dr 64 latent, E 384 experts, K 8 per token.
 * tier 'default' runs by default (~minutes on a 2-core CPU adapter); 'full' only with --full.
 *
 * Byte counts are the compulsory traffic of one call: every weight code and scale once, inputs read once,
 * outputs written once (scratch and re-reads not counted), so GB/s is comparable across implementations.
 * FLOP counts are 2 per multiply-add of the math (dequantisation, softmax and activations not counted).
 * Browser-safe.
 */
import { createBuffer, UniformArena } from '../src/gpu/buffers.js';
import type { GpuContext } from '../src/gpu/device.js';
import { expertShards, fp8StackLayout, int4StackLayout } from '../src/gpu/ops/fp8-layout.js';
import { chooseSplits, createMlaScratch, fusedCacheView, mlaAttention, type MlaAttentionTuning, type MlaScratch } from '../src/gpu/ops/attention.js';
import { createMoeScratch, moeExpertsDecode, moeExpertsPrefill, moeRouter, type ExpertShardBuffers, type MoeSubgroupTuning } from '../src/gpu/ops/moe.js';
import { randomBf16Buffer, randomF32Buffer, randomFp8Stack, randomInt4Stack, rng, zeroBuffer } from './data.js';
import { naiveExperts, naiveFp8Gemm, naiveFp8Gemv, naiveMlaDecode, naiveRouter, type EncodedOp, type ExpertShard } from './naive.js';
import { optimisedFp8Gemm, optimisedFp8Gemv, optimisedRouterLogits } from './optimised.js';
import { arenaOp, chain, pipelinesOf, requireKernels, type BenchVariant, type CaseContext } from './op.js';
import { chooseMoeDecode, decodeSplitRule, decodeVariantFor, MOE_SUBGROUP_TUNING } from '../src/gpu/plan.js';
import { adapterClass } from '../src/gpu/ops/adapter-class.js';

export type { BenchVariant, CaseContext } from './op.js';

/** Buffers of one shape, destroyed together after its variants ran. */
export class BufferPool {
  private readonly buffers: GPUBuffer[] = [];
  constructor(readonly gpu: GpuContext) {}
  track<T extends GPUBuffer>(b: T): T {
    this.buffers.push(b);
    return b;
  }
  destroy(): void {
    for (const b of this.buffers.splice(0)) b.destroy();
  }
}

export interface BenchShape {
  kernel: string;
  shape: string;
  dims: Record<string, number>;
  bytes: number;
  flops: number;
  tier: 'default' | 'full';
  /** Uploads the data and returns the variants to time on it. */
  prepare(ctx: CaseContext, pool: BufferPool): BenchVariant[];
}

const KIMI = { D: 7168, F: 2048, Rq: 1536, R: 512, Dr: 64, E: 384, K: 8, H: 64, Dn: 128, Dv: 128 };
const SMALL = { D: 256, F: 128, Rq: 128, R: 64, Dr: 16, E: 32, K: 8, H: 4, G: 8, TG: 4 };

function fp8Bytes(rows: number, cols: number): number {
  return rows * cols + Math.ceil(rows / 128) * Math.ceil(cols / 128) * 4;
}

/** Bytes of an INT4 [rows, cols] weight as the GPU reads it: packed codes, one f32 scale per row and 32 columns. */
function int4Bytes(rows: number, cols: number): number {
  return rows * Math.ceil(cols / 8) * 4 + rows * Math.ceil(cols / 32) * 4;
}

// ------------------------------------------------------------------------------------------------------------
// Dense FP8 GEMV (decode) and GEMM (prefill)

function gemvShape(shape: string, rows: number, cols: number, tier: BenchShape['tier']): BenchShape {
  return {
    kernel: 'fp8_gemv',
    shape: `${shape} ${cols}->${rows}`,
    dims: { rows, cols },
    bytes: fp8Bytes(rows, cols) + 4 * (rows + cols),
    flops: 2 * rows * cols,
    tier,
    prepare({ gpu, kernels }, pool) {
      const w = randomFp8Stack(gpu, 'w', 1, rows, cols, rows * 31 + cols);
      pool.track(w.codes);
      pool.track(w.scales);
      const b = { w: w.codes, scale: w.scales, x: pool.track(randomF32Buffer(gpu, 'x', cols, 1)), y: pool.track(zeroBuffer(gpu, 'y', rows * 4)) };
      return [
        { variant: 'naive', impl: 'fp8_gemv_naive', build: () => naiveFp8Gemv(gpu, kernels, b, rows, cols) },
        ...optimisedFp8Gemv({ gpu, kernels }, b, rows, cols),
      ];
    },
  };
}

function gemmShape(shape: string, rows: number, cols: number, tokens: number, tier: BenchShape['tier']): BenchShape {
  return {
    kernel: 'fp8_gemm',
    shape: `${shape} ${cols}->${rows} x ${tokens} tokens`,
    dims: { rows, cols, tokens },
    bytes: fp8Bytes(rows, cols) + 4 * tokens * (rows + cols),
    flops: 2 * tokens * rows * cols,
    tier,
    prepare({ gpu, kernels }, pool) {
      const w = randomFp8Stack(gpu, 'w', 1, rows, cols, rows * 17 + cols);
      pool.track(w.codes);
      pool.track(w.scales);
      const b = { w: w.codes, scale: w.scales, x: pool.track(randomF32Buffer(gpu, 'x', tokens * cols, 2)), y: pool.track(zeroBuffer(gpu, 'y', tokens * rows * 4)) };
      return [
        { variant: 'naive', impl: 'fp8_gemm_naive', build: () => naiveFp8Gemm(gpu, kernels, b, rows, cols, tokens) },
        ...optimisedFp8Gemm({ gpu, kernels }, b, rows, cols, tokens),
      ];
    },
  };
}

// ------------------------------------------------------------------------------------------------------------
// MLA decode attention over the latent cache (absorbed form, one token, H heads)

function mlaShape(shape: string, heads: number, rank: number, rope: number, tokens: number, tier: BenchShape['tier']): BenchShape {
  const W = rank + rope;
  return {
    kernel: 'mla_decode',
    shape: `${shape} H${heads} ${rank}+${rope} over ${tokens} tokens`,
    dims: { heads, rank, rope, tokens },
    bytes: 4 * (tokens * W + heads * W + heads * rank),
    flops: 2 * heads * tokens * (W + rank),
    tier,
    prepare({ gpu, kernels }, pool) {
      let mlaScratch: MlaScratch | undefined;
      const scale = 1 / Math.sqrt(192);
      const q = pool.track(randomF32Buffer(gpu, 'q', heads * W, 3, 0.1));
      const cache = pool.track(randomF32Buffer(gpu, 'cache', tokens * W, 4));
      const out = pool.track(zeroBuffer(gpu, 'out', heads * rank * 4));
      const geometry = { heads, nope: 128, rope, v: 128, rank };
      return [
        {
          variant: 'naive',
          impl: 'mla_scores_naive + mla_softmax_naive + mla_combine_naive',
          build: () => naiveMlaDecode(gpu, kernels, { q, cache, out, p: pool.track(zeroBuffer(gpu, 'p', heads * tokens * 4)) }, { heads, tokens, rank, rope, scale }),
        },
        ...(['tiled', 'rows'] as const).map((variant): BenchVariant => {
          const kernel = variant === 'rows' ? 'mla_attention_rows' : 'mla_attention';
          const rule = decodeSplitRule(gpu);
          const splits = chooseSplits(1, tokens, geometry, rule.maxSplits, rule);
          const record = (pass: GPUComputePassEncoder, arena: UniformArena, tuning?: MlaAttentionTuning) =>
            mlaAttention(kernels, pass, arena, {
              qLat: q, cache: fusedCacheView(cache, geometry), oLat: out, tokens: 1, startPos: tokens - 1, geometry, scale,
              splits, partO: scratch.partO ?? undefined, partML: scratch.partML ?? undefined, tuning,
            });
          // the engine's decode scratch (plan.ts decodeSplitRule); created once per shape
          const scratch = mlaScratch ?? (mlaScratch = createMlaScratch(gpu, geometry, 1, rule.maxSplits));
          for (const b of [scratch.qLat, scratch.oLat, scratch.partO, scratch.partML]) if (b) pool.track(b);
          const probe = new UniformArena(gpu, 1 << 16, 'bench probe');
          pool.track(probe.buffer);
          let engineDefault = false;
          try {
            engineDefault = kernels.available(kernel) && pipelinesOf((p) => record(p, probe)).includes(kernel);
          } catch {
            // the launcher refused the shape: the build below reports why
          }
          return {
            variant: 'optimised',
            impl: `${kernel}${splits > 1 ? ` + mla_decode_reduce (${splits} splits)` : ''}`,
            engineDefault,
            build: () => {
              requireKernels({ gpu, kernels }, kernel, 'mla_decode_reduce');
              return arenaOp(gpu, splits > 1 ? 2 : 1, (pass, arena) => record(pass, arena, { variant }));
            },
          };
        }),
      ];
    },
  };
}

// ------------------------------------------------------------------------------------------------------------
// Router: logits (BF16 gate GEMV) + noaux_tc selection

function routerShape(shape: string, r: { tokens: number; hidden: number; experts: number; topk: number; groups: number; topkGroup: number; scaling: number }, tier: BenchShape['tier']): BenchShape {
  const { tokens: T, hidden: D, experts: E, topk: K } = r;
  return {
    kernel: 'moe_router',
    shape: `${shape} E${E} K${K} G${r.groups}/${r.topkGroup} D${D} x ${T} token${T > 1 ? 's' : ''}`,
    dims: { tokens: T, hidden: D, experts: E, topk: K, groups: r.groups },
    bytes: 2 * E * D + 4 * (T * D + E + 2 * T * K),
    flops: 2 * T * E * D,
    tier,
    prepare({ gpu, kernels }, pool) {
      const b = {
        x: pool.track(randomF32Buffer(gpu, 'x', T * D, 5)),
        gate: pool.track(randomBf16Buffer(gpu, 'gate', E * D, 6)),
        bias: pool.track(randomF32Buffer(gpu, 'bias', E, 7, 0.01)),
        logits: pool.track(zeroBuffer(gpu, 'logits', T * E * 4)),
        ids: pool.track(zeroBuffer(gpu, 'ids', T * K * 4)),
        weights: pool.track(zeroBuffer(gpu, 'weights', T * K * 4)),
      };
      const shapeArgs = { tokens: T, hidden: D, experts: E, topk: K, groups: r.groups, topkGroup: r.topkGroup, norm: true, scaling: r.scaling };
      return [
        { variant: 'naive', impl: 'moe_router_logits_naive + moe_router_select_naive', build: () => naiveRouter(gpu, kernels, b, shapeArgs) },
        ...optimisedRouterLogits({ gpu, kernels }, b, D, E, T).map((v) => ({
          ...v,
          impl: `${v.impl} + moe_router`,
          build: () => {
            requireKernels({ gpu, kernels }, 'moe_router');
            const logits = v.build();
            const select = arenaOp(gpu, 1, (pass, arena) =>
              moeRouter(kernels, pass, arena, {
                logits: b.logits, bias: b.bias, ids: b.ids, weights: b.weights, tokens: T, experts: E, topK: K,
                groups: r.groups, topkGroups: r.topkGroup, normTopkProb: true, scaling: r.scaling,
              }),
            );
            return chain(logits, select);
          },
        })),
      ];
    },
  };
}

// ------------------------------------------------------------------------------------------------------------
// Routed experts for one decode token (SwiGLU, ids on the GPU), FP8 and the INT4 instances of the same kernel
// families (Kimi K2-Thinking / K2.5 routed experts) on the same shape, timed interleaved

/** moe_*_id_subgroup constants the bench sweeps on GPUs, the engine's first: (threads, gate/up rows, down rows per workgroup). */
const SUBGROUP_SWEEP: MoeSubgroupTuning[] = [
  MOE_SUBGROUP_TUNING,
  { wg: 64, rpwGateUp: 2, rpwDown: 2 },
  { wg: 128, rpwGateUp: 4, rpwDown: 4 },
  { wg: 256, rpwGateUp: 8, rpwDown: 8 },
  { wg: 256, rpwGateUp: 16, rpwDown: 8 },
];

function sameTuning(a: MoeSubgroupTuning, b: MoeSubgroupTuning): boolean {
  return a.wg === b.wg && a.rpwGateUp === b.rpwGateUp && a.rpwDown === b.rpwDown;
}

function expertShape(shape: string, D: number, F: number, E: number, K: number, tier: BenchShape['tier']): BenchShape {
  return {
    kernel: 'moe_experts',
    shape: `${shape} D${D} F${F} K${K} of ${E}`,
    dims: { hidden: D, inter: F, experts: E, topk: K },
    bytes: K * (2 * fp8Bytes(F, D) + fp8Bytes(D, F)) + 4 * (2 * D + 2 * K),
    flops: 2 * K * 3 * F * D,
    tier,
    prepare({ gpu, kernels }, pool) {
      const gu = fp8StackLayout(2, F, D);
      const shards = expertShards(E, gu.codeBytes, gpu.limits.maxStorageBufferBindingSize, 'bench experts');
      const rand = rng(E * 7 + K);
      const ids = Array.from({ length: E }, (_, e) => e).sort(() => rand() - 0.5).slice(0, K);
      const stacks = shards.map((s, i) => {
        const g = randomFp8Stack(gpu, `gate_up ${i}`, 2 * s.count, F, D, 100 + i);
        const d = randomFp8Stack(gpu, `down ${i}`, s.count, D, F, 200 + i);
        [g.codes, g.scales, d.codes, d.scales].forEach((bf) => pool.track(bf));
        return { ...s, g, d };
      });
      const x = pool.track(randomF32Buffer(gpu, 'x', D, 8));
      const idsBuf = pool.track(createBuffer(gpu, K * 4, 'ids'));
      gpu.device.queue.writeBuffer(idsBuf, 0, Uint32Array.from(ids));
      const weights = pool.track(randomF32Buffer(gpu, 'weights', K, 9, 0.5));
      const out = pool.track(zeroBuffer(gpu, 'out', D * 4));
      const naiveShards: ExpertShard[] = stacks.map((s) => ({ first: s.first, count: s.count, gu: s.g.codes, guScale: s.g.scales, dn: s.d.codes, dnScale: s.d.scales }));
      const optShards: ExpertShardBuffers[] = stacks.map((s) => ({
        first: s.first, count: s.count, gateUp: { codes: s.g.codes, scales: s.g.scales }, down: { codes: s.d.codes, scales: s.d.scales },
      }));
      // the same experts in INT4 (own random data; the kernels' work does not depend on the values)
      const gu4 = int4StackLayout(2, F, D);
      const shards4 = expertShards(E, gu4.codeBytes, gpu.limits.maxStorageBufferBindingSize, 'bench int4 experts');
      const int4Shards: ExpertShardBuffers[] = shards4.map((s, i) => {
        const g = randomInt4Stack(gpu, `int4 gate_up ${i}`, 2 * s.count, F, D, 500 + i);
        const d = randomInt4Stack(gpu, `int4 down ${i}`, s.count, D, F, 600 + i);
        [g.codes, g.scales, d.codes, d.scales].forEach((bf) => pool.track(bf));
        return { first: s.first, count: s.count, gateUp: { format: 'int4', ...g }, down: { format: 'int4', ...d } };
      });
      const int4Default = decodeVariantFor(kernels, 'int4', D);
      // the subgroup kernels at the plan's constants; on GPUs a sweep of them (MOE_SUBGROUP_TUNING is its first entry)
      const sweep = adapterClass(gpu) === 'hardware' ? SUBGROUP_SWEEP : [MOE_SUBGROUP_TUNING];
      const fp8Variants: Array<{ variant: 'f32' | 'wide' | 'subgroup'; subgroup?: MoeSubgroupTuning }> = [
        { variant: 'f32' }, { variant: 'wide' }, ...sweep.map((subgroup) => ({ variant: 'subgroup' as const, subgroup })),
      ];
      const int4Variants = (['f32', 'wide'] as const).map((variant): BenchVariant => {
        const names = variant === 'f32' ? ['moe_gateup_id_int4', 'moe_down_id_int4'] : ['moe_gateup_id_wide_int4', 'moe_down_id_wide_int4'];
        return {
          variant: 'optimised',
          impl: names.join(' + '),
          engineDefault: variant === int4Default,
          format: 'int4',
          bytes: K * (2 * int4Bytes(F, D) + int4Bytes(D, F)) + 4 * (2 * D + 2 * K),
          build: () => {
            requireKernels({ gpu, kernels }, ...names);
            const geometry = { hidden: D, experts: E, topK: K, inter: F, sharedInter: 0 };
            const scratch = createMoeScratch(gpu, geometry, 1, false);
            pool.track(scratch.hidden);
            return arenaOp(gpu, 2 * shards4.length, (pass, arena) =>
              moeExpertsDecode(kernels, pass, arena, {
                x, ids: idsBuf, weights, out, accumulate: false, tokens: 1, geometry, w: { shards: int4Shards, shared: null }, scratch, variant,
              }),
            );
          },
        };
      });
      return [
        {
          variant: 'naive',
          impl: 'moe_gateup_id_naive + moe_down_id_naive',
          build: () => naiveExperts(gpu, kernels, { x, ids: idsBuf, weights, out, h: pool.track(zeroBuffer(gpu, 'h', K * F * 4)), shards: naiveShards }, { hidden: D, inter: F, topk: K }),
        },
        ...fp8Variants.map(({ variant, subgroup }): BenchVariant => {
          const names = variant === 'f32' ? ['moe_gateup_id', 'moe_down_id'] : [`moe_gateup_id_${variant}`, `moe_down_id_${variant}`];
          const tuned = subgroup ? ` (wg ${subgroup.wg}, rpw ${subgroup.rpwGateUp}/${subgroup.rpwDown})` : '';
          return {
            variant: 'optimised',
            impl: names.join(' + ') + tuned,
            engineDefault: variant === chooseMoeDecode(kernels, D) && (!subgroup || sameTuning(subgroup, MOE_SUBGROUP_TUNING)),
            format: 'fp8',
            build: () => {
              requireKernels({ gpu, kernels }, ...names);
              const geometry = { hidden: D, experts: E, topK: K, inter: F, sharedInter: 0 };
              const scratch = createMoeScratch(gpu, geometry, 1, false);
              pool.track(scratch.hidden);
              return arenaOp(gpu, 2 * shards.length, (pass, arena) =>
                moeExpertsDecode(kernels, pass, arena, {
                  x, ids: idsBuf, weights, out, accumulate: false, tokens: 1, geometry, w: { shards: optShards, shared: null }, scratch, variant, subgroup,
                }),
              );
            },
          };
        }),
        ...int4Variants,
      ];
    },
  };
}

// ------------------------------------------------------------------------------------------------------------
// Routed experts for a prefill chunk: tokens grouped by expert (align + grouped GEMMs + combine) against the
// per-token decode path over the same tokens. Bytes: each selected expert's weights once + activations.

export function expertPrefillShape(shape: string, D: number, F: number, E: number, K: number, T: number, tier: BenchShape['tier']): BenchShape {
  const rand = rng(E * 13 + K * 7 + T);
  const ids = new Uint32Array(T * K);
  for (let t = 0; t < T; t++) {
    const pick = Array.from({ length: E }, (_, e) => e).sort(() => rand() - 0.5).slice(0, K);
    ids.set(pick, t * K);
  }
  const used = new Set(ids).size;
  return {
    kernel: 'moe_experts_prefill',
    shape: `${shape} D${D} F${F} K${K} of ${E} x ${T} tokens`,
    dims: { hidden: D, inter: F, experts: E, topk: K, tokens: T, experts_used: used },
    bytes: used * (2 * fp8Bytes(F, D) + fp8Bytes(D, F)) + 4 * (2 * T * D + 2 * T * K),
    flops: 2 * T * K * 3 * F * D,
    tier,
    prepare({ gpu, kernels }, pool) {
      const gu = fp8StackLayout(2, F, D);
      const shards = expertShards(E, gu.codeBytes, gpu.limits.maxStorageBufferBindingSize, 'bench experts');
      const optShards: ExpertShardBuffers[] = shards.map((sh, i) => {
        const g = randomFp8Stack(gpu, `gate_up ${i}`, 2 * sh.count, F, D, 300 + i);
        const d = randomFp8Stack(gpu, `down ${i}`, sh.count, D, F, 400 + i);
        [g.codes, g.scales, d.codes, d.scales].forEach((bf) => pool.track(bf));
        return { first: sh.first, count: sh.count, gateUp: { codes: g.codes, scales: g.scales }, down: { codes: d.codes, scales: d.scales } };
      });
      const x = pool.track(randomF32Buffer(gpu, 'x', T * D, 10));
      const idsBuf = pool.track(createBuffer(gpu, ids.byteLength, 'ids'));
      gpu.device.queue.writeBuffer(idsBuf, 0, ids);
      const weights = pool.track(randomF32Buffer(gpu, 'weights', T * K, 11, 0.5));
      const out = pool.track(zeroBuffer(gpu, 'out', T * D * 4));
      const geometry = { hidden: D, experts: E, topK: K, inter: F, sharedInter: 0 };
      const scratch = createMoeScratch(gpu, geometry, T, true);
      for (const b of [scratch.hidden, scratch.y, scratch.plan, scratch.indirect]) if (b) pool.track(b);
      const args = { x, ids: idsBuf, weights, out, accumulate: false, tokens: T, geometry, w: { shards: optShards, shared: null }, scratch };
      return [
        {
          variant: 'optimised',
          impl: 'moe_align + moe_gateup_grouped + moe_down_grouped + moe_combine',
          build: () => {
            requireKernels({ gpu, kernels }, 'moe_align', 'moe_gateup_grouped', 'moe_down_grouped', 'moe_combine');
            return arenaOp(gpu, 2 + 2 * shards.length, (pass, arena) => moeExpertsPrefill(kernels, pass, arena, { ...args, prefill: 'grouped' }));
          },
        },
        {
          variant: 'optimised',
          impl: 'moe_align + moe_gateup_tiled + moe_down_tiled + moe_combine',
          engineDefault: T > 4, // moeExperts: the grouped path above 4 tokens, the plan's tiled kernels (chooseMoePrefill)
          build: () => {
            requireKernels({ gpu, kernels }, 'moe_align', 'moe_gateup_tiled', 'moe_down_tiled', 'moe_combine');
            return arenaOp(gpu, 2 + 2 * shards.length, (pass, arena) => moeExpertsPrefill(kernels, pass, arena, { ...args, prefill: 'tiled' }));
          },
        },
        {
          variant: 'optimised',
          impl: 'moe_gateup_id + moe_down_id (per-token decode path)',
          engineDefault: T <= 4,
          build: () => {
            requireKernels({ gpu, kernels }, 'moe_gateup_id', 'moe_down_id');
            return arenaOp(gpu, 2 * shards.length, (pass, arena) => moeExpertsDecode(kernels, pass, arena, { ...args, variant: 'f32' }));
          },
        },
        {
          // a batched decode step's candidates (docs/batching.md): per (token, slot) wide, or by expert
          variant: 'optimised',
          impl: 'moe_gateup_id_wide + moe_down_id_wide (per token)',
          build: () => {
            requireKernels({ gpu, kernels }, 'moe_gateup_id_wide', 'moe_down_id_wide');
            return arenaOp(gpu, 2 * shards.length, (pass, arena) => moeExpertsDecode(kernels, pass, arena, { ...args, variant: 'wide' }));
          },
        },
        {
          variant: 'optimised',
          impl: 'moe_gateup_union + moe_down_union + moe_combine (by expert)',
          build: () => {
            requireKernels({ gpu, kernels }, 'moe_gateup_union', 'moe_down_union', 'moe_combine');
            return arenaOp(gpu, 2 * shards.length + 1, (pass, arena) => moeExpertsDecode(kernels, pass, arena, { ...args, variant: 'union' }));
          },
        },
      ];
    },
  };
}

// ------------------------------------------------------------------------------------------------------------

/** Every shape, default tier first. */
export function benchShapes(): BenchShape[] {
  const K = KIMI;
  const S = SMALL;
  return [
    gemvShape('small q_a', S.Rq, S.D, 'default'),
    gemvShape('small expert down', S.D, S.F, 'default'),
    gemvShape('kimi expert gate/up', K.F, K.D, 'default'),
    gemvShape('kimi expert down', K.D, K.F, 'default'),
    gemvShape('kimi q_a', K.Rq, K.D, 'default'),
    gemvShape('kimi kv_a', K.R + K.Dr, K.D, 'default'),
    gemvShape('kimi q_b', K.H * (K.Dn + K.Dr), K.Rq, 'full'),
    gemvShape('kimi o_proj', K.D, K.H * K.Dv, 'full'),
    gemmShape('small expert gate/up', S.F, S.D, 64, 'default'),
    gemmShape('kimi expert gate/up', K.F, K.D, 16, 'default'),
    gemmShape('kimi expert gate/up', K.F, K.D, 64, 'default'),
    ...[128, 256, 512].map((t) => gemmShape('kimi expert gate/up', K.F, K.D, t, 'full')),
    mlaShape('small', S.H, S.R, S.Dr, 256, 'default'),
    ...[256, 4096, 32768].map((t) => mlaShape('kimi', 8, K.R, K.Dr, t, 'default')),
    ...[1024, 16384].map((t) => mlaShape('kimi', 8, K.R, K.Dr, t, 'full')),
    routerShape('small', { tokens: 1, hidden: S.D, experts: S.E, topk: S.K, groups: S.G, topkGroup: S.TG, scaling: 2.5 }, 'default'),
    routerShape('kimi', { tokens: 1, hidden: K.D, experts: K.E, topk: K.K, groups: 1, topkGroup: 1, scaling: 2.827 }, 'default'),
    routerShape('kimi', { tokens: 64, hidden: K.D, experts: K.E, topk: K.K, groups: 1, topkGroup: 1, scaling: 2.827 }, 'full'),
    routerShape('deepseek-v3', { tokens: 1, hidden: K.D, experts: 256, topk: 8, groups: 8, topkGroup: 4, scaling: 2.5 }, 'full'),
    expertShape('small', S.D, S.F, S.E, S.K, 'default'),
    expertShape('kimi', K.D, K.F, 8, K.K, 'default'),
    expertShape('kimi', K.D, K.F, 16, K.K, 'full'),
    expertPrefillShape('small', S.D, S.F, S.E, S.K, 8, 'default'), // a batched decode step of 8 streams
    expertPrefillShape('small', S.D, S.F, S.E, S.K, 64, 'default'),
    expertPrefillShape('kimi', K.D, K.F, 8, K.K, 16, 'full'),
    expertPrefillShape('kimi', K.D, K.F, 16, K.K, 64, 'full'),
  ];
}
