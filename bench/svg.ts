/**
 * Tiny inline-SVG charts for the HTML report: a log-log roofline, horizontal bar charts and histograms.
 * Pure string building (no DOM, no dependencies), so the same code renders in Node and in the browser and
 * the report stays one self-contained file.
 */

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];

/** A stable color per key. */
export function colorFor(key: string, keys: readonly string[]): string {
  const i = keys.indexOf(key);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length]!;
}

function n(x: number, d = 1): string {
  return Number.isFinite(x) ? x.toFixed(d) : '0';
}

/** Tick values 1, 2, 5 × 10^k inside [lo, hi] (log axes). */
export function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  }
  return out;
}

export function fmtNum(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1000) return `${Math.round(v / 100) / 10}k`;
  if (a >= 10) return String(Math.round(v));
  if (a >= 1) return String(Math.round(v * 10) / 10);
  return String(Number(v.toPrecision(2)));
}

export interface RooflinePoint {
  /** FLOP per byte */
  x: number;
  /** GFLOP/s */
  y: number;
  label: string;
  group: string;
  hollow: boolean;
}

/** Log-log roofline: the bandwidth slope and the FMA ceiling, with one marker per kernel row. */
export function rooflineSvg(points: RooflinePoint[], bandwidthGbps: number, fmaGflops: number, width = 760, height = 440, extra?: { gbps: number; label: string }): string {
  const m = { l: 64, r: 170, t: 16, b: 48 };
  const ridge = fmaGflops / bandwidthGbps;
  const xs = points.map((p) => p.x).filter((x) => x > 0);
  const ys = points.map((p) => p.y).filter((y) => y > 0);
  const xLo = 10 ** Math.floor(Math.log10(Math.min(ridge, ...xs) / 2));
  const xHi = 10 ** Math.ceil(Math.log10(Math.max(ridge * 4, ...xs) * 2));
  const yLo = 10 ** Math.floor(Math.log10(Math.min(bandwidthGbps * xLo, ...ys) / 2));
  const yHi = 10 ** Math.ceil(Math.log10(fmaGflops * 2));
  const W = width - m.l - m.r;
  const H = height - m.t - m.b;
  const px = (x: number) => m.l + ((Math.log10(x) - Math.log10(xLo)) / (Math.log10(xHi) - Math.log10(xLo))) * W;
  const py = (y: number) => m.t + H - ((Math.log10(y) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo))) * H;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" class="roofline" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="roofline">`];
  for (const t of logTicks(xLo, xHi)) {
    parts.push(`<line x1="${n(px(t))}" y1="${m.t}" x2="${n(px(t))}" y2="${m.t + H}" stroke="#eee"/><text x="${n(px(t))}" y="${m.t + H + 16}" font-size="11" text-anchor="middle">${fmtNum(t)}</text>`);
  }
  for (const t of logTicks(yLo, yHi)) {
    parts.push(`<line x1="${m.l}" y1="${n(py(t))}" x2="${m.l + W}" y2="${n(py(t))}" stroke="#eee"/><text x="${m.l - 6}" y="${n(py(t) + 4)}" font-size="11" text-anchor="end">${fmtNum(t)}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W}" height="${H}" fill="none" stroke="#999"/>`);
  parts.push(`<text x="${m.l + W / 2}" y="${height - 10}" font-size="12" text-anchor="middle">arithmetic intensity (FLOP / byte)</text>`);
  parts.push(`<text x="14" y="${m.t + H / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${m.t + H / 2})">GFLOP/s</text>`);
  // the roofs: bandwidth slope up to the ridge, then the FMA ceiling
  const x0 = Math.max(xLo, yLo / bandwidthGbps);
  parts.push(
    `<polyline class="roof" fill="none" stroke="#333" stroke-width="2" points="${n(px(x0))},${n(py(bandwidthGbps * x0))} ${n(px(ridge))},${n(py(fmaGflops))} ${n(px(xHi))},${n(py(fmaGflops))}"/>`,
    `<text x="${n(px(ridge) + 6)}" y="${n(py(fmaGflops) - 6)}" font-size="11">FMA ${fmtNum(fmaGflops)} GFLOP/s</text>`,
    `<text x="${n(px(x0) + 8)}" y="${n(py(bandwidthGbps * x0) - 8)}" font-size="11" transform="rotate(-${n((Math.atan(H / W) * 180) / Math.PI * 0.9, 0)} ${n(px(x0) + 8)} ${n(py(bandwidthGbps * x0) - 8)})">read ${fmtNum(bandwidthGbps)} GB/s</text>`,
  );
  if (extra && extra.gbps > 0) {
    // a second, dashed slope (e.g. the FP8-decode ceiling), clipped at the FMA roof
    const e0 = Math.max(xLo, yLo / extra.gbps);
    const e1 = Math.min(xHi, fmaGflops / extra.gbps);
    if (e1 > e0) {
      parts.push(
        `<line class="roof-extra" x1="${n(px(e0))}" y1="${n(py(extra.gbps * e0))}" x2="${n(px(e1))}" y2="${n(py(extra.gbps * e1))}" stroke="#888" stroke-width="1.5" stroke-dasharray="6 4"/>`,
        `<text x="${n(px(e1) - 4)}" y="${n(py(extra.gbps * e1) + 14)}" font-size="11" fill="#555" text-anchor="end">${esc(extra.label)}</text>`,
      );
    }
  }
  const groups = [...new Set(points.map((p) => p.group))];
  for (const p of points) {
    if (!(p.x > 0 && p.y > 0)) continue;
    const c = colorFor(p.group, groups);
    const shape = p.hollow
      ? `<rect x="${n(px(p.x) - 4)}" y="${n(py(p.y) - 4)}" width="8" height="8" fill="white" stroke="${c}" stroke-width="1.5">`
      : `<circle cx="${n(px(p.x))}" cy="${n(py(p.y))}" r="4.5" fill="${c}" fill-opacity="0.85">`;
    parts.push(`${shape}<title>${esc(p.label)}</title>${p.hollow ? '</rect>' : '</circle>'}`);
  }
  groups.forEach((g, i) => {
    const y = m.t + 14 + i * 18;
    parts.push(`<circle cx="${m.l + W + 16}" cy="${y - 4}" r="5" fill="${colorFor(g, groups)}"/><text x="${m.l + W + 26}" y="${y}" font-size="12">${esc(g)}</text>`);
  });
  const ly = m.t + 14 + groups.length * 18 + 8;
  parts.push(
    `<circle cx="${m.l + W + 16}" cy="${ly - 4}" r="4.5" fill="#555"/><text x="${m.l + W + 26}" y="${ly}" font-size="12">optimised</text>`,
    `<rect x="${m.l + W + 12}" y="${ly + 10}" width="8" height="8" fill="white" stroke="#555" stroke-width="1.5"/><text x="${m.l + W + 26}" y="${ly + 18}" font-size="12">naive twin</text>`,
  );
  parts.push('</svg>');
  return parts.join('');
}

