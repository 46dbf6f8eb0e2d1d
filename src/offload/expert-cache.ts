/**
 * The policy of one MoE layer's GPU expert cache: which routed experts occupy its S fixed slots. Pure and
 * deterministic (no clock, no randomness, ties broken by expert id), so the engine and the trace simulator
 * (simulate.ts) run the very same object and a policy is chosen by replaying routing traces.
 *
 * The caller says what a step needs (`use`), asks where an expert lives (`slotOf`), and admits experts that are
 * not resident (`admit`), naming the experts that must not be evicted to make room: the experts the current token
 * needs, the ones predicted for the next layer, the ones still being uploaded.
 *
 * Policies:
 *   'lru'  evict the least recently used expert;
 *   'lfu'  LFU with recency: evict the expert with the smallest exponentially decayed use count
 *          (count · decay^(steps since its last use)), ties to the least recently used. Plain LFU keeps experts
 *          that were popular long ago; the decay lets a shift in the topic of the text evict them.
 *
 * Legend: E experts in the layer, S slots (at least K), K experts per token.
 */
import { InputError } from '../errors.js';

export type CachePolicy = 'lru' | 'lfu';
export const CACHE_POLICIES: readonly CachePolicy[] = ['lru', 'lfu'];

export interface Admission {
  expert: number;
  slot: number;
  /** The expert that held the slot before, or null when the slot was free. */
  evicted: number | null;
}

export interface ExpertCacheOptions {
  policy?: CachePolicy;
  /** Per-step decay of the 'lfu' counts (default 0.95: a use weighs half after about 14 steps). */
  decay?: number;
}

export class ExpertCache {
  readonly policy: CachePolicy;
  private readonly decay: number;
  private readonly slotOfExpert: Int32Array; // [E] slot or -1
  private readonly expertInSlot: Int32Array; // [S] expert or -1
  private readonly lastUse: Float64Array; // [E] step of the last use, -Infinity when never used
  private readonly count: Float64Array; // [E] decayed use count as of lastUse
  private step = 0;
  private resident = 0;

  constructor(readonly experts: number, readonly slots: number, opts: ExpertCacheOptions = {}) {
    if (!Number.isInteger(experts) || experts < 1) throw new InputError(`expert cache: experts must be a positive integer, got ${experts}`, 'experts');
    if (!Number.isInteger(slots) || slots < 1) throw new InputError(`expert cache: slots must be a positive integer, got ${slots}`, 'slots');
    this.policy = opts.policy ?? 'lfu';
    if (!CACHE_POLICIES.includes(this.policy)) throw new InputError(`expert cache: unknown policy '${String(this.policy)}' (lru, lfu)`, 'policy');
    this.decay = opts.decay ?? 0.95;
    if (!(this.decay > 0 && this.decay <= 1)) throw new InputError(`expert cache: decay must be in (0, 1], got ${this.decay}`, 'decay');
    this.slotOfExpert = new Int32Array(experts).fill(-1);
    this.expertInSlot = new Int32Array(slots).fill(-1);
    this.lastUse = new Float64Array(experts).fill(-Infinity);
    this.count = new Float64Array(experts);
  }

  /** The slot holding `expert`, or undefined. Has no effect on the policy. */
  slotOf(expert: number): number | undefined {
    this.checkId(expert);
    const s = this.slotOfExpert[expert]!;
    return s < 0 ? undefined : s;
  }

  /** Experts resident now. */
  get size(): number {
    return this.resident;
  }

  /** Records that one step (one token at this layer) used `ids`, then advances the step. */
  use(ids: readonly number[]): void {
    for (const id of ids) {
      this.checkId(id);
      this.count[id] = this.decayedCount(id) + 1;
      this.lastUse[id] = this.step;
    }
    this.step++;
  }

  /**
   * Puts `expert` into a slot (a free one, else the victim the policy picks among experts not in `keep`) and
   * returns the assignment; an expert already resident keeps its slot. Null when every resident expert is kept.
   */
  admit(expert: number, keep: ReadonlySet<number> = new Set()): Admission | null {
    this.checkId(expert);
    const have = this.slotOfExpert[expert]!;
    if (have >= 0) return { expert, slot: have, evicted: null };
    let slot = this.resident < this.slots ? this.expertInSlot.indexOf(-1) : -1;
    let evicted: number | null = null;
    if (slot < 0) {
      evicted = this.victim(keep);
      if (evicted === null) return null;
      slot = this.slotOfExpert[evicted]!;
      this.slotOfExpert[evicted] = -1;
      this.resident--;
    }
    this.expertInSlot[slot] = expert;
    this.slotOfExpert[expert] = slot;
    this.resident++;
    return { expert, slot, evicted };
  }

  /** Empties a slot (e.g. an upload that failed). */
  evict(expert: number): void {
    const s = this.slotOf(expert);
    if (s === undefined) return;
    this.expertInSlot[s] = -1;
    this.slotOfExpert[expert] = -1;
    this.resident--;
  }

  private victim(keep: ReadonlySet<number>): number | null {
    let best: number | null = null;
    for (let s = 0; s < this.slots; s++) {
      const e = this.expertInSlot[s]!;
      if (e < 0 || keep.has(e)) continue;
      if (best === null || this.before(e, best)) best = e;
    }
    return best;
  }

  /** True when `a` should be evicted before `b`. */
  private before(a: number, b: number): boolean {
    if (this.policy === 'lfu') {
      const ca = this.decayedCount(a);
      const cb = this.decayedCount(b);
      if (ca !== cb) return ca < cb;
    }
    const la = this.lastUse[a]!;
    const lb = this.lastUse[b]!;
    if (la !== lb) return la < lb;
    return a < b;
  }

  private decayedCount(e: number): number {
    const last = this.lastUse[e]!;
    if (last === -Infinity) return 0;
    return this.count[e]! * Math.pow(this.decay, this.step - last);
  }

  private checkId(e: number): void {
    if (!Number.isInteger(e) || e < 0 || e >= this.experts) throw new InputError(`expert cache: expert id ${e} is outside 0..${this.experts - 1}`, 'expert');
  }
}
