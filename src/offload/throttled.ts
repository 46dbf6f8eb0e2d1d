/**
 * A paced link: a bandwidth cap and a per-request latency in front of any ExpertSource, for tests and benchmarks
 * of expert offloading (docs/offloading.md). NODE ONLY (node:worker_threads): imported by tests and the bench,
 * never by src/index.ts (the browser-safe API).
 *
 * The model: ONE serial FIFO link. A request of n bytes issued at t0 (performance.now() ms of the issuing thread)
 * occupies the link for latencyMs + n / bytesPerSecond · 1000 ms, starting when the link is free:
 *   deadline = max(t0, freeAt) + latencyMs + n / bytesPerSecond · 1000;   freeAt = deadline
 * so requests queue behind each other and complete in issue order. `transfer(n)` resolves at or after its
 * deadline, never before (the honest guarantee; how late depends on the machine: see PacedLinkOptions.spinMs).
 *
 * How the waiting is done: setTimeout has ~1 ms granularity, too coarse for sub-millisecond requests, so one
 * worker thread per link (created from an inline code string with `eval: true`: no file path, so the same code
 * runs from the TS sources under vitest and from dist/) sleeps with Atomics.wait until each deadline, spins the
 * last `spinMs`, then bumps a shared DONE counter and Atomics.notify()s it; the main thread waits for DONE with
 * Atomics.waitAsync (measured here slightly less late than a postMessage per completion). Shared state:
 *   ctl (Int32Array): SEQ (bumped on every push and on close: the idle worker sleeps on it), WRITTEN (deadlines
 *                     in the ring), DONE (deadlines passed, written by the worker), CLOSED (1 after close())
 *   ring (Float64Array, RING entries): deadline i at ring[i % RING]; at most RING not-yet-passed deadlines are in
 *                     it, the rest wait in the main thread's queue and are pushed as completions free room.
 * Both threads measure time on the same monotonic clock (process.hrtime); the worker converts with an offset
 * taken after performance.now(), so its clock never runs ahead of the main thread's: a transfer observed resolved
 * at main-thread time t always has t >= its deadline.
 *
 * Process lifetime: the worker keeps Node alive while it starts (tens of ms), while a transfer is pending (a
 * script that only awaits a transfer still completes) and during close(); otherwise it is unref()'d, so an idle,
 * forgotten link never holds the process open. close() stops it.
 *
 * Counts are Int32 in the shared state: one link serves up to 2^31 − 1 transfers.
 *
 * close(): every transfer whose deadline has passed when close() is called resolves; every other pending
 * transfer rejects with AbortError (the link went away before the bytes arrived); transfer() after close()
 * rejects with InputError. close() resolves once the worker has exited.
 */
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { AbortError, InputError } from '../errors.js';
import type { ExpertBytes, ExpertSource } from './expert-source.js';

/** The link's parameters. */
export interface PacedLinkOptions {
  /** Sustained bandwidth, bytes per second (positive, finite). */
  bytesPerSecond: number;
  /** Fixed cost of every request in milliseconds, paid on the link (>= 0; 0.2 = 200 µs). */
  latencyMs: number;
  /**
   * The worker busy-waits the last `spinMs` before each deadline instead of sleeping (a timed Atomics.wait wakes
   * 50-100 µs late on Linux). Default 0.1 ms: median lateness ~30-50 µs on the 2-core test machine, at the cost of
   * up to 0.1 ms of one core per request. 0: never spin (lateness ~100-150 µs, no CPU while waiting).
   */
  spinMs?: number;
}

/** Counters of a link (completed transfers only, except `pending`). */
export interface PacedLinkStats {
  /** Transfers resolved. */
  requests: number;
  /** Bytes of the transfers resolved. */
  bytes: number;
  /** Sum over resolved transfers of (resolved − issued) ms: queueing + latency + bytes/B + lateness. */
  waitMs: number;
  /** Sum over resolved transfers of the modelled link time latencyMs + bytes/B ms. */
  busyMs: number;
  /** Sum over resolved transfers of (resolved − deadline) ms: how late the pacing was (>= 0). */
  lateMs: number;
  /** Transfers issued and not settled yet. */
  pending: number;
}

/** Deadlines held in the shared ring at once (more wait in the main thread's queue). */
const RING = 4096;
const SEQ = 0;
const WRITTEN = 1;
const DONE = 2;
const CLOSED = 3;
const DEFAULT_SPIN_MS = 0.1;

/**
 * The worker: sleeps until each deadline in ring order, then publishes DONE. Plain CommonJS (eval workers run as
 * scripts); `offset` maps process.hrtime ms to the main thread's performance.now() ms.
 */
