/**
 * Routing traces: which routed experts every token selected in every MoE layer. Recorded from a model
 * (`--record-routing FILE`), generated with chosen statistics (`syntheticTrace`), summarised (`traceStats`) and
 * replayed through the expert-cache simulator (simulate.ts).
 *
 * File format (JSON, `format: "webmoe-routing/1"`):
 *   { "format": "webmoe-routing/1", "experts": E, "topK": K, "layers": [ids of the MoE layers],
 *     "tokens": [ [ [K expert ids of layer layers[0]], ..., [K ids of layer layers[L-1]] ], ... ] }
 *
 * Legend: N tokens, L MoE layers, E experts per layer, K experts per token.
 */
import { FormatError } from '../errors.js';
import { mulberry32 } from '../random.js';

export const TRACE_FORMAT = 'webmoe-routing/1';

export interface RoutingTrace {
  experts: number;
  topK: number;
  /** Model layer index of each traced MoE layer. */
  layers: number[];
  /** [N][L][K] expert ids. */
  tokens: number[][][];
}

/** Validates a parsed trace file: every id in range, K distinct ids per token and layer. */
export function parseTrace(json: unknown, file = 'routing trace'): RoutingTrace {
  const fail = (msg: string): never => {
    throw new FormatError(msg, file);
  };
  if (typeof json !== 'object' || json === null) return fail('not a JSON object');
  const o = json as Record<string, unknown>;
  if (o.format !== TRACE_FORMAT) fail(`format is ${JSON.stringify(o.format)}, expected "${TRACE_FORMAT}"`);
  const E = o.experts;
  const K = o.topK;
  if (!Number.isInteger(E) || (E as number) < 1) fail(`experts must be a positive integer, got ${JSON.stringify(E)}`);
  if (!Number.isInteger(K) || (K as number) < 1 || (K as number) > (E as number)) fail(`topK must be an integer in 1..experts, got ${JSON.stringify(K)}`);
  if (!Array.isArray(o.layers) || !o.layers.every((l) => Number.isInteger(l) && l >= 0)) fail('layers must be an array of layer indices');
  const layers = o.layers as number[];
  if (!Array.isArray(o.tokens)) return fail('tokens must be an array');
  const tokens = o.tokens as unknown[];
  tokens.forEach((tok, t) => {
    if (!Array.isArray(tok) || tok.length !== layers.length) fail(`token ${t}: expected ${layers.length} layers of ids`);
    (tok as unknown[]).forEach((ids, l) => {
      if (!Array.isArray(ids) || ids.length !== K) fail(`token ${t}, layer ${layers[l]}: expected ${K} expert ids`);
      const seen = new Set<number>();
      for (const id of ids as unknown[]) {
        if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= (E as number)) fail(`token ${t}, layer ${layers[l]}: expert id ${JSON.stringify(id)} outside 0..${(E as number) - 1}`);
        if (seen.has(id as number)) fail(`token ${t}, layer ${layers[l]}: expert ${id} selected twice`);
        seen.add(id as number);
      }
    });
  });
  return { experts: E as number, topK: K as number, layers, tokens: tokens as number[][][] };
}

export function serializeTrace(t: RoutingTrace): string {
  return JSON.stringify({ format: TRACE_FORMAT, experts: t.experts, topK: t.topK, layers: t.layers, tokens: t.tokens });
}

/** Per-layer statistics of a trace (the ones expert offloading depends on). */
export interface LayerStats {
  layer: number;
  /** P(an expert a token selected is selected again by the next token). */
  reuse: number;
  /** Share of all selections that go to the most used quarter of the experts. */
  topQuarterShare: number;
  /** Load of the most used expert over the mean load. */
  maxOverMean: number;
  /** Experts never selected. */
  unused: number;
}

export function traceStats(t: RoutingTrace): LayerStats[] {
  return t.layers.map((layer, l) => {
    const load = new Float64Array(t.experts);
    let again = 0;
    let pairs = 0;
    t.tokens.forEach((tok, i) => {
      const ids = tok[l]!;
      for (const e of ids) load[e]!++;
      if (i > 0) {
        const prev = new Set(t.tokens[i - 1]![l]!);
        for (const e of ids) if (prev.has(e)) again++;
        pairs += ids.length;
      }
    });
    const total = t.tokens.length * t.topK;
    const sorted = Array.from(load).sort((a, b) => b - a);
    const quarter = Math.max(1, Math.round(t.experts / 4));
    const top = sorted.slice(0, quarter).reduce((a, b) => a + b, 0);
    const mean = total / t.experts;
    return {
      layer,
      reuse: pairs > 0 ? again / pairs : 0,
      topQuarterShare: total > 0 ? top / total : 0,
      maxOverMean: mean > 0 ? sorted[0]! / mean : 0,
      unused: sorted.filter((x) => x === 0).length,
    };
  });
}

