/**
 * Markdown tables of a report, for docs/benchmarks.md and the README (`webmoe bench --markdown FILE`):
 * the device and its ceilings, the kernels (engine-default variant per shape, with the naive twin and the
 * speedup), the end-to-end rows, and the targets with what limits the unmet ones. Browser-safe.
 */
import { adapterName, type BenchReport, type KernelRow } from './schema.js';

const f = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));
const pct = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(1)}%`);
const cell = (s: string) => s.replace(/\|/g, '\\|');

function table(head: string[], rows: string[][], rightFrom = 1): string {
  const align = head.map((_, i) => (i < rightFrom ? '---' : '---:'));
  return [head, align, ...rows].map((r) => `| ${r.map(cell).join(' | ')} |`).join('\n');
}

export function deviceLine(r: BenchReport): string {
  const a = r.adapter;
  return `${adapterName(a)} (${a.vendor}${a.driver ? `, ${a.driver}` : ''}${a.runtime === 'browser' ? ', in the browser' : ', Dawn in Node'})`;
}

/** The kernels table: per shape the engine-default optimised row (or the only one), its naive twin and the speedup. */
function kernelTable(r: BenchReport): string {
  const byShape = new Map<string, KernelRow[]>();
  for (const k of r.kernels) {
    const key = `${k.kernel}|${k.shape}`;
    byShape.set(key, [...(byShape.get(key) ?? []), k]);
  }
  const rows: string[][] = [];
  for (const list of byShape.values()) {
    const naive = list.find((k) => k.variant === 'naive');
    const opts = list.filter((k) => k.variant === 'optimised');
    const main = opts.find((k) => k.engine_default) ?? opts[0];
    const show = main ?? naive!;
    const others = opts.filter((k) => k !== main).map((k) => `${k.impl.split(' ')[0]} ${f(k.time_ms, 3)}`).join(', ');
    rows.push([
      show.kernel, show.shape, main ? main.impl : '(naive only)', f(show.time_ms, 3), f(show.gbps), f(show.gflops), pct(show.fraction_of_bandwidth), pct(show.fraction_of_fma),
      naive ? f(naive.time_ms, 3) : '–', main?.speedup_vs_naive !== undefined ? `${f(main.speedup_vs_naive)}x` : '–', others,
    ]);
  }
  return table(['kernel', 'shape', 'engine kernel', 'ms', 'GB/s', 'GFLOP/s', '% BW', '% FMA', 'naive ms', 'speedup', 'other variants (ms)'], rows, 3);
}

export function formatMarkdown(r: BenchReport): string {
  const c = r.ceilings;
  const parts = [
    `**${deviceLine(r)}** — ${r.adapter.software ? 'software (CPU) adapter' : 'hardware adapter'}; features: ${r.adapter.features.join(', ') || 'none'}; run ${r.created.slice(0, 16).replace('T', ' ')} UTC, ${f(r.duration_s, 0)} s.`,
    '',
    `Ceilings measured in the run: **${f(c.bandwidth_gbps)} GB/s** streaming read (${c.bandwidth.best}${c.bandwidth.verified ? ', sum verified' : ''}), **${f(c.fma_gflops)} GFLOP/s** f32 FMA, **${f(c.fp8_decode_gbps)} GB/s** FP8 decode from registers; ` +
      `fixed costs ${f(c.dispatch_us, 1)} µs per dispatch, ${f(c.submit_ms, 3)} ms per submit-and-wait.` +
      (c.drift ? ` Before / after the kernels: ${c.drift.bandwidth_gbps.map((x) => f(x)).join(' / ')} GB/s, ${c.drift.fma_gflops.map((x) => f(x)).join(' / ')} GFLOP/s.` : ''),
  ];
  if (r.kernels.length) parts.push('', kernelTable(r));
  if (r.e2e.length) {
    parts.push(
      '',
      table(
        ['model', 'backend', 'TTFT ms', 'prefill tok/s', 'decode tok/s', 'generate tok/s', 'step ms', 'roofline ms', '% roofline', 'submits / dispatches per step', 'GPU ms per step'],
        r.e2e.map((e) => [
          e.model, e.backend, f(e.ttft_ms, 1), f(e.prefill_tokens_per_s, 0), f(e.decode_tokens_per_s, 1), f(e.generate_decode_tokens_per_s, 1), f(e.decode_step_ms, 2), f(e.roofline_ms, 3), pct(e.fraction_of_roofline),
          e.submissions_per_decode_step !== undefined ? `${e.submissions_per_decode_step} / ${e.dispatches_per_decode_step ?? '–'}` : '–',
          f(e.kernel_ms, 2),
        ]),
        2,
      ),
    );
  }
  if (r.targets.length) {
    const missed = r.targets.filter((t) => !t.met);
    parts.push('', `Targets: ${r.targets.length - missed.length} of ${r.targets.length} met.`);
    if (missed.length) parts.push('', table(['unmet target', 'value', 'what limits it'], missed.map((t) => [t.description, f(t.value, 3), t.limited_by ?? '']), 3));
  }
  return parts.join('\n') + '\n';
}
