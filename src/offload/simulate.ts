/**
 * Trace-driven simulator of expert offloading: replays a routing trace through one ExpertCache per MoE layer, a
 * single FIFO upload link and a lookahead predictor, and reports what the engine's telemetry reports (demand hits,
 * late prefetches, misses, stall time, bytes streamed, wasted prefetches, lookahead recall). Runs in CI in
 * seconds, so cache policies and prefetch settings are compared here before the engine runs them.
 *
 * Time model (units of t_c, the compute time of one MoE layer with every expert resident):
 *   - at the start of layer l the router's ids are known: each needed expert that is not resident is a *miss* and
 *     queues an upload; at the same moment the lookahead (the next layer's router on the current hidden state,
 *     simulated with recall p) queues prefetches for layer l+1 behind the misses;
 *   - one expert upload takes `uploadTime` (r · t_c for a link of (expert bytes) / (r · t_c) bytes/s), uploads run
 *     one after another;
 *   - layer l computes for t_c once its last needed expert has arrived; the wait before is the stall.
 * A *demand hit* is an expert resident (arrived) when its layer needs it; a *late prefetch* one still in flight
 * then; a prefetch evicted before any use is *wasted*.
 *
 * Legend: N tokens, L MoE layers, E experts, K experts per token, S slots per layer.
 */
import { InputError } from '../errors.js';
import { mulberry32 } from '../random.js';
import { ExpertCache, type CachePolicy } from './expert-cache.js';
import type { RoutingTrace } from './traces.js';

export interface SimOptions {
  /** Expert slots per MoE layer (at least K). */
  slots: number;
  policy: CachePolicy;
  /** Time to upload one expert, in units of one layer's compute time (r). */
  uploadTime: number;
  /** Simulated lookahead: recall p (default 0.9) and the most prefetches per layer (default K); false: none. */
  prefetch?: { recall?: number; cap?: number } | false;
  /** Bytes of one expert (for the byte counts; default 1). */
  expertBytes?: number;
  /** Tokens at the start that warm the cache and are left out of the counts (default 0). */
  warmupTokens?: number;
  /** Start with experts 0..S-1 resident, as a loader that fills the slots does (default true); false: empty. */
  preload?: boolean;
  seed?: number;
}

export interface SimResult {
  tokens: number;
  lookups: number;
  demandHits: number;
  latePrefetches: number;
  misses: number;
  /** demandHits / lookups */
  hitRate: number;
  prefetchesIssued: number;
  prefetchesUsed: number;
  wastedPrefetches: number;
  /** Share of the next layer's true experts the predictor named. */
  lookaheadRecall: number;
  stall: number;
  time: number;
  /** The all-resident time of the same tokens: N · L · t_c. */
  idealTime: number;
  /** idealTime / time: decode speed relative to all-resident. */
  speed: number;
  bytesStreamed: number;
  wastedBytes: number;
}

interface LayerState {
  cache: ExpertCache;
  arrival: Float64Array; // [E] time the resident copy arrived (or arrives)
  prefetched: Uint8Array; // [E] 1: resident by prefetch and not used since
}

