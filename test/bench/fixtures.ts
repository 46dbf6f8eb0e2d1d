/** A small, well-formed BenchReport built by hand (no GPU), for the schema and report tests. */
import { layerLoad } from '../../src/engine/telemetry.js';
import type { Ceilings } from '../../bench/ceilings.js';
import { kernelRow } from '../../bench/kernels.js';
import type { Timing } from '../../bench/harness.js';
import { SCHEMA_ID, type BenchReport } from '../../bench/schema.js';
import { e2eTargets, kernelTargets } from '../../bench/targets.js';

export const CEILINGS: Ceilings = {
  bandwidth_gbps: 10,
  fma_gflops: 40,
  fp8_decode_gbps: 2.5,
  dispatch_us: 20,
  submit_ms: 0.2,
  bandwidth: { bytes: 128 << 20, best: 'contiguous, WG 64 x 64 workgroups', verified: true, method: 'timestamp-query', variants: [{ variant: 'contiguous', gbps: 10, ms: 13.4, method: 'timestamp-query' }] },
  fma: { flop: 1e9, best: 'WG 64 x 1024', method: 'timestamp-query', variants: [{ variant: 'WG 64 x 1024', gflops: 40, ms: 25, method: 'timestamp-query' }] },
};

export function timing(ms: number): Timing {
  return { ms, minMs: ms * 0.9, maxMs: ms * 1.2, wallMs: ms * 1.1, timer: 'timestamp', inner: 10, samples: 7, rejected: 0, resolutionNs: 1, method: 'timestamp-query (pass begin/end): median of 7 passes, 10 calls per pass' };
}

export function sampleReport(): BenchReport {
  const gemv = { kernel: 'fp8_gemv', impl: 'fp8_gemv', shape: 'kimi expert gate/up 7168->2048', dims: { rows: 2048, cols: 7168 }, bytes: 2048 * 7168 + 4 * 9216, flops: 2 * 2048 * 7168 };
  const naive = kernelRow({ ...gemv, variant: 'naive', impl: 'fp8_gemv_naive' }, timing(60), CEILINGS);
  const opt = kernelRow({ ...gemv, variant: 'optimised' }, timing(20), CEILINGS);
  opt.engine_default = true;
  opt.speedup_vs_naive = 3;
  // a tiny kernel whose data sits in a CPU cache: above the DRAM ceiling, so clamped
  const hot = kernelRow({ kernel: 'moe_router', variant: 'optimised', impl: 'bf16_gemv + moe_router', shape: 'small', dims: { experts: 32 }, bytes: 16e6, flops: 1e6 }, timing(0.5), CEILINGS);
  hot.speedup_vs_naive = 0.8;
  const kernels = [naive, opt, hot];
  const e2e = [
    {
      model: 'small', backend: 'webgpu', prompt_tokens: 64, decode_tokens: 32, ttft_ms: 300, prefill_tokens_per_s: 213, decode_tokens_per_s: 110, decode_step_ms: 9,
      step_bytes: { experts: 2e6, attention: 0.5e6, kv_cache: 0.1e6, other: 0.3e6, total: 2.9e6 }, roofline_ms: 0.29, fraction_of_roofline: 0.032, raw_fraction_of_roofline: 0.032,
      submissions_per_decode_step: 1, dispatches_per_decode_step: 55, fixed_cost_ms: 1.3, profile: [{ kernel: 'fp8_gemv', dispatches: 15, ms: 1.2, share: 1 }], kernel_ms: 1.2, method: 'wall clock',
    },
  ];
  const counts = Array.from({ length: 32 }, (_, e) => (e % 4) + 1);
  return {
    schema: SCHEMA_ID,
    created: '2026-01-01T00:00:00.000Z',
    adapter: { vendor: 'mesa', architecture: '', device: 'llvmpipe', description: 'llvmpipe (LLVM 15)', software: true, driver: 'lavapipe', features: ['timestamp-query'], limits: { maxBufferSize: 1 << 30 }, runtime: 'node' },
    ceilings: structuredClone(CEILINGS),
    kernels,
    e2e,
    telemetry: [{ model: 'small', source: 'webgpu', experts: 32, topk: 8, tokens: 10, layers: [layerLoad(1, counts, 10)] }],
    targets: [...kernelTargets(kernels, CEILINGS), ...e2eTargets(e2e)],
    skipped: [{ kernel: 'moe_experts', shape: 'kimi', variant: 'optimised', reason: 'not written yet' }],
    settings: { suite: 'all', full: false, repeats: 7, target_pass_ms: 25, timer: 'timestamp-query' },
    duration_s: 12,
  };
}
