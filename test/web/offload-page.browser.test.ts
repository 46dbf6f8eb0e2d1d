/**
 * bench/offload-page.ts (`webmoe bench offload --page`) on a small checkpoint instead of the ~3 GB one: the bench
 * toy's widths (hidden 256, 96 KiB experts) with 64 routed experts top-8 in 2 MoE layers (12 MiB of experts),
 * written to a temporary folder, served over HTTP, two page loads in one persistent Chromium profile. Checks the
 * measurement, not the speed: run 1 fetches experts by HTTP Range and repacks them into the OPFS store, run 2
 * reads them all from the store (zero Range requests for expert bytes), both within the budget with the planned
 * slots and the same tokens; the GB/s figures are finite and positive, and the report is well-formed.
 */
import { describe, expect, it } from 'vitest';
import { formatOffloadPageSummary, runOffloadPageBench, validateOffloadPageReport } from '../../bench/offload-page.js';
import { offloadToyConfig } from '../../bench/offload.js';

describe('bench offload --page', () => {
  it('measures run 1 (HTTP Range into the OPFS store) and run 2 (from the store, no expert Range requests)', async () => {
    const r = await runOffloadPageBench({
      files: { config: offloadToyConfig({ num_hidden_layers: 3, n_routed_experts: 64 }), keep: false },
      warmupTokens: 1,
      decodeTokens: 4,
      pageTimeoutMs: 120_000,
    });
    const summary = formatOffloadPageSummary(r);
    expect(validateOffloadPageReport(r), summary).toEqual([]);
    const [r1, r2] = r.runs;
    expect(r.budget.slots).toBe(16);
    expect(r.checks, summary).toMatchObject({ slotsAsPlanned: true, sameTokens: true, run2ExpertRangeRequests: 0, run2Fetches: 0 });
    for (const x of r.runs) {
      expect(x.load.gpuBytes).toBeLessThanOrEqual(x.load.budgetBytes);
      expect(x.tokens).toHaveLength(6);
      expect(x.store.mode).toBe('opfs');
      const g = x.generation.expertPath;
      expect(g.misses, summary).toBeGreaterThan(0);
      for (const v of [g.gbpsPerUploadSecond, g.gbpsPerWallSecond, g.gbpsPerStallSecond, g.tokensPerSecond, x.timed.tokensPerSecond]) {
        expect(Number.isFinite(v) && v > 0, summary).toBe(true);
      }
      if (x.timed.bytesStreamed > 0) expect(x.timed.gbpsPerUploadSecond > 0 && Number.isFinite(x.timed.gbpsPerWallSecond)).toBe(true);
    }
    // run 1: experts by Range, repacked into the store; run 2: every expert from the store
    expect(r1!.http.expertRangeRequests).toBeGreaterThan(0);
    expect(r1!.store.fetches).toBeGreaterThan(0);
    expect(r1!.store.writes).toBe(r1!.store.fetches);
    expect(r1!.store.writeMs).toBeGreaterThan(0);
    expect(r2!.store.storeReads).toBeGreaterThan(0);
    expect(r2!.store.readMs).toBeGreaterThan(0);
    expect(r2!.store.present).toBe(r1!.store.present);
    console.log(summary);
  }, 120_000);
});