export interface Bar {
  label: string;
  value: number;
  /** Text after the bar (default: the value). */
  text?: string;
  color?: string;
  title?: string;
}

/** Horizontal bars; `max` fixes the scale (e.g. 1 for fractions); `marker` draws a vertical reference line. */
export function barChartSvg(bars: Bar[], opts: { max?: number; marker?: { value: number; label: string }; width?: number; labelWidth?: number } = {}): string {
  const width = opts.width ?? 1000;
  const lw = opts.labelWidth ?? 470;
  const rowH = 18;
  const height = 10 + bars.length * rowH + 24;
  const max = opts.max ?? Math.max(1e-12, ...bars.map((b) => b.value), opts.marker?.value ?? 0);
  const W = width - lw - 90;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" class="bars" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">`];
  bars.forEach((b, i) => {
    const y = 6 + i * rowH;
    const w = Math.max(0, Math.min(1, b.value / max)) * W;
    parts.push(
      `<text x="${lw - 6}" y="${y + 12}" font-size="11" text-anchor="end">${esc(b.label)}</text>`,
      `<rect x="${lw}" y="${y + 2}" width="${n(w)}" height="${rowH - 5}" fill="${b.color ?? '#1f77b4'}"><title>${esc(b.title ?? `${b.label}: ${b.text ?? fmtNum(b.value)}`)}</title></rect>`,
      `<text x="${n(lw + w + 4)}" y="${y + 12}" font-size="11">${esc(b.text ?? fmtNum(b.value))}</text>`,
    );
  });
  if (opts.marker) {
    const x = lw + Math.min(1, opts.marker.value / max) * W;
    parts.push(`<line x1="${n(x)}" y1="2" x2="${n(x)}" y2="${height - 20}" stroke="#333" stroke-dasharray="4 3"/><text x="${n(x)}" y="${height - 6}" font-size="11" text-anchor="middle">${esc(opts.marker.label)}</text>`);
  }
  parts.push('</svg>');
  return parts.join('');
}

/** Vertical histogram of counts (one bar per bucket), with a dashed line at `mean`. */
export function histogramSvg(counts: number[], opts: { title?: string; mean?: number; width?: number; height?: number; color?: string } = {}): string {
  const width = opts.width ?? 360;
  const height = opts.height ?? 140;
  const m = { l: 34, r: 8, t: opts.title ? 18 : 6, b: 20 };
  const W = width - m.l - m.r;
  const H = height - m.t - m.b;
  const max = Math.max(1, ...counts, opts.mean ?? 0);
  const bw = W / Math.max(1, counts.length);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" class="hist" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">`];
  if (opts.title) parts.push(`<text x="${m.l}" y="12" font-size="11">${esc(opts.title)}</text>`);
  counts.forEach((c, i) => {
    const h = (c / max) * H;
    parts.push(`<rect x="${n(m.l + i * bw)}" y="${n(m.t + H - h)}" width="${n(Math.max(0.5, bw - (bw > 3 ? 1 : 0)))}" height="${n(h)}" fill="${opts.color ?? '#2ca02c'}"><title>expert ${i}: ${c}</title></rect>`);
  });
  parts.push(`<line x1="${m.l}" y1="${m.t + H}" x2="${m.l + W}" y2="${m.t + H}" stroke="#999"/>`);
  parts.push(`<text x="${m.l - 4}" y="${m.t + 8}" font-size="10" text-anchor="end">${fmtNum(max)}</text><text x="${m.l - 4}" y="${m.t + H}" font-size="10" text-anchor="end">0</text>`);
  parts.push(`<text x="${m.l}" y="${height - 6}" font-size="10">expert 0</text><text x="${m.l + W}" y="${height - 6}" font-size="10" text-anchor="end">${counts.length - 1}</text>`);
  if (opts.mean !== undefined) {
    const y = m.t + H - (opts.mean / max) * H;
    parts.push(`<line x1="${m.l}" y1="${n(y)}" x2="${m.l + W}" y2="${n(y)}" stroke="#d62728" stroke-dasharray="4 3"><title>mean ${fmtNum(opts.mean)}</title></line>`);
  }
  parts.push('</svg>');
  return parts.join('');
}
