/**
 * Timing for `webmoe bench` (docs/kernels.md §3.7). One op (an EncodedOp: the dispatches of one kernel call) is
 *   1. warmed up: pipelines are compiled before (by the op's setup), then `warmup` submissions run it so that
 *      Dawn's lazy first-use clears and the first mapAsync of the timestamp readback happen outside the samples;
 *   2. calibrated: one more submission measures one call, which sets `inner`, the calls per timed pass, so that
 *      a pass lasts at least `targetPassMs` (coarse timestamps: Chrome quantises to 100 µs, so >= 10 ms keeps
 *      that error under 1 %; wall clock: the ~0.2-2 ms submit + wait overhead becomes a few percent);
 *   3. sampled: `repeats` submissions, each one compute pass holding `inner` calls. With `timestamp-query`
 *      the pass's begin/end timestamps give the GPU time (pairs that are zero or reversed are rejected, as
 *      Metal and some drivers produce them); wall time around submit + onSubmittedWorkDone is recorded too.
 *      Without timestamps (or when most pairs were rejected) the wall time is the measurement.
 * The result is the median per call, with the method written out so every row says how it was measured.
 * Browser-safe: no Node imports (performance.now exists in both).
 */
import type { GpuContext } from '../src/gpu/device.js';
import type { EncodedOp } from './naive.js';

export interface TimingOptions {
  /** Timed samples (submissions); the median is reported. */
  repeats: number;
  /** Untimed submissions before calibration. */
  warmup: number;
  /** Calls per timed pass are chosen so a pass lasts at least this long. */
  targetPassMs: number;
  /** Upper bound on calls per timed pass. */
  maxInner: number;
  /** Use timestamps when the device has them ('auto'), or force wall-clock. */
  method: 'auto' | 'wall';
  /** When one sample would take longer than this, take only `minRepeats` samples. */
  longSampleMs: number;
  minRepeats: number;
}

export const DEFAULT_TIMING: TimingOptions = {
  repeats: 7,
  warmup: 2,
  targetPassMs: 25,
  maxInner: 256,
  method: 'auto',
  longSampleMs: 1500,
  minRepeats: 3,
};