const WORKER_CODE = `
'use strict';
const { workerData } = require('node:worker_threads');
const { ctl, ring, offset, spinMs } = workerData;
const [SEQ, WRITTEN, DONE, CLOSED] = [${SEQ}, ${WRITTEN}, ${DONE}, ${CLOSED}];
const now = () => Number(process.hrtime.bigint()) / 1e6 - offset;
function sleepUntil(deadline) {
  for (;;) {
    if (Atomics.load(ctl, CLOSED) !== 0) return false;
    const left = deadline - now();
    if (left <= 0) return true;
    if (left > spinMs) Atomics.wait(ctl, CLOSED, 0, left - spinMs);
  }
}
let done = 0;
for (;;) {
  const seq = Atomics.load(ctl, SEQ);
  if (Atomics.load(ctl, CLOSED) !== 0) break;
  if (done === Atomics.load(ctl, WRITTEN)) { Atomics.wait(ctl, SEQ, seq); continue; }
  if (!sleepUntil(ring[done % ring.length])) break;
  done++;
  Atomics.store(ctl, DONE, done);
  Atomics.notify(ctl, DONE);
}
`;

type WaitAsync = (a: Int32Array, index: number, value: number) => { async: false; value: string } | { async: true; value: Promise<string> };
/** ES2024 (Node >= 16); this project's lib is ES2023. */
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

interface Pending {
  bytes: number;
  issued: number;
  deadline: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function checkOptions(o: PacedLinkOptions): void {
  if (typeof o?.bytesPerSecond !== 'number' || !Number.isFinite(o.bytesPerSecond) || o.bytesPerSecond <= 0) {
    throw new InputError(`paced link: bytesPerSecond must be a positive finite number, got ${o?.bytesPerSecond} (e.g. 16e9 for a 16 GB/s link)`, 'bytesPerSecond');
  }
  if (typeof o.latencyMs !== 'number' || !Number.isFinite(o.latencyMs) || o.latencyMs < 0) {
    throw new InputError(`paced link: latencyMs must be a finite number >= 0, got ${o.latencyMs} (milliseconds per request; 0.2 = 200 µs)`, 'latencyMs');
  }
  if (o.spinMs !== undefined && (typeof o.spinMs !== 'number' || !Number.isFinite(o.spinMs) || o.spinMs < 0)) {
    throw new InputError(`paced link: spinMs must be a finite number >= 0, got ${o.spinMs} (0 never spins)`, 'spinMs');
  }
}

/** One serial FIFO link with a bandwidth cap and a per-request latency (see the header). */
export class PacedLink {
  readonly bytesPerSecond: number;
  readonly latencyMs: number;
  private readonly worker: Worker;
  private readonly ctl = new Int32Array(new SharedArrayBuffer(4 * 4));
  private readonly ring = new Float64Array(new SharedArrayBuffer(8 * RING));
  /** Issued transfers in issue order; queue[head] is the oldest unsettled one, deadline number `settledCount`. */
  private queue: Pending[] = [];
  private head = 0;
  private settledCount = 0;
  private written = 0;
  private linkFreeAt = 0;
  private watching = false;
  private closed = false;
  private closing?: Promise<void>;
  private started = false;
  private readonly online: Promise<void>;
  private readyPromise?: Promise<void>;
  private readonly exited: Promise<void>;
  private readonly counters = { requests: 0, bytes: 0, waitMs: 0, busyMs: 0, lateMs: 0 };

  constructor(options: PacedLinkOptions) {
    checkOptions(options);
    this.bytesPerSecond = options.bytesPerSecond;
    this.latencyMs = options.latencyMs;
    const origin = performance.now();
    const offset = Number(process.hrtime.bigint()) / 1e6 - origin; // taken after: the worker's clock never runs ahead
    this.worker = new Worker(WORKER_CODE, { eval: true, workerData: { ctl: this.ctl, ring: this.ring, offset, spinMs: options.spinMs ?? DEFAULT_SPIN_MS } });
    this.online = new Promise((resolve) => this.worker.once('online', () => resolve()));
    void this.online.then(() => {
      this.started = true;
      this.updateRef();
    });
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.once('error', (e) => this.fail(e));
    this.worker.once('exit', () => this.fail(new AbortError('paced link: its worker thread exited')));
  }

  /**
   * Resolves once the worker runs (tens of ms after construction; transfers issued before wait for it, so time
   * them after this); rejects with AbortError if the worker exited first.
   */
  ready(): Promise<void> {
    this.readyPromise ??= Promise.race([
      this.online,
      this.exited.then((): never => {
        throw new AbortError('paced link: its worker thread exited before it started');
      }),
    ]);
    return this.readyPromise;
  }

  /** Transfers issued and not settled. */
  private get pending(): number {
    return this.queue.length - this.head;
  }

  /** When the link is free again (performance.now() ms): right after transfer(), that transfer's deadline. */
  get freeAt(): number {
    return this.linkFreeAt;
  }

  get stats(): PacedLinkStats {
    return { ...this.counters, pending: this.pending };
  }

