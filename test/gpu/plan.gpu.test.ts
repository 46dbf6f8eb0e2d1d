/**
 * The kernel plan (src/gpu/plan.ts) as a specification: on the CPU adapters the choices the measurements in its
 * rules support (wide GEMV and expert kernels, the tiled prefill GEMM, rows attention for decode), a session runs
 * exactly the plan computed for its device and model, and `webmoe doctor --model` reports it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createSession } from '../../src/engine/session.js';
import { doctor } from '../../src/gpu/doctor.js';
import { Kernels } from '../../src/gpu/kernels.js';
import { CPU_DECODE_SPLITS, describePlan, GPU_DECODE_SPLITS, MLA_ROWS_MAX_R, planKernels } from '../../src/gpu/plan.js';
import { chooseSplits } from '../../src/gpu/ops/attention.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { GOLDEN_DIR } from '../model/reference-fixtures.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

describe(`kernel plan (${testAdapter()})`, () => {
  it('CPU adapters: wide GEMV and experts, tiled prefill GEMM from 2 tokens, rows attention for decode', async () => {
    const p = planKernels(new Kernels(await testGpu()), { hidden: 256, rank: 64, rope: 16 });
    expect(p.adapter).toBe(testAdapter() === 'lavapipe' ? 'llvmpipe' : 'swiftshader');
    expect(p.gemv).toBe('wide');
    expect(p.moeDecode).toBe('wide');
    expect(p.gemmTiledFrom).toBe(2);
    // short prefill chunks at toy widths (docs/benchmarks.md "Short prefill chunks"): lavapipe runs narrow linears and
    // every chunk's experts on the decode kernels, SwiftShader the experts of chunks up to 8 tokens
    expect(p.prefillGemvMaxCols).toBe(testAdapter() === 'lavapipe' ? 1024 : 0);
    expect(p.moeDecodeMaxTokens).toBe(testAdapter() === 'lavapipe' ? 1 << 16 : 8);
    expect(planKernels(new Kernels(await testGpu()), { hidden: 7168, rank: 512, rope: 64 }).moeDecodeMaxTokens).toBe(4);
    expect(p.attentionRows.decode).toBe(true);
    expect(p.attentionRows.prefill).toBe(testAdapter() === 'lavapipe'); // SwiftShader: rows only for one token
    // a latent wider than the rows kernel's arrays takes the tiled kernel whatever the adapter
    expect(planKernels(new Kernels(await testGpu()), { hidden: 256, rank: MLA_ROWS_MAX_R + 64, rope: 64 }).attentionRows.decode).toBe(false);
    expect(describePlan(p).join('\n')).toMatch(/dense decode GEMV \(FP8\): wide[\s\S]*MoE experts by id: wide[\s\S]*MLA attention: decode rows/);
    expect(p.decodeSplits).toEqual(CPU_DECODE_SPLITS);
    expect(describePlan(p).join('\n')).toMatch(/decode attention key split: up to 16 splits of at least 256 keys/);
  });

  it('decode key splits: few long splits on CPU adapters, many short ones on GPUs (the H200 measurements in decodeSplitRule)', () => {
    const kimi = { heads: 8, nope: 128, rope: 64, v: 128, rank: 512 }; // the bench's mla_decode rows: one row block of 8 heads
    const cpu = (S: number) => chooseSplits(1, S, kimi, CPU_DECODE_SPLITS.maxSplits, CPU_DECODE_SPLITS);
    const gpu = (S: number) => chooseSplits(1, S, kimi, GPU_DECODE_SPLITS.maxSplits, GPU_DECODE_SPLITS);
    expect([256, 1024, 4096, 32768].map(cpu)).toEqual([1, 4, 16, 16]);
    expect([31, 256, 1024, 4096, 32768].map(gpu)).toEqual([1, 8, 32, 64, 64]);
    // 64 heads (Kimi K2): 8 row blocks already, so up to 256 / 8 = 32 splits
    expect(chooseSplits(1, 4096, { ...kimi, heads: 64 }, GPU_DECODE_SPLITS.maxSplits, GPU_DECODE_SPLITS)).toBe(32);
  });

  it('a session runs the plan computed for its device and model; doctor --model reports the same plan', async () => {
    const gpu = await testGpu();
    const ckpt = await openCheckpointDir(join(GOLDEN_DIR!, 'small'));
    try {
      const c = ckpt.config;
      const s = await createSession(gpu, ckpt, { ctxSize: 64 });
      const want = planKernels(new Kernels(gpu), { hidden: c.hidden_size, rank: c.kv_lora_rank, rope: c.qk_rope_head_dim });
      expect(s.model.plan).toEqual(want);
      expect(s.model.gemv).toBe(want.gemv);
      s.dispose();
      const report = await doctor(testAdapter(), { hidden: c.hidden_size, rank: c.kv_lora_rank, rope: c.qk_rope_head_dim });
      expect(report.ok).toBe(true);
      expect(report.plan).toEqual(want);
    } finally {
      await ckpt.close();
    }
  });
});
