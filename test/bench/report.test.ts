/**
 * The HTML report and the text summary (bench/report-html.ts, bench/summary.ts): one self-contained file with a
 * roofline of every kernel row against both measured ceilings, bar charts, expert-load histograms, the targets
 * and the JSON itself. Format only.
 */
import { describe, expect, it } from 'vitest';
import { renderHtml } from '../../bench/report-html.js';
import { formatSummary } from '../../bench/summary.js';
import { formatMarkdown } from '../../bench/markdown.js';
import { esc, logTicks, rooflineSvg } from '../../bench/svg.js';
import { sampleReport } from './fixtures.js';

describe('bench HTML report', () => {
  const report = sampleReport();
  const html = renderHtml(report);

  it('is one self-contained file: no external resource, no executable script', () => {
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/<(script|img|link|iframe)[^>]+(src|href)=/i);
    expect(html).not.toMatch(/url\(\s*['"]?https?:/i);
    expect(html).not.toMatch(/@import/);
    const scripts = html.match(/<script\b[^>]*>/g) ?? [];
    expect(scripts).toEqual(['<script type="application/json" id="webmoe-bench-json">']);
  });

  it('embeds the JSON report unchanged', () => {
    const m = /<script type="application\/json" id="webmoe-bench-json">([\s\S]*?)<\/script>/.exec(html);
    expect(JSON.parse(m![1]!)).toEqual(JSON.parse(JSON.stringify(report)));
  });

  it('plots every kernel row on the roofline, with the bandwidth and FMA lines', () => {
    const svg = /<svg[^>]*class="roofline"[\s\S]*?<\/svg>/.exec(html)![0];
    const markers = (svg.match(/<circle cx=[^>]*fill-opacity/g) ?? []).length + (svg.match(/<rect x="[^"]*" y="[^"]*" width="8" height="8" fill="white"/g) ?? []).length;
    expect(markers).toBe(report.kernels.length + 1); // + the 'naive twin' legend square
    expect(svg).toContain('class="roof"');
    expect(svg).toContain('FMA 40 GFLOP/s');
    expect(svg).toContain('read 10 GB/s');
  });

  it('has the bar charts, the expert-load histograms and the targets', () => {
    expect((html.match(/class="bars"/g) ?? []).length).toBeGreaterThanOrEqual(4); // bandwidth, speedup, e2e x2 (+ profile)
    expect((html.match(/class="hist"/g) ?? []).length).toBe(report.telemetry.reduce((n, t) => n + t.layers.length, 0));
    for (const t of report.targets) expect(html.includes(esc(t.description)), t.description).toBe(true);
    expect(html.includes('not met')).toBe(true);
  });

  it('escapes text from the adapter', () => {
    const r = sampleReport();
    r.adapter.description = '<b>evil</b> & co';
    const h = renderHtml(r);
    expect(h.includes('&lt;b&gt;evil&lt;/b&gt; &amp; co')).toBe(true);
    expect(h.includes('<b>evil</b>')).toBe(false);
  });

  it('prints a summary with every row, the targets and what limits the unmet ones', () => {
    const s = formatSummary(report);
    expect(s).toContain('10.00 GB/s streaming read');
    for (const k of report.kernels) expect(s).toContain(k.shape);
    expect(s).toMatch(/targets: \d+ of \d+ met/);
    for (const t of report.targets.filter((x) => !x.met)) expect(s).toContain(`limited by: ${t.limited_by}`);
  });

  it('renders Markdown tables with the device, the ceilings, the rows and the unmet targets', () => {
    const md = formatMarkdown(report);
    expect(md).toContain('llvmpipe (LLVM 15) (mesa, lavapipe, Dawn in Node)');
    expect(md).toContain('**10.00 GB/s** streaming read');
    expect(md).toMatch(/\| fp8_gemv \| kimi expert gate\/up 7168->2048 \| fp8_gemv \| 20.000 \|/);
    expect(md).toContain('| 3.00x |');
    for (const t of report.targets.filter((x) => !x.met)) expect(md).toContain(t.limited_by!);
  });

  it('log ticks and a roofline with no points stay finite', () => {
    expect(logTicks(0.1, 10)).toEqual([0.1, 0.2, 0.5, 1, 2, 5, 10]);
    expect(rooflineSvg([], 10, 40)).not.toMatch(/NaN|Infinity/);
    expect(/NaN|Infinity/.test(html)).toBe(false);
  });
});
