/**
 * Continuous batching over a BatchSession: every generation gets a *lane*, an InferenceSession of its own that
 * `generate` drives exactly as it drives a single-sequence session. Lanes' decode calls are gathered into one
 * batched step (one submission for all of them); requests join at step boundaries and leave when done.
 *
 *   - A lane claims a sequence at its first prefill; when all are busy it waits in a FIFO queue (bounded by
 *     `maxQueue`: beyond it a BusyError, which `serve` answers with 503). Cancelling a waiting lane removes it.
 *   - A prompt is prefilled in chunks of `prefillChunk` tokens, each its own submission; the decode steps of the
 *     running lanes are queued between them (BatchSession runs calls in arrival order), so a long prompt does not
 *     stall the others for its whole length.
 *   - A step runs once every running lane has asked for its next token, or at the next macrotask (a consumer
 *     that is slow to ask does not hold the others back).
 *   - Fairness: sequences are handed out first come first served, and every step includes every lane that asked.
 *   - Prefix reuse: the prompt rows a sequence prefilled from position 0 in whole chunks stay in its cache after it
 *     is released, and the scheduler remembers their tokens. A new prompt that begins with some of them starts
 *     from those rows instead of computing them: a free sequence holding the longest such prefix is claimed as
 *     it is, or a running one's rows are copied (BatchSession.fork). Only whole chunks are reused and the rest is
 *     prefilled in the same chunks a fresh prefill would run, so every row is the one a fresh prefill computes,
 *     bit for bit (chat prompts share their template: most of their prefill).
 *   - Pipelining: up to PIPELINE_DEPTH steps are in flight; a lane may ask for its next token before the last one
 *     is read back (decodeNext: the step reads the lane's last sample on the GPU), as generate() does on a single
 *     session, so the host records step k + 1 while the device runs step k. A lane's requests run in order, one
 *     per step.
 *
 * Telemetry: steps, rows per step, queue waits (`stats()`).
 */
import { AbortError, BusyError, InputError } from '../errors.js';
import type { BatchSession } from './batch-session.js';
import { PIPELINE_DEPTH, type InferenceSession, type StepSampling } from './types.js';

export interface SchedulerOptions {
  /** Lanes that may wait for a sequence before new ones are refused (default 64). */
  maxQueue?: number;
  /** Prompt tokens per prefill submission (default 64). */
  prefillChunk?: number;
  /** Reuse the cache rows of earlier prompts with the same beginning (default true; see the header). */
  prefixReuse?: boolean;
}

export interface SchedulerStats {
  steps: number;
  /** Rows summed over all steps (rows / steps is the mean batch size). */
  rows: number;
  /** steps by batch size: batchSizes[b] = steps with b rows */
  batchSizes: number[];
  /** Prompt tokens prefilled (a shared prompt's prefix counts once; reused rows do not count). */
  prefillTokens: number;
  /** Prompt tokens whose rows were reused from an earlier prompt with the same beginning (prefix reuse). */
  reusedTokens: number;
  /** Lanes that had to wait for a sequence, and their total wait. */
  queued: number;
  queueWaitMs: number;
  /** Lanes waiting now, and sequences in use now. */
  waiting: number;
  running: number;
}

interface PendingRow {
  sequence: number;
  /** undefined: the sequence's last sample, on the GPU (BatchRow.token) */
  token?: number;
  sampling: StepSampling;
  resolve: (id: number) => void;
  reject: (err: unknown) => void;
}

interface Waiter {
  resolve: (sequence: number) => void;
  reject: (err: unknown) => void;
  since: number;
}

const nextMacrotask: (f: () => void) => void = typeof setImmediate === 'function' ? (f) => setImmediate(f) : (f) => setTimeout(f, 0);

