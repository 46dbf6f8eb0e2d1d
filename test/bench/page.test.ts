/**
 * `webmoe bench page` (bench/page.ts) without a browser: its targets (issue #13 item 4: <= 14 ms per token and a
 * <= 0.4 s prefill in the page) on hand-made rows, the floor in limited_by, and the report's checks.
 */
import { execFile } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatPageSummary, PAGE_BENCH_SCHEMA, PAGE_TARGETS, pageTargets, validatePageReport, type PageBackendRow, type PageBenchReport } from '../../bench/page.js';

const run = (ms: number, ttft: number, tokens = [5, 6, 7]) => ({ decode_ms_per_token: ms, decode_tokens_per_s: 1000 / ms, ttft_ms: ttft, pipeline_compile_ms: 12_000, load_ms: 900, tokens });
const row = (ms: number, ttft: number): PageBackendRow => ({ backend: 'webgpu', adapter: 'swiftshader', runs: [run(ms, ttft)], median: (({ tokens: _t, ...m }) => m)(run(ms, ttft)) });
const FLOOR = { adapter: 'SwiftShader', fp8_decode_gbps: 0.5, bandwidth_gbps: 2, decode_ms: 8 };

describe('bench page targets', () => {
  it('meets both at the thresholds and carries no limited_by', () => {
    const t = pageTargets(row(PAGE_TARGETS.decodeMsPerToken, PAGE_TARGETS.prefillSeconds * 1000), FLOOR, 48);
    expect(t.map((x) => [x.id, x.met, x.limited_by])).toEqual([['page_decode_ms', true, undefined], ['page_prefill_s', true, undefined]]);
  });

  it('explains a miss from the floor and the per-token prefill time', () => {
    const [decode, prefill] = pageTargets(row(48, 720), FLOOR, 48);
    expect(decode).toMatchObject({ met: false, value: 48, threshold: 14 });
    expect(decode!.limited_by).toContain('a floor of 8.0 ms per token');
    expect(decode!.limited_by).toContain('17 % of that floor'); // 8 / 48
    expect(prefill).toMatchObject({ met: false, value: 0.72 });
    expect(prefill!.limited_by).toContain('15.0 ms per prompt token');
    expect(pageTargets(undefined, FLOOR, 48)).toEqual([]); // no webgpu row (--backends cpu): no target
  });

  it('validates a report and says when the backends disagree', () => {
    const report: PageBenchReport = {
      schema: PAGE_BENCH_SCHEMA, created: '', model: 'kimi-toy', prompt_tokens: 48, decode_tokens: 2, repeats: 1,
      browser: { executable: 'chromium', version: '1', user_agent: 'x' }, rows: [row(48, 720)], same_tokens: false,
      step_bytes: { experts: 1, attention: 1, kv_cache: 1, other: 1, total: 4 }, floor: FLOOR, targets: pageTargets(row(48, 720), FLOOR, 48), load_average: [1, 1, 1], duration_s: 1,
    };
    expect(validatePageReport(report)).toEqual([]);
    expect(formatPageSummary(report)).toContain('DIFFER');
    expect(validatePageReport({ ...report, repeats: 2 })).toEqual(['webgpu: 1 runs of 2']);
    const nan = { ...report, rows: [{ ...row(48, 720), median: { ...row(48, 720).median, ttft_ms: Number.NaN } }] };
    expect(validatePageReport(nan)).toEqual(['webgpu: median ttft_ms = NaN']);
  });
});

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

describe('bench page refuses bad options before starting anything', () => {
  // each fails in Node before a checkpoint is written or Chromium starts: exit 2, one line on stderr
  it.each([
    [['--backends', 'webgpu,gpu'], "--backends: 'gpu' is not a page backend (webgpu, cpu)"],
    [['--repeats', '0'], "--repeats must be an integer >= 1, got '0'"],
    [['--decode-tokens', '1'], "--decode-tokens must be an integer >= 2, got '1'"],
    [['--prompt-tokens', '1000'], "--prompt-tokens + --decode-tokens must leave 8 positions of kimi-toy's 1024"],
  ])('%j', async (args, message) => {
    const res = await new Promise<{ code: number; stderr: string }>((done) =>
      execFile(process.execPath, ['--import', 'tsx', join(repo, 'src/cli.ts'), 'bench', 'page', ...args], { cwd: repo }, (err, _o, stderr) =>
        done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr }),
      ),
    );
    expect(res.code).toBe(2);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toContain(message);
  });
});

