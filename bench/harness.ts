/**
 * Timing for `webmoe bench` (kernels.md §3.7). One op (an EncodedOp: the dispatches of one kernel call) is
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

/** Times `op` on `gpu` (see the file header). */
export async function timeOp(gpu: GpuContext, op: EncodedOp, options: Partial<TimingOptions> = {}): Promise<Timing> {
  const opts = { ...DEFAULT_TIMING, ...options };
  const device = gpu.device;
  const useTs = opts.method === 'auto' && gpu.features.has('timestamp-query');
  const maxSamples = Math.max(opts.repeats, 1) + 1; // + the calibration pass
  const querySet = useTs ? device.createQuerySet({ type: 'timestamp', count: 2 * maxSamples, label: 'bench timestamps' }) : null;
  const resolve = useTs ? device.createBuffer({ size: 16 * maxSamples, usage: QUERY_RESOLVE | COPY_SRC, label: 'bench resolve' }) : null;
  const readback = useTs ? device.createBuffer({ size: 16 * maxSamples, usage: MAP_READ | COPY_DST, label: 'bench readback' }) : null;

  /** One submission with one pass of `inner` calls; returns its wall time (ms). */
  const submit = async (inner: number, slot: number | null): Promise<number> => {
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
  };
  const readStamps = async (count: number): Promise<bigint[]> => {
    const enc = device.createCommandEncoder({ label: 'bench resolve' });
    enc.resolveQuerySet(querySet!, 0, 2 * count, resolve!, 0);
    enc.copyBufferToBuffer(resolve!, 0, readback!, 0, 16 * count);
    device.queue.submit([enc.finish()]);
    await readback!.mapAsync(MAP_READ);
    const stamps = Array.from(new BigUint64Array(readback!.getMappedRange(0, 16 * count)));
    readback!.unmap();
    return stamps;
  };

  try {
    // 1. warm-up (the first also warms the timestamp path, mapAsync included)
    for (let i = 0; i < opts.warmup; i++) await submit(1, useTs ? 0 : null);
    if (useTs) await readStamps(1);

    // 2. calibration
    const calWall = await submit(1, useTs ? 0 : null);
    let one = calWall;
    if (useTs) {
      const d = validPairs(await readStamps(1))[0];
      if (d !== null && d !== undefined) one = d / 1e6;
    }
    const inner = chooseInner(one, opts);
    const repeats = one * inner > opts.longSampleMs ? Math.min(opts.repeats, opts.minRepeats) : opts.repeats;

    // 3. samples
    const walls: number[] = [];
    for (let i = 0; i < repeats; i++) walls.push((await submit(inner, useTs ? i : null)) / inner);
    const wallMs = median(walls);
    const dispatches = `${inner} call${inner > 1 ? 's' : ''} (${inner * op.dispatches} dispatches) per pass`;
    if (useTs) {
      const pairs = validPairs(await readStamps(repeats));
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
    querySet?.destroy();
    resolve?.destroy();
    readback?.destroy();
  }
}

function wallResult(walls: number[], wallMs: number, inner: number, rejected: number, method: string): Timing {
  return { ms: wallMs, minMs: Math.min(...walls), maxMs: Math.max(...walls), wallMs, timer: 'wall', inner, samples: walls.length, rejected, method };
}