export function simulate(trace: RoutingTrace, o: SimOptions): SimResult {
  const E = trace.experts;
  const K = trace.topK;
  const L = trace.layers.length;
  if (!Number.isInteger(o.slots) || o.slots < K) throw new InputError(`simulate: ${o.slots} slots per layer cannot hold the ${K} experts one token needs`, 'slots');
  if (!(o.uploadTime >= 0)) throw new InputError(`simulate: uploadTime must be >= 0, got ${o.uploadTime}`, 'uploadTime');
  const pf = o.prefetch === false ? null : { recall: o.prefetch?.recall ?? 0.9, cap: o.prefetch?.cap ?? K };
  const bytes = o.expertBytes ?? 1;
  const warm = o.warmupTokens ?? 0;
  const rand = mulberry32(o.seed ?? 7);
  const layers: LayerState[] = trace.layers.map(() => ({
    cache: new ExpertCache(E, o.slots, { policy: o.policy }),
    arrival: new Float64Array(E),
    prefetched: new Uint8Array(E),
  }));
  if (o.preload ?? true) for (const st of layers) for (let e = 0; e < Math.min(o.slots, E); e++) st.cache.admit(e);
  const r = zeroResult();
  let now = 0;
  let linkFree = 0;
  let recallHits = 0;
  let recallTotal = 0;
  const upload = (issue: number): number => {
    linkFree = Math.max(linkFree, issue) + o.uploadTime;
    return linkFree;
  };

  trace.tokens.forEach((tok, t) => {
    const counted = t >= warm;
    for (let l = 0; l < L; l++) {
      const st = layers[l]!;
      const need = tok[l]!;
      const keep = new Set(need);
      const start = now;
      let ready = start;
      for (const e of need) {
        if (st.cache.slotOf(e) !== undefined) {
          if (st.arrival[e]! <= start) {
            if (counted) r.demandHits++;
          } else if (counted) r.latePrefetches++;
          if (st.prefetched[e]) {
            st.prefetched[e] = 0;
            if (counted) r.prefetchesUsed++;
          }
        } else {
          admit(st, e, keep, counted, r, bytes);
          st.arrival[e] = upload(start);
          if (counted) r.misses++;
        }
        ready = Math.max(ready, st.arrival[e]!);
      }
      st.cache.use(need);
      if (pf && l + 1 < L) {
        const next = layers[l + 1]!;
        const truth = tok[l + 1]!;
        const guess = predict(truth, pf.recall, E, rand);
        if (counted) {
          const truthSet = new Set(truth);
          recallHits += guess.filter((e) => truthSet.has(e)).length;
          recallTotal += truth.length;
        }
        const protect = new Set(guess);
        for (let e = 0; e < E; e++) if (next.cache.slotOf(e) !== undefined && next.arrival[e]! > start) protect.add(e);
        let issued = 0;
        for (const e of guess) {
          if (issued >= pf.cap) break;
          if (next.cache.slotOf(e) !== undefined) continue;
          if (!admit(next, e, protect, counted, r, bytes)) continue;
          next.arrival[e] = upload(start);
          next.prefetched[e] = 1;
          issued++;
          if (counted) r.prefetchesIssued++;
        }
      }
      if (counted) {
        r.lookups += need.length;
        r.stall += ready - start;
        r.time += ready - start + 1;
      }
      now = ready + 1;
    }
    if (counted) r.tokens++;
  });
  r.idealTime = r.tokens * L;
  r.speed = r.time > 0 ? r.idealTime / r.time : 1;
  r.hitRate = r.lookups > 0 ? r.demandHits / r.lookups : 1;
  r.lookaheadRecall = recallTotal > 0 ? recallHits / recallTotal : 0;
  r.wastedBytes = r.wastedPrefetches * bytes;
  return r;
}

/** Admits `e` into the layer's cache; an evicted, never-used prefetch counts as wasted. */
function admit(st: LayerState, e: number, keep: ReadonlySet<number>, counted: boolean, r: SimResult, bytes: number): boolean {
  const a = st.cache.admit(e, keep);
  if (!a) return false;
  if (a.evicted !== null && st.prefetched[a.evicted]) {
    st.prefetched[a.evicted] = 0;
    if (counted) r.wastedPrefetches++;
  }
  if (counted) r.bytesStreamed += bytes;
  return true;
}

/** The lookahead predictor simulated with recall p: each true id with probability p, else a random other expert. */
function predict(truth: readonly number[], p: number, E: number, rand: () => number): number[] {
  const out = new Set<number>();
  for (const e of truth) if (rand() < p) out.add(e);
  while (out.size < Math.min(truth.length, E)) out.add(Math.floor(rand() * E));
  return [...out];
}

function zeroResult(): SimResult {
  return {
    tokens: 0, lookups: 0, demandHits: 0, latePrefetches: 0, misses: 0, hitRate: 0, prefetchesIssued: 0, prefetchesUsed: 0,
    wastedPrefetches: 0, lookaheadRecall: 0, stall: 0, time: 0, idealTime: 0, speed: 0, bytesStreamed: 0, wastedBytes: 0,
  };
}
