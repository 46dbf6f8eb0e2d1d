/**
 * The HTML report of a bench run: ONE self-contained file (inline CSS and SVG, no script, no CDN, no fetch)
 * with the adapter and its measured ceilings, a roofline of every kernel row against them, bar charts of
 * the fraction of bandwidth and the speedup over the naive twins, the end-to-end numbers, the targets (met or
 * not, with what limits them) and the MoE expert-load histograms. The JSON is embedded too, so the file is
 * the whole record. Browser-safe.
 */
import { adapterName, type BenchReport, type KernelRow, type MoeTelemetry, type TargetCheck } from './schema.js';
import { barChartSvg, colorFor, esc, fmtNum, histogramSvg, rooflineSvg, type RooflinePoint } from './svg.js';
import { layerDispatchLine } from './summary.js';

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0;font-size:12.5px}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.l,th.l{text-align:left}.met{color:#1a7f37;font-weight:600}.miss{color:#b42318;font-weight:600}
.note{color:#555;font-size:12.5px}.hists{display:flex;flex-wrap:wrap;gap:8px}details{margin:8px 0}code{background:#f4f4f4;padding:0 3px}
`;

function f(x: number | undefined, d = 2): string {
  return x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d);
}

function pct(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(1)}%`;
}

/** An HTML table; the first `leftCols` columns (and those listed in `textCols`) are left-aligned text. */
function table(head: string[], rows: string[][], leftCols = 1, textCols: number[] = []): string {
  const left = (i: number) => i < leftCols || textCols.includes(i) || textCols.includes(i - head.length);
  const th = head.map((h, i) => `<th${left(i) ? ' class="l"' : ''}>${esc(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c, i) => `<td${left(i) ? ' class="l"' : ''}>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}

function targetCell(t: TargetCheck): string {
  return `<span class="${t.met ? 'met' : 'miss'}">${t.met ? 'met' : 'not met'}</span>`;
}

function rowLabel(r: KernelRow): string {
  return `${r.kernel} ${r.shape} [${r.impl}]`;
}

function kernelSection(rep: BenchReport): string {
  const { ceilings: c, kernels: rows } = rep;
  if (!rows.length) return '<h2>Kernels</h2><p>No kernel rows in this run.</p>';
  const families = [...new Set(rows.map((r) => r.kernel))];
  const points: RooflinePoint[] = rows.map((r) => ({
    x: r.flops / r.bytes,
    y: r.gflops,
    group: r.kernel,
    hollow: r.variant === 'naive',
    label: `${rowLabel(r)}: ${f(r.gflops)} GFLOP/s, ${f(r.gbps)} GB/s, ${f(r.time_ms, 3)} ms`,
  }));
  const bwBars = rows.map((r) => ({
    label: `${r.variant === 'naive' ? '(naive) ' : ''}${r.kernel} ${r.shape}${r.variant === 'optimised' ? ` [${r.impl.split(' ')[0]}]` : ''}`,
    value: r.fraction_of_bandwidth,
    text: `${pct(r.fraction_of_bandwidth)} (${f(r.gbps)} GB/s)`,
    color: r.variant === 'naive' ? '#bbb' : colorFor(r.kernel, families),
  }));
  const sp = rows.filter((r) => r.speedup_vs_naive !== undefined);
  const spBars = sp.map((r) => ({
    label: `${r.kernel} ${r.shape} [${r.impl.split(' ')[0]}]`,
    value: r.speedup_vs_naive!,
    text: `${f(r.speedup_vs_naive)}x`,
    color: r.speedup_vs_naive! > 1 ? colorFor(r.kernel, families) : '#b42318',
  }));
  const spMax = Math.max(2, ...sp.map((r) => r.speedup_vs_naive!));
  const tableRows = rows.map((r) => [
    esc(r.kernel), esc(r.variant + (r.engine_default ? ' *' : '')), esc(r.impl), esc(r.shape),
    f(r.time_ms, 3), f(r.wall_ms, 3), f(r.gbps), f(r.gflops), pct(r.fraction_of_bandwidth), pct(r.fraction_of_fma),
    r.speedup_vs_naive !== undefined ? `${f(r.speedup_vs_naive)}x` : '', (r.targets ?? []).map(targetCell).join(' '), esc(r.method),
  ]);
  return [
    '<h2>Kernels</h2>',
    `<p class="note">Roofline against the ceilings measured in this run: ${f(c.bandwidth_gbps)} GB/s streaming read, ${f(c.fma_gflops)} GFLOP/s FMA. ` +
      'Filled circles: optimised kernels; hollow squares: naive twins. Hover a marker for its numbers.</p>',
    rooflineSvg(points, c.bandwidth_gbps, c.fma_gflops, 760, 440, c.fp8_decode_gbps ? { gbps: c.fp8_decode_gbps, label: `FP8 decode ${fmtNum(c.fp8_decode_gbps)} GB/s` } : undefined),
    '<h3>Fraction of the streaming-read ceiling</h3>',
    barChartSvg(bwBars, { max: 1, marker: { value: 0.7, label: '70% target (Kimi GEMV)' } }),
    spBars.length ? '<h3>Speedup over the naive twin (same shape, same run)</h3>' + barChartSvg(spBars, { max: spMax, marker: { value: 1, label: '1x' } }) : '',
    '<h3>All rows</h3>',
    table(['kernel', 'variant', 'impl', 'shape', 'ms', 'wall ms', 'GB/s', 'GFLOP/s', '% BW', '% FMA', 'speedup', 'targets', 'method'], tableRows, 4, [-1]),
    '<p class="note">* the variant the engine uses on this device. Fractions are clamped to [0, 1] (raw ratios are in the JSON). ' +
      'ms: median per call by the method shown; wall ms: submit to onSubmittedWorkDone, host overhead included.</p>',
  ].join('\n');
}

function e2eSection(rep: BenchReport): string {
  if (!rep.e2e.length) return '';
  const rows = rep.e2e.map((r) => [
    esc(r.model), esc(r.backend), String(r.prompt_tokens), String(r.decode_tokens), f(r.ttft_ms, 1), f(r.prefill_tokens_per_s, 1), f(r.decode_tokens_per_s, 1), f(r.generate_decode_tokens_per_s, 1),
    f(r.decode_step_ms, 3), f(r.step_bytes.total / 1e6, 3), f(r.roofline_ms, 4), pct(r.fraction_of_roofline),
    r.submissions_per_decode_step !== undefined ? String(r.submissions_per_decode_step) : '–',
    r.dispatches_per_decode_step !== undefined ? String(r.dispatches_per_decode_step) : '–', f(r.fixed_cost_ms, 2), (r.targets ?? []).map(targetCell).join(' '),
  ]);
  const models = [...new Set(rep.e2e.map((r) => r.model))];
  const bars = rep.e2e.map((r) => ({ label: `${r.model} (${r.backend})`, value: r.decode_tokens_per_s, text: `${f(r.decode_tokens_per_s, 1)} tok/s`, color: r.backend === 'webgpu' ? colorFor(r.model, models) : '#bbb' }));
  const roof = rep.e2e.map((r) => ({ label: `${r.model} (${r.backend})`, value: r.fraction_of_roofline, text: pct(r.fraction_of_roofline), color: r.backend === 'webgpu' ? colorFor(r.model, models) : '#bbb' }));
  return [
    '<h2>End to end</h2>',
    table(['model', 'backend', 'prompt', 'decoded', 'TTFT ms', 'prefill tok/s', 'decode tok/s', 'generate tok/s', 'step ms', 'step MB', 'roofline ms', '% roofline', 'submits/step', 'dispatches/step', 'fixed ms', 'targets'], rows, 2),
    '<p class="note">fixed ms = dispatches × the measured per-dispatch cost + submissions × the measured submit-and-wait: what a step costs before it moves a byte.</p>',
    '<h3>Decode tokens/s</h3>',
    barChartSvg(bars),
    '<h3>Decode step: fraction of the roofline (bytes one step must read / streaming-read bandwidth)</h3>',
    barChartSvg(roof, { max: 1, marker: { value: 0.5, label: '50% target (small)' } }),
    profileSection(rep),
    `<p class="note">${rep.e2e.map((r) => `${esc(r.model)} / ${esc(r.backend)}: ${esc(r.method)}`).join('<br>')}</p>`,
  ].join('\n');
}

function profileSection(rep: BenchReport): string {
  const withProfile = rep.e2e.filter((r) => r.profile?.length);
  if (!withProfile.length) return '';
  const parts = ['<h3>Where a decode step goes</h3>',
    '<p class="note">Five more decode steps were recorded: their GPU time from timestamps added to their own passes (median), and each dispatch ' +
      'of the last one replayed alone for each kernel\'s share of it. Bars: the shares scaled to the GPU time; "host side" is the measured step minus the GPU time: encoding, submit, readback, JS.</p>'];
  for (const r of withProfile) {
    const kernels = r.profile!.map((k) => k.kernel);
    const gpuMs = r.kernel_ms ?? r.profile!.reduce((a, k) => a + k.ms, 0);
    const bars = r.profile!.map((k) => ({ label: `${k.kernel} (${k.dispatches}x)`, value: k.share * gpuMs, text: `${f(k.share * gpuMs, 3)} ms (${pct(k.share)})`, color: colorFor(k.kernel, kernels) }));
    const step = r.decode_step_ms;
    const host = Math.max(0, step - gpuMs);
    bars.push({ label: 'host side (step - GPU time)', value: host, text: `${f(host, 3)} ms`, color: '#bbb' });
    parts.push(`<h4>${esc(r.model)}: ${f(gpuMs, 3)} ms of GPU time in a ${f(step, 3)} ms step (${r.dispatches_per_decode_step ?? '?'} dispatches)</h4>`, barChartSvg(bars, { max: Math.max(step, gpuMs) }));
    const layers = layerDispatchLine(r);
    if (layers) parts.push(`<p class="note">${esc(layers)}</p>`);
  }
  return parts.join('\n');
}

function telemetrySection(list: MoeTelemetry[]): string {
  if (!list.length) return '';
  const parts = ['<h2>MoE expert load</h2>', '<p class="note">Routed selections per expert (token × slot), per MoE layer, from real runs. Dashed line: the mean (a perfectly even router). ' +
    'max/mean 1 and normalised entropy 1 are perfectly even.</p>'];
  for (const t of list) {
    parts.push(`<h3>${esc(t.model)} — ${esc(t.source)}, ${t.tokens} tokens, ${t.experts} experts, top-${t.topk}</h3>`);
    parts.push(
      table(['layer', 'tokens', 'max/mean', 'CV', 'norm. entropy', 'unused experts', 'top expert share'],
        t.layers.map((l) => [String(l.layer), String(l.tokens), f(l.max_over_mean), f(l.cv), f(l.normalized_entropy, 3), String(l.unused), pct(Math.max(...l.share))])),
    );
    parts.push('<div class="hists">');
    for (const l of t.layers) {
      const mean = l.counts.reduce((a, b) => a + b, 0) / Math.max(1, l.counts.length);
      parts.push(histogramSvg(l.counts, { title: `layer ${l.layer}`, mean }));
    }
    parts.push('</div>');
  }
  return parts.join('\n');
}

function targetsSection(rep: BenchReport): string {
  if (!rep.targets.length) return '';
  const rows = rep.targets.map((t) => [esc(t.id), esc(t.description), f(t.value, 3), f(t.threshold, 2), targetCell(t), esc(t.limited_by ?? '')]);
  const missed = rep.targets.filter((t) => !t.met).length;
  return `<h2>Targets</h2><p class="note">${rep.targets.length - missed} of ${rep.targets.length} met. Printed, never asserted.</p>` +
    table(['target', 'what', 'value', 'threshold', '', 'what limits it'], rows, 2, [-1]);
}

function ceilingSection(rep: BenchReport): string {
  const c = rep.ceilings;
  const bw = c.bandwidth.variants.map((v) => [esc(v.variant), f(v.gbps), f(v.ms, 3)]);
  const fm = c.fma.variants.map((v) => [esc(v.variant), f(v.gflops), f(v.ms, 3)]);
  return [
    '<h2>Ceilings (measured in this run)</h2>',
    `<p><b>${f(c.bandwidth_gbps)} GB/s</b> streaming read of ${fmtNum(c.bandwidth.bytes / 2 ** 20)} MiB (best: ${esc(c.bandwidth.best)}; sum ${c.bandwidth.verified ? 'verified' : '<b>NOT verified</b>'}) · ` +
      `<b>${f(c.fma_gflops)} GFLOP/s</b> f32 FMA (best: ${esc(c.fma.best)}). ` +
      (c.fp8_decode_gbps ? `FP8 decode from registers: <b>${f(c.fp8_decode_gbps)} GB/s</b> of weights (the dashed line on the roofline: the most an FP8 GEMV could read if its loads were free). ` : '') +
      `Fixed costs: <b>${f(c.dispatch_us, 1)} µs</b> per dispatch, <b>${f(c.submit_ms, 3)} ms</b> per submit-and-wait.` +
      (c.drift ? ` Measured before and after the kernels: ${c.drift.bandwidth_gbps.map((x) => f(x)).join(' / ')} GB/s, ${c.drift.fma_gflops.map((x) => f(x)).join(' / ')} GFLOP/s (the better is used).` : '') +
      '</p>',
    '<details><summary>all variants</summary>',
    table(['streaming-read variant', 'GB/s', 'ms'], bw),
    table(['FMA variant', 'GFLOP/s', 'ms'], fm),
    `<p class="note">${esc(c.bandwidth.method)}</p></details>`,
  ].join('\n');
}

export function renderHtml(rep: BenchReport): string {
  const a = rep.adapter;
  const title = `webmoe bench — ${adapterName(a)}`;
  const skipped = rep.skipped.length
    ? `<details><summary>${rep.skipped.length} skipped</summary>${table(['kernel', 'shape', 'variant', 'reason'], rep.skipped.map((s) => [esc(s.kernel), esc(s.shape), esc(s.variant ?? ''), esc(s.reason)]), 4)}</details>`
    : '';
  const json = JSON.stringify(rep).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${CSS}</style></head>
<body>
<h1>${esc(title)}</h1>
<p>${esc(a.vendor)} · ${esc(a.architecture)} · driver ${esc(a.driver)} · ${a.software ? 'software (CPU) adapter' : 'hardware adapter'} · ${esc(a.runtime)}${a.userAgent ? ` (${esc(a.userAgent)})` : ''}<br>
features: ${esc(a.features.join(', '))}<br>
run: ${esc(rep.created)}, suite ${esc(rep.settings.suite)}${rep.settings.full ? ' (--full)' : ''}, ${f(rep.duration_s, 0)} s</p>
${ceilingSection(rep)}
${targetsSection(rep)}
${kernelSection(rep)}
${e2eSection(rep)}
${telemetrySection(rep.telemetry)}
${skipped}
<script type="application/json" id="webmoe-bench-json">${json}</script>
</body></html>
`;
}
