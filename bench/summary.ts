/**
 * The plain-text summary `webmoe bench` prints: ceilings, one line per kernel row with its fractions and
 * speedup, the end-to-end rows, and every target (met or not, with what limits it) next to its figure.
 * Browser-safe.
 */
import { adapterName, type BenchReport, type E2eRow } from './schema.js';

const f = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

function pad(cells: string[][]): string[] {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i < 2 || (i < 4 && cells[0]![i] !== 'prompt') ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd());
}

export function formatSummary(r: BenchReport): string {
  const a = r.adapter;
  const lines: string[] = [
    `adapter   ${adapterName(a)} (${a.vendor}, driver ${a.driver}${a.software ? ', software' : ''})`,
    `ceilings  ${f(r.ceilings.bandwidth_gbps)} GB/s streaming read (${r.ceilings.bandwidth.best}), ${f(r.ceilings.fma_gflops)} GFLOP/s FMA` +
      (r.ceilings.drift ? ` (before/after the kernels: ${r.ceilings.drift.bandwidth_gbps.map((x) => f(x)).join('/')} GB/s, ${r.ceilings.drift.fma_gflops.map((x) => f(x)).join('/')} GFLOP/s)` : ''),
    `fp8       ${f(r.ceilings.fp8_decode_gbps)} GB/s of FP8 weights decoded into FMAs from registers (the most an FP8 GEMV could read)`,
    ...(r.ceilings.int4_decode_gbps ? [`int4      ${f(r.ceilings.int4_decode_gbps)} GB/s of packed INT4 weights decoded into FMAs from registers (the same for INT4)`] : []),
    `fixed     ${f(r.ceilings.dispatch_us, 1)} µs per dispatch, ${f(r.ceilings.submit_ms, 3)} ms per submit-and-wait`,
  ];
  if (r.kernels.length) {
    lines.push('', 'kernels (median per call; % of the ceilings above)');
    const rows = [['kernel', 'variant', 'impl', 'shape', 'ms', 'GB/s', 'GFLOP/s', '%BW', '%FMA', 'vs naive', 'targets']];
    for (const k of r.kernels) {
      rows.push([
        k.kernel, k.variant + (k.engine_default ? '*' : ''), k.impl.split(' ')[0]!, k.shape, f(k.time_ms, 3), f(k.gbps), f(k.gflops), pct(k.fraction_of_bandwidth), pct(k.fraction_of_fma),
        k.speedup_vs_naive !== undefined ? `${f(k.speedup_vs_naive)}x` : '',
        (k.targets ?? []).map((t) => `${t.met ? 'ok' : 'MISS'}:${t.id}`).join(' '),
      ]);
    }
    lines.push(...pad(rows), '* = the variant the engine runs here');
  }
  if (r.e2e.length) {
    lines.push('', 'end to end');
    const rows = [['model', 'backend', 'prompt', 'decoded', 'TTFT ms', 'prefill tok/s', 'decode tok/s', 'generate tok/s', 'step ms', 'roofline ms', '%roofline', 'submits/step', 'dispatches/step', 'fixed ms']];
    for (const e of r.e2e) {
      rows.push([
        e.model, e.backend, String(e.prompt_tokens), String(e.decode_tokens), f(e.ttft_ms, 1), f(e.prefill_tokens_per_s, 1), f(e.decode_tokens_per_s, 1), f(e.generate_decode_tokens_per_s, 1), f(e.decode_step_ms, 3),
        f(e.roofline_ms, 4), pct(e.fraction_of_roofline), e.submissions_per_decode_step !== undefined ? String(e.submissions_per_decode_step) : '-',
        e.dispatches_per_decode_step !== undefined ? String(e.dispatches_per_decode_step) : '-', f(e.fixed_cost_ms, 2),
      ]);
    }
    lines.push(...pad(rows));
    for (const e of r.e2e.filter((x) => x.profile?.length)) {
      const top = e.profile!.slice(0, 6).map((k) => `${k.kernel} ${pct(k.share)} (${k.dispatches}x)`).join(', ');
      lines.push(`  ${e.model} decode step: ${f(e.kernel_ms, 3)} ms GPU time of a ${f(e.decode_step_ms, 3)} ms step; by kernel: ${top}`);
    }
    for (const e of r.e2e) {
      const line = layerDispatchLine(e);
      if (line) lines.push(`  ${e.model} ${line}`);
    }
  }
  for (const t of r.telemetry) {
    lines.push('', `expert load: ${t.model} (${t.source}), ${t.tokens} tokens, ${t.experts} experts top-${t.topk}`);
    for (const l of t.layers) lines.push(`  layer ${l.layer}: max/mean ${f(l.max_over_mean)}, CV ${f(l.cv)}, normalised entropy ${f(l.normalized_entropy, 3)}, unused ${l.unused}`);
  }
  if (r.targets.length) {
    const missed = r.targets.filter((t) => !t.met);
    lines.push('', `targets: ${r.targets.length - missed.length} of ${r.targets.length} met (printed, never asserted)`);
    for (const t of r.targets) lines.push(`  ${t.met ? 'met    ' : 'NOT MET'} ${t.description}: ${f(t.value, 3)} (threshold ${f(t.threshold, 2)})${t.limited_by ? `\n          limited by: ${t.limited_by}` : ''}`);
  }
  if (r.skipped.length) {
    lines.push('', `skipped (${r.skipped.length}):`);
    for (const s of r.skipped) lines.push(`  ${s.kernel} ${s.shape}${s.variant ? ` [${s.variant}]` : ''}: ${s.reason}`);
  }
  lines.push('', `took ${f(r.duration_s, 1)} s`);
  return lines.join('\n');
}

/** "dispatches per layer: 0 dense 7, 1 moe 8, ...; outside the layers 3" (undefined without per-layer counts). */
export function layerDispatchLine(e: Pick<E2eRow, 'dispatches_per_layer' | 'dispatches_outside_layers'>): string | undefined {
  if (!e.dispatches_per_layer) return undefined;
  const layers = e.dispatches_per_layer.map((l) => `${l.layer} ${l.kind} ${l.dispatches}${l.kind === 'moe' && (l.shards ?? 1) > 1 ? ` (${l.shards} expert shards)` : ''}`);
  return `dispatches per layer: ${layers.join(', ')}; outside the layers ${e.dispatches_outside_layers}`;
}
