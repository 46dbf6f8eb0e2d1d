/**
 * `webmoe bench offload` end to end on a real adapter, kept tiny: a toy of tiny widths (16 experts top-4, 3 MoE
 * layers), a few decode steps per row, the demo model's trace on a toy of its shape, and the files row on a small
 * checkpoint written to a temporary folder. Checks that every part runs and the report is well-formed, never how
 * fast anything is (the bench prints its targets, it does not assert them).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatOffloadSummary, MAIN_ROWS, OFFLOAD_SCHEMA, offloadToyConfig, runOffloadBench, validateOffloadReport } from '../../bench/offload.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';

const TINY = {
  vocab_size: 128, hidden_size: 64, intermediate_size: 128, moe_intermediate_size: 32, num_hidden_layers: 4,
  n_routed_experts: 16, num_experts_per_tok: 4, n_group: 1, topk_group: 1, num_attention_heads: 2, num_key_value_heads: 2,
  q_lora_rank: 32, kv_lora_rank: 32, qk_nope_head_dim: 16, qk_rope_head_dim: 8, v_head_dim: 16,
};

const tmp = mkdtempSync(join(tmpdir(), 'webmoe-bench-offload-test-'));
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  (await testGpu()).destroy();
});

describe(`webmoe bench offload (${testAdapter()})`, () => {
  it('runs every row, the demo trace and the files row on tiny sizes and produces a well-formed report', async () => {
    const gpu = await testGpu();
    const labels: string[] = [];
    const filesDir = join(tmp, 'files');
    const report = await runOffloadBench(gpu, {
      toy: TINY,
      decodeTokens: 6,
      warmupTokens: 2,
      tcSteps: 4,
      files: { config: offloadToyConfig({ ...TINY, num_hidden_layers: 2, n_routed_experts: 8 }), tokens: 2, dir: filesDir, keep: false },
      onProgress: (l) => labels.push(l),
    });
    expect(validateOffloadReport(report)).toEqual([]);
    expect(report.schema).toBe(OFFLOAD_SCHEMA);
    expect(labels.length).toBeGreaterThan(5);
    // the main toy: 3 MoE layers of 16 experts, t_c from the 4- and 2-layer twins
    expect(report.main.toy).toMatchObject({ layers: 4, moeLayers: 3, experts: 16, topK: 4 });
    expect([report.main.tc.layersFull, report.main.tc.layersShort]).toEqual([4, 2]);
    expect(report.main.base.runs).toHaveLength(MAIN_ROWS.length);
    expect(report.sync!.ratio).toBeGreaterThan(0);
    // every main row and the demo row, in order, with its budget, slots, link and simulator prediction
    expect(report.rows.map((r) => r.id)).toEqual([...MAIN_ROWS.map((r) => r.id), 'demo']);
    for (const row of report.rows) {
      expect(row.run.tokens).toBe(6);
      expect(row.gpuBytes).toBeLessThanOrEqual(row.budgetBytes);
      expect(row.slots).toBe(Math.max(row.trace.topK, Math.floor(row.share * row.experts)));
      expect(row.bytesPerSecond).toBeCloseTo(row.expertBytes / ((row.r * (row.model === report.main.toy.name ? report.main.tc : report.demo!.tc).tcMs) / 1000), 3);
      expect(row.rEffective).toBeGreaterThanOrEqual(row.r);
      expect(row.trace.tokens).toBe(1 + 2 + 6);
      expect(row.sim.speed).toBeGreaterThan(0);
      expect(row.lookups).toBe(row.demandHits + row.latePrefetches + row.misses);
    }
    const lru = report.rows.find((r) => r.id === 'S3-lru')!;
    expect([lru.policy, lru.prefetch, lru.prefetchesIssued]).toEqual(['lru', false, 0]);
    expect(report.rows.find((r) => r.id === 'uniform')!.trace.name).toBe('uniform');
    // the demo row: a toy of the trace's shape (32 experts top-4, 3 MoE layers)
    const demo = report.rows.find((r) => r.id === 'demo')!;
    expect([demo.experts, demo.trace.experts, demo.trace.topK, demo.trace.moeLayers]).toEqual([32, 32, 4, 3]);
    expect(report.demo!.toy).toMatchObject({ experts: 32, topK: 4, moeLayers: 3 });
    expect(report.targets.map((t) => t.id)).toEqual(['S3-speed', 'S3-hits', 'S3-vs-lru', 'S4-speed', 'S5-speed']);
    // the files row: written, read through checkpointExpertSource, removed after
    const f = report.files!;
    expect(f.slots).toBe(Math.max(4, Math.floor(0.25 * 8)));
    expect(f.run.tokens).toBe(2);
    expect(f.bytesStreamed % f.toy.expertBytes).toBe(0);
    expect(f.kept).toBe(false);
    expect(existsSync(filesDir)).toBe(false);
    const summary = formatOffloadSummary(report);
    for (const text of ['S2 sync cost', 't_c =', 'S3 50 % r=1', 'demo trace 50 % r=1', 'targets (', 'real files', 'expert path']) expect(summary).toContain(text);
    expect(() => JSON.parse(JSON.stringify(report))).not.toThrow();
  });
});