export interface Timing {
  /** Median time per call (ms): the GPU time when `timer` is 'timestamp', else wall time. */
  ms: number;
  /** Fastest and slowest sample, per call (ms). */
  minMs: number;
  maxMs: number;
  /** Median wall time per call (ms), submit to onSubmittedWorkDone: includes host overhead. */
  wallMs: number;
  timer: 'timestamp' | 'wall';
  /** Calls per timed pass. */
  inner: number;
  /** Samples that the median was taken over. */
  samples: number;
  /** Timestamp pairs rejected as zero or reversed. */
  rejected: number;
  /** Greatest common divisor of the timestamp deltas (ns): shows timestamp quantisation (1 = none visible). */
  resolutionNs?: number;
  /** Human-readable, written into each row. */
  method: string;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Durations (ns) of begin/end pairs; a pair with a zero, or an end not after its begin, is null. */
export function validPairs(stamps: ArrayLike<bigint>): Array<number | null> {
  const out: Array<number | null> = [];
  for (let i = 0; i + 1 < stamps.length; i += 2) {
    const b = stamps[i]!;
    const e = stamps[i + 1]!;
    out.push(b === 0n || e === 0n || e <= b ? null : Number(e - b));
  }
  return out;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Calls per timed pass for an op that takes `oneMs` per call. */
export function chooseInner(oneMs: number, opts: Pick<TimingOptions, 'targetPassMs' | 'maxInner'>): number {
  if (!(oneMs > 0)) return opts.maxInner;
  return Math.max(1, Math.min(opts.maxInner, Math.ceil(opts.targetPassMs / oneMs)));
}

const QUERY_RESOLVE = 0x0200;
const COPY_SRC = 0x0004;
const COPY_DST = 0x0008;
const MAP_READ = 0x0001;

/**
 * The three stages of timing one op, separately callable so several ops can be sampled round-robin
 * (`timeInterleaved`): on a machine shared with other work, interleaving makes a naive/optimised pair see the
 * same load, so their ratio stays meaningful even when the absolute times drift.
 */
export class OpTimer {
  private readonly opts: TimingOptions;
  private readonly useTs: boolean;
  private readonly querySet: GPUQuerySet | null;
  private readonly resolveBuf: GPUBuffer | null;
  private readonly readback: GPUBuffer | null;
  private inner = 1;
  /** Samples this op will take (fewer for long ops, see TimingOptions.longSampleMs). */
  repeats = 0;
  private readonly walls: number[] = [];

  constructor(private readonly gpu: GpuContext, private readonly op: EncodedOp, options: Partial<TimingOptions> = {}) {
    this.opts = { ...DEFAULT_TIMING, ...options };
    const device = gpu.device;
    this.useTs = this.opts.method === 'auto' && gpu.features.has('timestamp-query');
    const slots = Math.max(this.opts.repeats, 1) + 1; // + the calibration pass
    this.querySet = this.useTs ? device.createQuerySet({ type: 'timestamp', count: 2 * slots, label: 'bench timestamps' }) : null;
    this.resolveBuf = this.useTs ? device.createBuffer({ size: 16 * slots, usage: QUERY_RESOLVE | COPY_SRC, label: 'bench resolve' }) : null;
    this.readback = this.useTs ? device.createBuffer({ size: 16 * slots, usage: MAP_READ | COPY_DST, label: 'bench readback' }) : null;
  }

  /** One submission with one pass of `inner` calls; returns its wall time (ms). */
  private async submit(inner: number, slot: number | null): Promise<number> {
    const { gpu, op, querySet } = this;
    const device = gpu.device;
    gpu.check();
    op.prepare?.();
    const enc = device.createCommandEncoder({ label: 'bench' });
    const pass = enc.beginComputePass(
      querySet && slot !== null ? { timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * slot, endOfPassWriteIndex: 2 * slot + 1 } } : {},
    );
    for (let i = 0; i < inner; i++) op.encode(pass);
    pass.end();
    op.finish?.();
    const cmd = enc.finish();
    const t0 = performance.now();
    device.queue.submit([cmd]);
    await device.queue.onSubmittedWorkDone();
    const dt = performance.now() - t0;
    gpu.check();
    return dt;
  }

  private async readStamps(count: number): Promise<bigint[]> {
    const device = this.gpu.device;
    const enc = device.createCommandEncoder({ label: 'bench resolve' });
    enc.resolveQuerySet(this.querySet!, 0, 2 * count, this.resolveBuf!, 0);
    enc.copyBufferToBuffer(this.resolveBuf!, 0, this.readback!, 0, 16 * count);
    device.queue.submit([enc.finish()]);
    await this.readback!.mapAsync(MAP_READ);
    const stamps = Array.from(new BigUint64Array(this.readback!.getMappedRange(0, 16 * count)));
    this.readback!.unmap();
    return stamps;
  }

  /** Warm-up (compile, first-use clears, first mapAsync), then one timed call that sets calls per pass. */
  async calibrate(): Promise<void> {
    const ts = this.useTs ? 0 : null;
    for (let i = 0; i < this.opts.warmup; i++) {
      // one warm-up is enough for a long op: compile and first-use costs are then a small share of it
      if ((await this.submit(1, ts)) > this.opts.longSampleMs) break;
    }
    if (this.useTs) await this.readStamps(1);
    let one = await this.submit(1, ts);
    if (this.useTs) {
      const d = validPairs(await this.readStamps(1))[0];
      if (d !== null && d !== undefined) one = d / 1e6;
    }
    this.inner = chooseInner(one, this.opts);
    this.repeats = one * this.inner > this.opts.longSampleMs ? Math.min(this.opts.repeats, this.opts.minRepeats) : this.opts.repeats;
  }

  /** Takes the next sample; false once `repeats` were taken. */
  async sample(): Promise<boolean> {
    if (this.walls.length >= this.repeats) return false;
    this.walls.push((await this.submit(this.inner, this.useTs ? this.walls.length : null)) / this.inner);
    return true;
  }

  /** The median of the samples (reads the timestamps back), and releases the query resources. */
  async result(note = ''): Promise<Timing> {
    const { walls, inner } = this;
    const repeats = walls.length;
    try {
      const wallMs = median(walls);
      const dispatches = `${inner} call${inner > 1 ? 's' : ''} (${inner * this.op.dispatches} dispatches) per pass${note}`;
      if (this.useTs) {
        const pairs = validPairs(await this.readStamps(repeats));
        const good = pairs.filter((d): d is number => d !== null);
        const rejected = pairs.length - good.length;
        if (good.length * 2 > pairs.length) {
          const per = good.map((ns) => ns / 1e6 / inner);
          return {
            ms: median(per),
            minMs: Math.min(...per),
            maxMs: Math.max(...per),
            wallMs,
            timer: 'timestamp',
            inner,
            samples: good.length,
            rejected,
            resolutionNs: good.reduce((g, d) => gcd(g, d), 0),
            method: `timestamp-query (pass begin/end): median of ${good.length} passes, ${dispatches}${rejected ? `, ${rejected} invalid pairs rejected` : ''}`,
          };
        }
        return wallResult(walls, wallMs, inner, rejected, `wall-clock (timestamps invalid: ${rejected} of ${pairs.length} pairs zero or reversed): median of ${repeats} submissions, ${dispatches}`);
      }
      return wallResult(walls, wallMs, inner, 0, `wall-clock (submit to onSubmittedWorkDone): median of ${repeats} submissions, ${dispatches}`);
    } finally {
      this.destroy();
    }
  }

  destroy(): void {
    this.querySet?.destroy();
    this.resolveBuf?.destroy();
    this.readback?.destroy();
  }
}

/** Times `op` on `gpu` (see the file header). */
export async function timeOp(gpu: GpuContext, op: EncodedOp, options: Partial<TimingOptions> = {}): Promise<Timing> {
  const t = new OpTimer(gpu, op, options);
  try {
    await t.calibrate();
    while (await t.sample());
    return await t.result();
  } catch (err) {
    t.destroy();
    throw err;
  }
}

/**
 * Times several ops on the same data with their samples interleaved round-robin (A B C A B C ...), each op with
 * its own calls per pass. A failing op gives its error in place of its timing; the others go on.
 */
export async function timeInterleaved(gpu: GpuContext, ops: EncodedOp[], options: Partial<TimingOptions> = {}): Promise<Array<Timing | Error>> {
  const timers = ops.map((op) => new OpTimer(gpu, op, options));
  const out: Array<Timing | Error | undefined> = ops.map(() => undefined);
  const fail = (i: number, err: unknown) => {
    out[i] = err instanceof Error ? err : new Error(String(err));
    timers[i]!.destroy();
    gpu.check(); // a lost device ends the run
  };
  for (const [i, t] of timers.entries()) {
    try {
      await t.calibrate();
    } catch (err) {
      fail(i, err);
    }
  }
  for (let more = true; more; ) {
    more = false;
    for (const [i, t] of timers.entries()) {
      if (out[i]) continue;
      try {
        if (await t.sample()) more = true;
      } catch (err) {
        fail(i, err);
      }
    }
  }
  const note = ops.length > 1 ? `, samples interleaved with ${ops.length - 1} other variant${ops.length > 2 ? 's' : ''}` : '';
  for (const [i, t] of timers.entries()) {
    if (out[i]) continue;
    try {
      out[i] = await t.result(note);
    } catch (err) {
      fail(i, err);
    }
  }
  return out as Array<Timing | Error>;
}

function wallResult(walls: number[], wallMs: number, inner: number, rejected: number, method: string): Timing {
  return { ms: wallMs, minMs: Math.min(...walls), maxMs: Math.max(...walls), wallMs, timer: 'wall', inner, samples: walls.length, rejected, method };
}
