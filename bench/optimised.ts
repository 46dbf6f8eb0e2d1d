/**
 * The optimised kernels as `webmoe bench` times them: thin adapters from the bench's buffers to the engine's
 * launchers in src/gpu/ops/ (the same code the engine runs, not copies). Every GEMV/GEMM variant that exists
 * on this device is measured; the one the engine picks (linear.ts chooseGemv) is marked `engine_default`.
 * Browser-safe.
 */
import type { GpuContext } from '../src/gpu/device.js';
import type { Kernels } from '../src/gpu/kernels.js';
import { linear, rowStrideWords, type GemmVariant, type GemvVariant, type GpuLinear } from '../src/gpu/ops/linear.js';
import { arenaOp, requireKernels, type BenchVariant } from './op.js';
import type { Fp8GemvBuffers } from './naive.js';
import { chooseGemm, chooseGemv, GEMV_SUBGROUP_WG, tiledGemmFrom } from '../src/gpu/plan.js';
import { adapterClass } from '../src/gpu/ops/adapter-class.js';

interface Ctx {
  gpu: GpuContext;
  kernels: Kernels;
}

/** A GpuLinear over buffers the bench created (one chunk: the bench shapes fit one binding). */
export function asLinear(name: string, format: 'fp8' | 'bf16', rows: number, cols: number, codes: GPUBuffer, scales: GPUBuffer | null): GpuLinear {
  return { name, format, rows, cols, strideWords: rowStrideWords(format, cols), chunks: [{ rowStart: 0, rows, codes }], scales, bytes: codes.size + (scales?.size ?? 0) };
}

const GEMV_KERNELS: Record<GemvVariant, string> = { f32: 'fp8_gemv', subgroup: 'fp8_gemv_subgroup', f16: 'fp8_gemv_f16', wide: 'fp8_gemv_wide' };
const GEMM_KERNELS: Record<GemmVariant, string> = { f32: 'fp8_gemm', f16: 'fp8_gemm_f16', tiled: 'fp8_gemm_tiled' };

type OptimisedVariant = BenchVariant;

/** fp8_gemv_subgroup's threads per workgroup that the bench sweeps on GPUs (the engine runs GEMV_SUBGROUP_WG). */
const SUBGROUP_WG_SWEEP = [64, 128, 256];

export function optimisedFp8Gemv(ctx: Ctx, b: Fp8GemvBuffers, rows: number, cols: number): OptimisedVariant[] {
  const chosen = chooseGemv(ctx.kernels);
  const planWg = GEMV_SUBGROUP_WG;
  const sweep = adapterClass(ctx.gpu) === 'hardware' ? SUBGROUP_WG_SWEEP : [planWg];
  const variants: Array<{ v: GemvVariant; wg?: number }> = [
    { v: 'wide' }, { v: 'f32' }, ...sweep.map((wg) => ({ v: 'subgroup' as const, wg })), { v: 'f16' },
  ];
  return variants
    .filter(({ v }) => v === 'f32' || v === 'wide' || ctx.kernels.available(GEMV_KERNELS[v]))
    .map(({ v, wg }) => ({
      variant: 'optimised' as const,
      impl: GEMV_KERNELS[v] + (wg !== undefined && sweep.length > 1 ? ` (wg ${wg})` : ''),
      engineDefault: v === chosen && (wg === undefined || wg === planWg),
      build: () => {
        requireKernels(ctx, GEMV_KERNELS[v]);
        const w = asLinear('bench gemv', 'fp8', rows, cols, b.w, b.scale);
        return arenaOp(ctx.gpu, 1, (pass, arena) => linear(ctx.kernels, pass, arena, { w, x: b.x, y: b.y, tokens: 1, gemv: v, subgroupWg: wg }));
      },
    }));
}

export function optimisedFp8Gemm(ctx: Ctx, b: Fp8GemvBuffers, rows: number, cols: number, tokens: number): OptimisedVariant[] {
  const variants: GemmVariant[] = ['tiled', 'f32', 'f16'];
  const chosen = chooseGemm('f32', tokens, false, tiledGemmFrom(ctx.kernels));
  const gemms = variants
    .filter((v) => v !== 'f16' || ctx.kernels.available(GEMM_KERNELS[v]))
    .map((v) => ({
      variant: 'optimised' as const,
      impl: GEMM_KERNELS[v],
      engineDefault: v === chosen,
      build: () => {
        requireKernels(ctx, GEMM_KERNELS[v]);
        const w = asLinear('bench gemm', 'fp8', rows, cols, b.w, b.scale);
        return arenaOp(ctx.gpu, 1, (pass, arena) => linear(ctx.kernels, pass, arena, { w, x: b.x, y: b.y, tokens, gemm: v, forceGemm: true }));
      },
    }));
  // the decode GEMV over the token rows (TB rows per invocation, batched decode's 'gemv-rows'): the candidate
  // for short prefill chunks on CPU adapters
  const rowsVariant: OptimisedVariant = {
    variant: 'optimised',
    impl: 'fp8_gemv_wide (per row)',
    build: () => {
      requireKernels(ctx, 'fp8_gemv_wide');
      const w = asLinear('bench gemm', 'fp8', rows, cols, b.w, b.scale);
      return arenaOp(ctx.gpu, 1, (pass, arena) => linear(ctx.kernels, pass, arena, { w, x: b.x, y: b.y, tokens, gemv: 'wide', perRow: true }));
    },
  };
  return ctx.kernels.available('fp8_gemv_wide') ? [...gemms, rowsVariant] : gemms;
}

/**
 * Router logits with the engine's BF16 linear: for one token fp8_gemv_subgroup_bf16 where the FP8 GEMV is the
 * subgroup one (GPUs), else fp8_gemv_wide_bf16 (both are timed where both exist); bf16_gemm for more tokens.
 */
export function optimisedRouterLogits(ctx: Ctx, b: { x: GPUBuffer; gate: GPUBuffer; logits: GPUBuffer }, hidden: number, experts: number, tokens: number): OptimisedVariant[] {
  const chosen = chooseGemv(ctx.kernels);
  const options: Array<{ kernel: string; gemv?: GemvVariant }> = tokens > 1
    ? [{ kernel: 'bf16_gemm' }]
    : [{ kernel: 'fp8_gemv_wide_bf16', gemv: 'wide' as const }, ...(ctx.kernels.available('fp8_gemv_subgroup_bf16') ? [{ kernel: 'fp8_gemv_subgroup_bf16', gemv: 'subgroup' as const }] : [])];
  return options.map(({ kernel, gemv }) => ({
    variant: 'optimised' as const,
    impl: kernel,
    engineDefault: tokens > 1 || gemv === (chosen === 'subgroup' ? 'subgroup' : 'wide'),
    build: () => {
      requireKernels(ctx, kernel);
      const w = asLinear('bench router gate', 'bf16', experts, hidden, b.gate, null);
      return arenaOp(ctx.gpu, 1, (pass, arena) => linear(ctx.kernels, pass, arena, { w, x: b.x, y: b.logits, tokens, gemv }));
    },
  }));
}
