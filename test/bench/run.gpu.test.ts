/**
 * `webmoe bench` on a real adapter, kept small: a kernel subset and the `tiny` toy end to end, in-process and
 * through the CLI. Checks that the run produces a schema-valid report with the fields docs/benchmarks.md documents, never
 * how fast anything is.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runBench } from '../../bench/run.js';
import { validateReport, type BenchReport } from '../../bench/schema.js';
import { cpuBackend, webgpuBackend } from '../../bench/backends.js';
import { memoryFiles, openCheckpoint } from '../../src/model/checkpoint.js';
import { makeToyCheckpointInMemory } from '../../src/model/toy.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(join(tmpdir(), 'webmoe-bench-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe(`webmoe bench (${testAdapter()})`, () => {
  it('kernels + e2e in-process: schema-valid, with rows, ceilings, targets, telemetry and the step profile', async () => {
    const gpu = await testGpu();
    const toy = await makeToyCheckpointInMemory('tiny', { seed: 0 });
    const ckpt = await openCheckpoint(memoryFiles('tiny', toy.data));
    const report: BenchReport = await runBench(gpu, {
      suite: 'all',
      runtime: 'node',
      only: ['small q_a', 'small E32'],
      streamBytes: 8 << 20,
      timing: { repeats: 2, targetPassMs: 2 },
      models: [{ name: 'tiny', ckpt }],
      backends: [webgpuBackend(gpu, { ctxSize: 64 }), cpuBackend()],
      e2e: { promptTokens: 8, decodeTokens: 3, repeats: 1 },
    });
    expect(validateReport(report)).toEqual([]);
    expect(report.ceilings.bandwidth_gbps).toBeGreaterThan(0);
    expect(report.ceilings.drift?.bandwidth_gbps).toHaveLength(2);
    const got = report.kernels.map((r) => `${r.kernel}/${r.variant}`);
    expect(got).toEqual(expect.arrayContaining(['fp8_gemv/naive', 'fp8_gemv/optimised', 'moe_router/naive', 'moe_router/optimised']));
    for (const r of report.kernels.filter((x) => x.variant === 'optimised')) expect(r.speedup_vs_naive).toBeGreaterThan(0);
    expect(report.targets.some((t) => t.id === 'faster_than_naive')).toBe(true);
    const gpuRow = report.e2e.find((r) => r.backend === 'webgpu')!;
    const cpuRow = report.e2e.find((r) => r.backend === 'cpu-reference')!;
    expect(gpuRow.decode_tokens).toBe(3);
    expect(gpuRow.submissions_per_decode_step).toBeGreaterThanOrEqual(1);
    expect(gpuRow.dispatches_per_decode_step).toBeGreaterThan(10);
    expect(gpuRow.profile!.reduce((n, k) => n + k.dispatches, 0)).toBe(gpuRow.dispatches_per_decode_step);
    // the engine's layer markers split the step: tiny is a dense layer then a MoE layer (one expert shard)
    expect(gpuRow.dispatches_per_layer!.map((l) => [l.layer, l.kind, l.shards])).toEqual([[0, 'dense', undefined], [1, 'moe', 1]]);
    const inLayers = gpuRow.dispatches_per_layer!.reduce((n, l) => n + l.dispatches, 0);
    expect(inLayers + gpuRow.dispatches_outside_layers!).toBe(gpuRow.dispatches_per_decode_step);
    for (const l of gpuRow.dispatches_per_layer!) expect(l.dispatches).toBeGreaterThanOrEqual(5); // attention alone is several
    expect(gpuRow.dispatches_outside_layers).toBeGreaterThanOrEqual(2); // embedding, lm_head (and sampling)
    expect(report.targets.filter((t) => t.id === 'moe_layer_dispatches' || t.id === 'dispatches_outside_layers')).toHaveLength(2);
    expect(gpuRow.profile!.reduce((n, k) => n + k.share, 0)).toBeCloseTo(1, 9);
    expect(gpuRow.kernel_ms).toBeGreaterThan(0);
    expect(cpuRow.step_bytes).toEqual(gpuRow.step_bytes);
    expect(report.targets.some((t) => t.id === 'one_submission')).toBe(true);
    // telemetry from both engines' routers: tiny has one MoE layer (layer 1), 8 experts top-2
    expect(report.telemetry.map((t) => t.source)).toEqual(['webgpu', 'cpu-reference']);
    for (const t of report.telemetry) {
      expect(t.layers.map((l) => l.layer)).toEqual([1]);
      expect(t.layers[0]!.counts.reduce((a, b) => a + b, 0)).toBe(t.tokens * 2);
    }
  });

  it('the CLI writes the JSON and the HTML report', async () => {
    const json = join(tmp, 'out', 'bench.json');
    const html = join(tmp, 'out', 'bench.html');
    const args = ['bench', 'kernels', '--adapter', testAdapter(), '--only', 'small q_a', '--repeats', '2', '--stream-mib', '8', '--json', json, '--html', html];
    const res = await new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
      execFile(process.execPath, ['--import', 'tsx', join(repo, 'src/cli.ts'), ...args], { cwd: repo }, (err, stdout, stderr) =>
        done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      ),
    );
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/GB\/s streaming read/);
    expect(res.stdout).toMatch(/targets: \d+ of \d+ met/);
    const report = JSON.parse(readFileSync(json, 'utf8')) as BenchReport;
    expect(validateReport(report)).toEqual([]);
    expect(report.adapter.driver).toBe(testAdapter());
    expect(report.kernels.every((r) => r.shape.startsWith('small q_a'))).toBe(true);
    expect(readFileSync(html, 'utf8')).toContain('class="roofline"');
  });

  it('rejects an unknown suite with a one-line error', async () => {
    const res = await new Promise<{ code: number; stderr: string }>((done) =>
      execFile(process.execPath, ['--import', 'tsx', join(repo, 'src/cli.ts'), 'bench', 'everything', '--adapter', testAdapter()], { cwd: repo }, (err, _o, stderr) =>
        done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr }),
      ),
    );
    expect(res.code).toBe(2);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toContain("unknown bench suite 'everything': use kernels, e2e, batch, offload, page or all");
  });

  it('rejects --page outside the offload suite with a one-line error', async () => {
    const res = await new Promise<{ code: number; stderr: string }>((done) =>
      execFile(process.execPath, ['--import', 'tsx', join(repo, 'src/cli.ts'), 'bench', 'kernels', '--page', '--adapter', testAdapter()], { cwd: repo }, (err, _o, stderr) =>
        done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr }),
      ),
    );
    expect(res.code).toBe(2);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toContain("--page is an option of 'bench offload', not of 'bench kernels'");
  });
});
