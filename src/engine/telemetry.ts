/**
 * MoE telemetry: how evenly the router spreads work. Counts, per MoE layer, how many (token, slot) selections
 * each routed expert received in real runs, and summarises each layer (share per expert, max/mean, coefficient
 * of variation, normalised entropy, unused experts). Fed by the CPU reference's `layers.{i}.moe.topk_idx`
 * taps or by the GPU engine's router ids (read back only when a recorder is attached; a normal decode step
 * never reads them). Used by `webmoe bench e2e` (JSON + HTML histograms). No GPU or Node imports.
 *
 * Legend: E routed experts, K experts per token, T tokens.
 */
import type { TapMap } from '../model/taps.js';

export interface LayerLoad {
  layer: number;
  /** Routed selections per expert (length E): (token, slot) pairs. */
  counts: number[];
  /** counts / Σ counts: the share of routed work each expert received. */
  share: number[];
  /** Tokens that passed through this layer. */
  tokens: number;
  /** max(counts) / mean(counts): 1 = perfectly even. */
  max_over_mean: number;
  /** Coefficient of variation (std / mean) of counts: 0 = perfectly even. */
  cv: number;
  /** Shannon entropy of `share` / ln(E): 1 = perfectly even. */
  normalized_entropy: number;
  /** Experts that received no selection. */
  unused: number;
}

export interface MoeTelemetry {
  model: string;
  /** Which engine made the routing decisions ('webgpu', 'cpu-reference'). */
  source: string;
  experts: number;
  topk: number;
  /** Tokens routed per MoE layer (the largest layer count). */
  tokens: number;
  layers: LayerLoad[];
}

/** Accumulates expert selections per layer. */
export class ExpertLoadRecorder {
  private readonly counts = new Map<number, Uint32Array>();
  private readonly tokens = new Map<number, number>();

  constructor(readonly experts: number, readonly topk: number) {}

  /** Adds the ids of T tokens in one layer: ids [T, K] (any integer array; out-of-range ids throw). */
  add(layer: number, ids: ArrayLike<number>): void {
    let c = this.counts.get(layer);
    if (!c) this.counts.set(layer, (c = new Uint32Array(this.experts)));
    for (let i = 0; i < ids.length; i++) {
      const e = Number(ids[i]);
      if (!Number.isInteger(e) || e < 0 || e >= this.experts) throw new RangeError(`expert id ${e} at index ${i} of layer ${layer} is outside 0..${this.experts - 1}`);
      c[e]!++;
    }
    this.tokens.set(layer, (this.tokens.get(layer) ?? 0) + Math.floor(ids.length / this.topk));
  }

  /** Adds every `layers.{i}.moe.topk_idx` tap of one reference forward call. */
  addTaps(taps: TapMap): void {
    for (const [name, tap] of taps) {
      const m = /^layers\.(\d+)\.moe\.topk_idx$/.exec(name);
      if (m) this.add(Number(m[1]), tap.data);
    }
  }

  summary(model: string, source: string): MoeTelemetry {
    const layers = [...this.counts.keys()].sort((a, b) => a - b).map((l) => layerLoad(l, this.counts.get(l)!, this.tokens.get(l) ?? 0));
    return { model, source, experts: this.experts, topk: this.topk, tokens: Math.max(0, ...layers.map((l) => l.tokens)), layers };
  }
}

/** The statistics of one layer's counts. */
export function layerLoad(layer: number, counts: ArrayLike<number>, tokens: number): LayerLoad {
  const E = counts.length;
  const list = Array.from(counts);
  const total = list.reduce((a, b) => a + b, 0);
  const mean = total / E;
  const share = list.map((c) => (total > 0 ? c / total : 0));
  const variance = list.reduce((a, c) => a + (c - mean) ** 2, 0) / E;
  let entropy = 0;
  for (const p of share) if (p > 0) entropy -= p * Math.log(p);
  return {
    layer,
    counts: list,
    share,
    tokens,
    max_over_mean: mean > 0 ? Math.max(...list) / mean : 0,
    cv: mean > 0 ? Math.sqrt(variance) / mean : 0,
    normalized_entropy: E > 1 && total > 0 ? Math.min(1, entropy / Math.log(E)) : total > 0 ? 1 : 0,
    unused: list.filter((c) => c === 0).length,
  };
}