export interface SyntheticTraceOptions {
  experts: number;
  topK: number;
  layers: number;
  tokens: number;
  /** Target P(an expert is selected again by the next token); default 0.55. */
  reuse?: number;
  /** Target share of selections taken by the most used quarter of the experts; default 0.70. */
  topQuarterShare?: number;
  seed?: number;
}

/**
 * A seeded trace with about the requested locality. Each layer has its own popularity order (a random
 * permutation of the experts) with Zipf weights 1/rank^s; each token keeps each of the previous token's experts
 * with probability ρ and fills the rest by popularity-weighted sampling without replacement. s and ρ are found by
 * bisection on short calibration traces, so the statistics hold for any E and K (report `traceStats` of the result,
 * not the targets).
 */
export function syntheticTrace(o: SyntheticTraceOptions): RoutingTrace {
  const reuse = o.reuse ?? 0.55;
  const share = o.topQuarterShare ?? 0.7;
  const seed = o.seed ?? 1;
  const calib = Math.min(400, Math.max(100, o.tokens));
  // layers are independent and alike: two suffice to calibrate
  const c = { ...o, layers: Math.min(o.layers, 2) };
  const mean = (t: RoutingTrace, f: (st: LayerStats) => number) => traceStats(t).reduce((a, st) => a + f(st), 0) / t.layers.length;
  // popularity skew first (with ρ = 0 every token samples fresh), then stickiness at that skew
  const s = bisect((x) => mean(generate(c, x, 0, calib, seed), (st) => st.topQuarterShare), share, 0, 4);
  const rho = bisect((x) => mean(generate(c, s, x, calib, seed), (st) => st.reuse), reuse, 0, 1);
  return generate(o, s, rho, o.tokens, seed);
}

/** x in [lo, hi] where the increasing f(x) is closest to target (16 halvings). */
function bisect(f: (x: number) => number, target: number, lo: number, hi: number): number {
  for (let i = 0; i < 16; i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) < target) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

function generate(o: SyntheticTraceOptions, s: number, rho: number, n: number, seed: number): RoutingTrace {
  const rand = mulberry32(seed);
  const E = o.experts;
  const K = o.topK;
  const popularity = Array.from({ length: o.layers }, () => {
    const perm = shuffle(Array.from({ length: E }, (_, i) => i), rand);
    const w = new Float64Array(E);
    perm.forEach((e, rank) => (w[e] = 1 / Math.pow(rank + 1, s)));
    return w;
  });
  const tokens: number[][][] = [];
  let prev: number[][] | null = null;
  for (let t = 0; t < n; t++) {
    const tok = popularity.map((w, l) => {
      const chosen = new Set<number>();
      if (prev) for (const e of prev[l]!) if (rand() < rho) chosen.add(e);
      while (chosen.size < K) chosen.add(weightedPick(w, chosen, rand));
      return [...chosen];
    });
    tokens.push(tok);
    prev = tok;
  }
  return { experts: E, topK: K, layers: Array.from({ length: o.layers }, (_, i) => i), tokens };
}

function weightedPick(w: Float64Array, exclude: ReadonlySet<number>, rand: () => number): number {
  let total = 0;
  for (let e = 0; e < w.length; e++) if (!exclude.has(e)) total += w[e]!;
  let r = rand() * total;
  let last = -1;
  for (let e = 0; e < w.length; e++) {
    if (exclude.has(e)) continue;
    last = e;
    r -= w[e]!;
    if (r < 0) return e;
  }
  return last;
}

function shuffle<T>(a: T[], rand: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Uniform random routing: the honest worst case for any cache. */
export function uniformTrace(o: Omit<SyntheticTraceOptions, 'reuse' | 'topQuarterShare'>): RoutingTrace {
  const rand = mulberry32(o.seed ?? 1);
  const w = new Float64Array(o.experts).fill(1);
  const tokens = Array.from({ length: o.tokens }, () =>
    Array.from({ length: o.layers }, () => {
      const chosen = new Set<number>();
      while (chosen.size < o.topK) chosen.add(weightedPick(w, chosen, rand));
      return [...chosen];
    }),
  );
  return { experts: o.experts, topK: o.topK, layers: Array.from({ length: o.layers }, (_, i) => i), tokens };
}