  /** Moves `bytes` over the link: resolves at or after max(now, freeAt) + latencyMs + bytes / bytesPerSecond. */
  transfer(bytes: number): Promise<void> {
    if (this.closed) return Promise.reject(new InputError('paced link: transfer() after close() (create a new PacedLink)', 'link'));
    if (typeof bytes !== 'number' || !Number.isFinite(bytes) || bytes < 0) {
      return Promise.reject(new InputError(`paced link: bytes must be a finite number >= 0, got ${bytes}`, 'bytes'));
    }
    const issued = performance.now();
    const deadline = Math.max(issued, this.linkFreeAt) + this.latencyMs + (bytes / this.bytesPerSecond) * 1000;
    this.linkFreeAt = deadline;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ bytes, issued, deadline, resolve, reject });
      this.updateRef();
      this.pushDeadlines();
      if (!this.watching) void this.watch();
    });
  }

  /** Stops the worker; settles pending transfers as the header says. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    const now = performance.now();
    this.stop();
    while (this.pending > 0 && this.queue[this.head]!.deadline <= now) this.settleHead(now);
    this.rejectAll(new AbortError(`paced link closed with ${this.pending} transfer(s) still on the link`));
    this.closing = this.exited;
    return this.closing;
  }

  /** Copies queued deadlines into the ring while it has room, then wakes the worker. */
  private pushDeadlines(): void {
    const before = this.written;
    while (this.written < this.settledCount + this.pending && this.written - this.settledCount < RING) {
      this.ring[this.written % RING] = this.queue[this.head + this.written - this.settledCount]!.deadline;
      this.written++;
    }
    if (this.written === before) return;
    Atomics.store(this.ctl, WRITTEN, this.written);
    Atomics.add(this.ctl, SEQ, 1);
    Atomics.notify(this.ctl, SEQ);
  }

  /** Settles transfers as the worker reports their deadlines passed, until none is pending. */
  private async watch(): Promise<void> {
    this.watching = true;
    try {
      while (!this.closed && this.pending > 0) {
        const done = Atomics.load(this.ctl, DONE);
        if (done > this.settledCount) {
          const now = performance.now();
          while (this.settledCount < done) this.settleHead(now);
          this.pushDeadlines();
          continue;
        }
        const w = waitAsync(this.ctl, DONE, done);
        if (w.async) await w.value;
      }
    } finally {
      this.watching = false;
      this.updateRef();
    }
  }

  /**
   * The worker keeps Node alive only while something waits on it: its start (ready()), a pending transfer, or
   * close() (until it has exited). An idle, forgotten link never does.
   */
  private updateRef(): void {
    if (!this.started || this.pending > 0 || this.closed) this.worker.ref();
    else this.worker.unref();
  }

  private settleHead(now: number): void {
    const p = this.queue[this.head++]!;
    this.settledCount++;
    if (this.head >= 1024 && 2 * this.head >= this.queue.length) {
      this.queue = this.queue.slice(this.head); // O(1) amortised per transfer
      this.head = 0;
    }
    const c = this.counters;
    c.requests++;
    c.bytes += p.bytes;
    c.waitMs += now - p.issued;
    c.busyMs += this.latencyMs + (p.bytes / this.bytesPerSecond) * 1000;
    c.lateMs += Math.max(0, now - p.deadline);
    p.resolve();
  }

  private rejectAll(err: unknown): void {
    const rest = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    for (const p of rest) p.reject(err);
  }

  /** Tells the worker to exit and wakes both threads' waits. */
  private stop(): void {
    this.closed = true;
    this.updateRef();
    Atomics.store(this.ctl, CLOSED, 1);
    Atomics.add(this.ctl, SEQ, 1);
    Atomics.notify(this.ctl, SEQ);
    Atomics.notify(this.ctl, CLOSED);
    Atomics.notify(this.ctl, DONE);
  }

  /** The worker died without close(): nothing will complete, so every pending transfer rejects. */
  private fail(err: unknown): void {
    if (this.closed) return;
    this.stop();
    this.closing = this.exited;
    this.rejectAll(err);
  }
}

/** An ExpertSource that also exposes its link's counters. */
export interface ThrottledExpertSource extends ExpertSource {
  readonly link: PacedLink;
}

/**
 * `inner` behind a paced link: each read awaits inner.read() (and, once, the link's worker start), then moves
 * shape.total bytes over the link. Given options, the source creates (and close() closes) its own link; given a
 * PacedLink, the caller keeps it (several sources may share one link). The inner source stays open either way:
 * its owner closes it.
 */
export function throttledExpertSource(inner: ExpertSource, link: PacedLink | PacedLinkOptions): ThrottledExpertSource {
  const owned = !(link instanceof PacedLink);
  const l = link instanceof PacedLink ? link : new PacedLink(link);
  return {
    name: `throttled(${inner.name})`,
    shape: inner.shape,
    link: l,
    async read(layer: number, expert: number): Promise<ExpertBytes> {
      const b = await inner.read(layer, expert);
      await l.ready(); // the first read's deadline counts from the worker's start, not from before it
      await l.transfer(inner.shape.total);
      return b;
    },
    async close() {
      if (owned) await l.close();
    },
  };
}