export class BatchScheduler {
  readonly maxQueue: number;
  readonly prefillChunk: number;
  readonly prefixReuse: boolean;
  private readonly waiters: Waiter[] = [];
  /** each sequence's requests not yet in a step, in order */
  private readonly pending = new Map<number, PendingRow[]>();
  /** sequences whose lane is between prefill and release (they may ask for a step) */
  private readonly decoding = new Set<number>();
  /** steps submitted (or queued on the batch) and not yet read back */
  private inFlight = 0;
  private scheduled = false;
  /** @internal */
  readonly counters = { steps: 0, rows: 0, batchSizes: [] as number[], prefillTokens: 0, reusedTokens: 0, queued: 0, queueWaitMs: 0 };
  /**
   * Prefix reuse (see the header): per sequence, the tokens of its cache rows [0, n·prefillChunk) that a prefill
   * from position 0 computed in whole chunks (they stay valid while the sequence is free, and while it runs:
   * decode steps write past them)
   */
  private readonly prefixes = new Map<number, number[]>();

  constructor(readonly batch: BatchSession, opts: SchedulerOptions = {}) {
    this.maxQueue = opts.maxQueue ?? 64;
    this.prefillChunk = opts.prefillChunk ?? 64;
    this.prefixReuse = opts.prefixReuse ?? true;
    if (!Number.isInteger(this.maxQueue) || this.maxQueue < 0) throw new InputError(`--max-queue must be an integer >= 0, got ${this.maxQueue}`, 'maxQueue');
    if (!Number.isInteger(this.prefillChunk) || this.prefillChunk < 1) throw new InputError(`prefillChunk must be a positive integer, got ${this.prefillChunk}`, 'prefillChunk');
  }

  /** A new lane: an InferenceSession whose decode steps are batched with the other lanes'. */
  lane(signal?: AbortSignal, onDispose?: () => void): Lane {
    return new Lane(this, signal, onDispose);
  }

  /**
   * n lanes for n choices of one prompt (e.g. a chat request with n > 1): the prompt but its last token is
   * prefilled once, copied into the other lanes' sequences (BatchSession.fork), and the last prompt token runs as
   * one batched step of all n, each sampling its own first token.
   */
  sharedLanes(n: number, signal?: AbortSignal): Lane[] {
    if (!Number.isInteger(n) || n < 1 || n > this.batch.maxSequences) {
      throw new InputError(`n = ${n} choices need n sequences; this engine runs 1..${this.batch.maxSequences} at once (--max-sequences)`, 'n');
    }
    const share = new PromptShare(n);
    return Array.from({ length: n }, () => new Lane(this, signal, undefined, share));
  }

  stats(): SchedulerStats {
    return { ...this.counters, batchSizes: [...this.counters.batchSizes], waiting: this.waiters.length, running: this.batch.active };
  }

  /**
   * @internal a free sequence, now or when one is released (FIFO); with the prompt `tokens`, the free sequence
   * whose kept prefix serves it best, else one that keeps none, else the one whose prefix helps the fewest tokens.
   */
  acquire(signal?: AbortSignal, tokens?: readonly number[]): Promise<number> {
    if (signal?.aborted) return Promise.reject(new AbortError('cancelled while waiting for a free sequence'));
    if (this.waiters.length === 0 && this.batch.active < this.batch.maxSequences) return Promise.resolve(this.batch.openSequence(this.preferredFree(tokens)));
    if (this.waiters.length >= this.maxQueue) {
      return Promise.reject(new BusyError(`${this.batch.maxSequences} sequences are running and ${this.waiters.length} requests are waiting (--max-queue ${this.maxQueue}); retry later`));
    }
    return new Promise<number>((resolve, reject) => {
      const w: Waiter = { resolve, reject, since: performance.now() };
      this.waiters.push(w);
      this.counters.queued++;
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) {
            this.waiters.splice(i, 1);
            reject(new AbortError('cancelled while waiting for a free sequence'));
          }
        },
        { once: true },
      );
    });
  }

  private preferredFree(tokens?: readonly number[]): number | undefined {
    let best: number | undefined;
    let bestScore = -1;
    for (let i = 0; i < this.batch.maxSequences; i++) {
      if (!this.batch.isFree(i)) continue;
      const kept = this.prefixes.get(i);
      // a sequence that keeps nothing costs nothing to take; one whose rows the prompt reuses is best of all
      const score = kept === undefined ? 0.5 : tokens ? this.reusable(kept, tokens) : 0;
      if (score > bestScore) [best, bestScore] = [i, score];
    }
    return best;
  }

  /** Rows of `kept` that a prompt `tokens` can take: whole chunks of their common prefix, leaving one to prefill. */
  private reusable(kept: readonly number[], tokens: readonly number[]): number {
    const n = Math.min(kept.length, tokens.length - 1);
    let i = 0;
    while (i < n && kept[i] === tokens[i]) i++;
    return i - (i % this.prefillChunk);
  }

  /**
   * @internal Sequence `seq`, just acquired for the prompt `tokens`, takes the longest kept prefix: its own rows
   * (resume) or a copy of a running sequence's (fork, queued before anything that could overwrite them). Returns
   * the rows it starts from (a multiple of prefillChunk; 0: none).
   */
  reusePrefix(seq: number, tokens: readonly number[]): number {
    let from = seq;
    let rows = this.prefixes.has(seq) ? this.reusable(this.prefixes.get(seq)!, tokens) : 0;
    for (const [other, kept] of this.prefixes) {
      if (other === seq || this.batch.isFree(other)) continue; // a free one is only taken whole (acquire)
      const r = this.reusable(kept, tokens);
      if (r > rows) [from, rows] = [other, r];
    }
    this.prefixes.delete(seq); // its rows past `rows` are about to change
    if (rows === 0) return 0;
    try {
      if (from === seq) this.batch.resume(seq, rows);
      else void this.batch.fork(from, seq, rows).catch(() => undefined); // (queued: the prefill after it reports errors)
    } catch {
      return 0; // (not expected: the bookkeeping above keeps both valid) computing the rows is always right
    }
    this.prefixes.set(seq, tokens.slice(0, rows));
    this.counters.reusedTokens += rows;
    return rows;
  }

  /** @internal the prompt rows `seq` now holds, prefilled from 0 in whole chunks (see prefixes). */
  keepPrefix(seq: number, tokens: readonly number[]): void {
    if (!this.prefixReuse) return;
    const whole = tokens.length - (tokens.length % this.prefillChunk);
    if (whole > 0) this.prefixes.set(seq, tokens.slice(0, whole));
    else this.prefixes.delete(seq);
  }

  /** @internal `seq`'s rows are about to hold something else. */
  forgetPrefix(seq: number): void {
    this.prefixes.delete(seq);
  }

  /** @internal gives the sequence to the longest-waiting lane, or frees it. */
  release(sequence: number): void {
    this.decoding.delete(sequence);
    this.batch.closeSequence(sequence);
    const w = this.waiters.shift();
    if (w) {
      this.counters.queueWaitMs += performance.now() - w.since;
      w.resolve(this.batch.openSequence());
    }
    this.kick(); // the lanes still running may all be waiting on a step now
  }

  /** @internal the sequence's lane is decoding: steps wait for it (briefly) before they run. */
  markDecoding(sequence: number): void {
    this.decoding.add(sequence);
  }

  /**
   * @internal the next token of `sequence` from a batched step after those it already asked for; `token`
   * undefined: the token its last step samples, read on the GPU (Lane.decodeNext).
   */
  decode(sequence: number, token: number | undefined, sampling: StepSampling): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const queue = this.pending.get(sequence) ?? [];
      queue.push({ sequence, token, sampling, resolve, reject });
      this.pending.set(sequence, queue);
      // everyone who can ask has asked: run now; else give the others until the next macrotask
      if (this.allAsked()) this.flush();
      else this.kick();
    });
  }

  private allAsked(): boolean {
    for (const s of this.decoding) if (!this.pending.has(s)) return false;
    return true;
  }

  private kick(): void {
    if (this.scheduled || this.pending.size === 0) return;
    this.scheduled = true;
    nextMacrotask(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** Hands steps to the batch while requests wait and fewer than PIPELINE_DEPTH steps are in flight. */
  private flush(): void {
    while (this.inFlight < PIPELINE_DEPTH && this.pending.size > 0) {
      // each sequence's oldest request; its later ones wait for later steps
      const rows: PendingRow[] = [];
      for (const [s, queue] of this.pending) {
        rows.push(queue.shift()!);
        if (queue.length === 0) this.pending.delete(s);
      }
      rows.sort((a, b) => a.sequence - b.sequence);
      this.inFlight++;
      this.counters.steps++;
      this.counters.rows += rows.length;
      this.counters.batchSizes[rows.length] = (this.counters.batchSizes[rows.length] ?? 0) + 1;
      let step: Promise<number[]>;
      try {
        step = this.batch.step(rows);
      } catch (err) {
        step = Promise.reject(err); // validation: this step's rows fail, the others go on
      }
      step.then(
        (ids) => rows.forEach((r, i) => r.resolve(ids[i]!)),
        (err: unknown) => rows.forEach((r) => r.reject(err)),
      ).finally(() => {
        this.inFlight--;
        this.kick();
      });
      // more steps now only where every decoding lane has asked again (a lane asks ahead with decodeNext)
      if (!this.allAsked()) {
        this.kick();
        return;
      }
    }
  }
}

/**
 * The prompt prefix that the lanes of one sharedLanes() call have in common: the first lane to prefill computes it
 * on its own sequence; every other lane copies it into its sequence, and the first lane waits for those copies
 * before it decodes (a decode step never changes the prefix rows, but a released sequence would be reused).
 */
class PromptShare {
  private source: Promise<number> | null = null;
  private pending: number;
  private allCopied!: () => void;
  readonly copied: Promise<void>;

  constructor(n: number) {
    this.pending = n - 1;
    this.copied = new Promise<void>((resolve) => (this.allCopied = resolve));
    if (this.pending === 0) this.allCopied();
  }

  /** The sequence holding the prefix; `compute` runs for the first caller only. */
  prefix(compute: () => Promise<number>): { owner: boolean; sequence: Promise<number> } {
    if (this.source) return { owner: false, sequence: this.source };
    this.source = compute();
    return { owner: true, sequence: this.source };
  }

  /** A non-owner lane has copied the prefix (or given up). */
  done(): void {
    if (--this.pending === 0) this.allCopied();
  }
}

/** One generation's view of the batch: what generate() drives. release() (or dispose) gives its sequence back. */
export class Lane implements InferenceSession {
  private sequence: number | null = null;
  private released = false;
  /** the lane's last request was a decode step, whose sample the next step can read on the GPU */
  private chain = false;
  /** decode requests not yet settled */
  private unsettled = 0;

  /** `onDispose`: what dispose() does after releasing (the model's own lane frees the whole batch). */
  constructor(
    private readonly scheduler: BatchScheduler,
    private readonly signal?: AbortSignal,
    private readonly onDispose?: () => void,
    private share?: PromptShare,
  ) {}

  get contextSize(): number {
    return this.scheduler.batch.contextSize;
  }

  get vocabSize(): number {
    return this.scheduler.batch.vocabSize;
  }

  get position(): number {
    return this.sequence === null ? 0 : this.scheduler.batch.position(this.sequence);
  }

  /** The next prefill starts from an empty cache (a fresh sequence); a shared prompt not yet used stays shared. */
  reset(): void {
    const share = this.share;
    this.share = undefined;
    this.release();
    this.share = share;
    this.released = false;
  }

  async prefill(tokens: number[], sampling: StepSampling): Promise<number> {
    if (this.released) throw new InputError('this lane was released', 'lane');
    if (tokens.length === 0) throw new InputError('no tokens given: need at least one token id', 'tokens');
    this.chain = false;
    const share = this.share;
    this.share = undefined; // a later prefill on this lane (after reset) is its own
    if (share && tokens.length >= 2) return this.prefillShared(share, tokens, sampling);
    share?.done();
    if (this.sequence === null) this.sequence = await this.scheduler.acquire(this.signal, tokens);
    const next = await this.prefillChunks(this.sequence, tokens, sampling);
    this.scheduler.markDecoding(this.sequence);
    return next;
  }

  /**
   * Prefills `tokens` into the just acquired `seq` in chunks from position 0 (the rows of a kept prefix are taken
   * instead of computed); the running lanes' steps are queued between them. Returns the last sample.
   */
  private async prefillChunks(seq: number, tokens: number[], sampling: StepSampling): Promise<number> {
    const C = this.scheduler.prefillChunk;
    let next = -1;
    const reused = this.scheduler.reusePrefix(seq, tokens);
    for (let s = reused; s < tokens.length; s += C) {
      if (this.signal?.aborted) throw new AbortError();
      const chunk = tokens.slice(s, s + C);
      next = await this.scheduler.batch.prefill(seq, chunk, sampling);
      this.scheduler.counters.prefillTokens += chunk.length;
    }
    this.scheduler.keepPrefix(seq, tokens);
    return next;
  }

  /** sharedLanes(): the prefix once (first lane) or copied (the others), then the last token as a batched step. */
  private async prefillShared(share: PromptShare, tokens: number[], sampling: StepSampling): Promise<number> {
    const head = tokens.slice(0, -1);
    const { owner, sequence } = share.prefix(async () => {
      this.sequence = await this.scheduler.acquire(this.signal, head);
      await this.prefillChunks(this.sequence, head, sampling);
      return this.sequence;
    });
    if (owner) {
      await sequence;
      await share.copied;
    } else {
      try {
        const mine = await this.scheduler.acquire(this.signal);
        this.sequence = mine;
        this.scheduler.forgetPrefix(mine);
        await this.scheduler.batch.fork(await sequence, mine, head.length);
      } finally {
        share.done();
      }
    }
    this.scheduler.markDecoding(this.sequence!);
    return this.decode(tokens.at(-1)!, sampling);
  }

  decode(token: number, sampling: StepSampling): Promise<number> {
    if (this.sequence === null) return Promise.reject(new InputError('decode before prefill: this lane holds no sequence', 'lane'));
    return this.track(this.scheduler.decode(this.sequence, token, sampling));
  }

  /**
   * Whether decodeNext can run: the lane's last request sampled a token (a decode, not a prefill), and the
   * sequence has room for the steps asked so far plus one. Expert offloading: never (BatchSession.canContinue).
   */
  get canDecodeNext(): boolean {
    const s = this.sequence;
    if (s === null || !this.chain || this.scheduler.batch.offloadStats() !== null) return false;
    return this.scheduler.batch.position(s) + this.unsettled < this.contextSize;
  }

  /** The next token after the one the lane's last step samples, read on the GPU (see the header). */
  decodeNext(sampling: StepSampling): Promise<number> {
    if (!this.canDecodeNext) return Promise.reject(new InputError('decodeNext needs a token sampled by this lane\'s previous decode step', 'lane'));
    return this.track(this.scheduler.decode(this.sequence!, undefined, sampling));
  }

  /** Drops the last `n` tokens (steps asked ahead and not needed); await them first. */
  rewind(n: number): void {
    if (this.sequence === null) throw new InputError('rewind: this lane holds no sequence', 'lane');
    this.scheduler.batch.rewind(this.sequence, n);
    this.chain = false;
  }

  /** Counts a request until it settles; after one, the lane's last sample is on the GPU (until a failure). */
  private track(p: Promise<number>): Promise<number> {
    this.unsettled++;
    this.chain = true;
    return p.then(
      (id) => {
        this.unsettled--;
        return id;
      },
      (err: unknown) => {
        this.unsettled--;
        this.chain = false;
        throw err;
      },
    );
  }

  async forwardLogits(tokens: number[]): Promise<Float32Array> {
    if (this.sequence === null) this.sequence = await this.scheduler.acquire(this.signal);
    this.scheduler.forgetPrefix(this.sequence);
    return this.scheduler.batch.forwardLogits(this.sequence, tokens);
  }

  gpuBytes(): number {
    return this.scheduler.batch.gpuBytes();
  }

  /** Gives the sequence back (idempotent). */
  release(): void {
    this.released = true;
    this.chain = false;
    // a shared-prompt lane that never prefilled must not keep the first lane waiting for its copy
    this.share?.done();
    this.share = undefined;
    if (this.sequence === null) return;
    const s = this.sequence;
    this.sequence = null;
    this.scheduler.release(s);
  }

  dispose(): void {
    this.release();
    this.onDispose?.();
  }
}
