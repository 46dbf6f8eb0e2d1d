/**
 * The page's expert store: the routed experts of a checkpoint behind a URL, repacked expert-major in the Origin
 * Private File System, as the ExpertSource of expert offloading (src/offload/expert-source.ts,
 * src/engine/expert-offload.ts) in the Web Worker. BROWSER WORKER ONLY (synchronous access handles exist only in
 * dedicated workers).
 *
 * Layout: webmoe-cache/experts/<sha256("experts v1 " + folder URL), 16 hex>/   (inside opfs-files.ts' CACHE_DIR,
 * so clearOpfsCache removes it with the rest)
 *   version.json   {format: "webmoe-experts/1", url, shape, experts, layers, files: {url: validators}}: what the
 *                  store holds: the expert array sizes (ExpertShape), E, the MoE layers, and the version (ETag,
 *                  Last-Modified, size) of every safetensors file that holds routed experts
 *   present.bin    one bit per expert: bit e % 8 of byte i · ⌈E/8⌉ + ⌊e/8⌋ is set once expert e of the i-th MoE
 *                  layer is written whole (data flushed before its bit)
 *   layer-<l>.bin  decoder layer l's experts: expert e at byte e · shape.total, its four arrays back to back in
 *                  the order and GPU stack layout read() returns them (gateUpCodes, gateUpScales, downCodes,
 *                  downScales). Filled lazily, so a file is as long as its highest expert written (OPFS counts
 *                  the zero-filled gaps against the quota: a layer costs up to E · shape.total).
 *
 * Filled lazily: an expert absent from the store is fetched through checkpointExpertSource over the checkpoint's
 * own byte sources (the six tensors of the expert by HTTP Range, or from the page's OPFS copy of the file when
 * it already holds them: opfs-files.ts `readThrough`, which does not add them to that copy, so the bytes are kept
 * once), checked (checkExpertBytes), written into its layer file and marked present; the next read of it, in
 * this session or a later one, is one read() of shape.total bytes on the layer file's FileSystemSyncAccessHandle,
 * opened once per session (the miss path never touches async OPFS, IndexedDB or the Cache API).
 *
 * Never a wrong expert: the store is tied to the version of the files (the validators opfs-files.ts keeps and
 * revalidates on every load); another version, another shape or another layer set wipes it before any read. The
 * network reads are pinned to the same version: a file replaced on the server mid-session is a
 * SourceChangedError, which wipes the store too (the next load starts over from the new version).
 *
 * Reused buffers: an expert read from the store is returned as views of a host buffer that is reused for a later
 * read once the current task has ended (the next macrotask), so a consumer must copy the bytes before it yields
 * to the event loop. The engine does (ExpertOffload writes them with queue.writeBuffer in the continuation of
 * the read); `reuseBuffers: false` returns fresh arrays for a consumer that keeps them. Experts fetched from the
 * network are always fresh arrays.
 *
 * Failures: no OPFS (private mode) or a store locked by another tab (the handles are exclusive) makes the store a
 * pass-through to the network (stats().mode 'network', with the reason). A write refused for quota is a
 * StorageQuotaError naming the bytes needed; other write errors leave the expert unstored (it is fetched again
 * next time).
 *
 * Legend: E routed experts per layer, L MoE layers.
 */
import { SourceChangedError, StorageQuotaError } from '../src/errors.js';
import { versionMismatch, type Validators } from '../src/format/source.js';
import type { TensorInfo } from '../src/format/safetensors.js';
import type { Checkpoint } from '../src/model/checkpoint.js';
import type { ModelConfig } from '../src/model/config.js';
import { checkExpertBytes, checkExpertId, checkpointExpertSource, type ExpertBytes, type ExpertShape, type ExpertSource } from '../src/offload/expert-source.js';
import { CACHE_DIR, type CachedByteSource } from './opfs-files.js';

/** The worker-only OPFS handle (not in TypeScript's DOM lib). */
interface SyncAccessHandle {
  read(buffer: Uint8Array, opts: { at: number }): number;
  write(buffer: Uint8Array, opts: { at: number }): number;
  getSize(): number;
  flush(): void;
  close(): void;
}
type FileHandleWithSync = FileSystemFileHandle & { createSyncAccessHandle(): Promise<SyncAccessHandle> };

/** OPFS refused a write for quota: the bytes the store needed, and what the origin had free (when known). */

export interface ExpertStoreStats {
  /** 'opfs': experts are kept in OPFS; 'network': no store (see `reason`), every read is fetched; 'pending': not opened yet. */
  mode: 'opfs' | 'network' | 'pending';
  reason?: string;
  /** Reads served from the store, and their bytes. */
  storeReads: number;
  storeBytes: number;
  /** Experts fetched through the checkpoint (HTTP Range, or the page's OPFS copy of the file), and their bytes. */
  fetches: number;
  fetchBytes: number;
  /** Experts present in the store now, of E · L. */
  present: number;
  capacity: number;
  /**
   * Time on the expert path, ms: `fetchMs` wall time with at least one fetch in flight (overlapping fetches
   * counted once), `writeMs` the writes into the store (the repack: write + flush of the expert and its presence
   * bit, synchronous), `readMs` the store's read() calls (synchronous). Benchmarks divide bytes by them.
   */
  fetchMs: number;
  writeMs: number;
  readMs: number;
  /** Experts written into the store, and their bytes. */
  writes: number;
  writeBytes: number;
}

export interface ExpertStoreOptions {
  /** The checkpoint folder URL (names the store). */
  url: string;
  config: ModelConfig;
  /** Where absent experts come from (checkpointExpertSource over the checkpoint's byte sources). */
  network: ExpertSource;
  /** The current validators of every file that holds routed experts, by URL (undefined: cannot be versioned). */
  version(): Promise<Record<string, Validators> | undefined>;
  /** Return store reads as views of reused buffers (see the header; default true). */
  reuseBuffers?: boolean;
}

const STORE_DIR = 'experts';
const FORMAT = 'webmoe-experts/1';
const VERSION_FILE = 'version.json';
const PRESENT_FILE = 'present.bin';
/** Host bytes of reused read buffers kept between reads (at least two buffers). */
const POOL_BYTES = 256 * 2 ** 20;

interface VersionRecord {
  format: string;
  url: string;
  shape: ExpertShape;
  experts: number;
  layers: number[];
  files: Record<string, Validators>;
}

/** The store while open: its handles and presence bitmap. */
interface Opened {
  present: SyncAccessHandle;
  bitmap: Uint8Array;
  /** layer file handles, by index among the MoE layers */
  files: SyncAccessHandle[];
  epoch: number;
}

/** The OPFS expert store (see the header). */
export class OpfsExpertStore implements ExpertSource {
  readonly name: string;
  readonly shape: ExpertShape;
  private readonly c: ModelConfig;
  private readonly layers: number[];
  private readonly bytesPerLayer: number;
  private opening: Promise<Opened | null> | undefined;
  private live: Opened | null = null;
  private epoch = 0;
  private closed = false;
  private mode: ExpertStoreStats['mode'] = 'pending';
  private reason: string | undefined;
  private readonly inflight = new Map<number, Promise<ExpertBytes>>();
  private readonly pool: ArrayBuffer[] = [];
  private readonly poolMax: number;
  private readonly counts = { storeReads: 0, storeBytes: 0, fetches: 0, fetchBytes: 0, fetchMs: 0, writeMs: 0, readMs: 0, writes: 0, writeBytes: 0 };
  /** Fetches in flight, and since when at least one is (fetchMs). */
  private fetching = 0;
  private fetchingSince = 0;
  /** A SourceChangedError seen: this session's checkpoint is outdated, every later read fails with it. */
  private failed: unknown = null;

  constructor(private readonly opts: ExpertStoreOptions) {
    this.c = opts.config;
    this.shape = opts.network.shape;
    this.name = `OPFS expert store of ${opts.url}`;
    this.layers = this.c.derived.moeLayers.flatMap((moe, l) => (moe ? [l] : []));
    this.bytesPerLayer = Math.ceil(this.c.n_routed_experts / 8);
    this.poolMax = Math.max(2, Math.floor(POOL_BYTES / Math.max(1, this.shape.total)));
  }

  stats(): ExpertStoreStats {
    let present = 0;
    for (const b of this.live?.bitmap ?? []) for (let x = b; x; x &= x - 1) present++;
    return { mode: this.mode, ...(this.reason ? { reason: this.reason } : {}), ...this.counts, present, capacity: this.layers.length * this.c.n_routed_experts };
  }

  async read(layer: number, expert: number): Promise<ExpertBytes> {
    checkExpertId(this.c, layer, expert);
    if (this.failed) throw this.failed;
    const li = this.layers.indexOf(layer);
    const s = await this.ready();
    if (s && has(s.bitmap, li * this.bytesPerLayer, expert)) {
      const b = this.readStored(s, li, expert);
      if (b) return b;
    }
    const key = li * this.c.n_routed_experts + expert;
    let job = this.inflight.get(key);
    if (!job) {
      job = this.fetch(layer, li, expert, s);
      this.inflight.set(key, job);
      void job.then(
        () => this.inflight.delete(key),
        () => this.inflight.delete(key),
      );
    }
    return job;
  }

  /**
   * Closes the handles (before the cache folder is removed: an open handle locks its file); the next read opens
   * the store again, from whatever is then in OPFS. Fetches in flight are not stored.
   */
  suspend(): void {
    this.epoch++;
    this.closeHandles();
    this.opening = undefined;
    this.mode = 'pending';
  }

  async close(): Promise<void> {
    this.closed = true;
    this.suspend();
    await this.opts.network.close();
  }

  // --- the miss path

  /** One read() of the expert's bytes from its layer file; null when the file is shorter (then it is refetched). */
  private readStored(s: Opened, li: number, expert: number): ExpertBytes | null {
    const total = this.shape.total;
    const buf = this.buffer();
    let n: number;
    const t0 = performance.now();
    try {
      n = s.files[li]!.read(buf, { at: expert * total });
    } catch {
      n = -1;
    }
    this.counts.readMs += performance.now() - t0;
    if (n !== total) {
      clearBit(s.bitmap, li * this.bytesPerLayer, expert);
      return null;
    }
    this.counts.storeReads++;
    this.counts.storeBytes += total;
    return split(buf, this.shape);
  }

  /** A read buffer of shape.total bytes: one of the reused ones (back in the pool at the next task), or fresh. */
  private buffer(): Uint8Array {
    if (this.opts.reuseBuffers === false) return new Uint8Array(this.shape.total);
    const buf = this.pool.pop() ?? new ArrayBuffer(this.shape.total);
    setTimeout(() => {
      if (this.pool.length < this.poolMax) this.pool.push(buf);
    }, 0);
    return new Uint8Array(buf);
  }

  /** Fetches an absent expert through the checkpoint and writes it into the store (when open and not suspended since). */
  private async fetch(layer: number, li: number, expert: number, s: Opened | null): Promise<ExpertBytes> {
    let bytes: ExpertBytes;
    if (this.fetching++ === 0) this.fetchingSince = performance.now();
    try {
      bytes = checkExpertBytes(await this.opts.network.read(layer, expert), this.shape, `${this.opts.network.name}: layer ${layer} expert ${expert}`);
    } catch (err) {
      this.fetchEnded();
      // the file changed on the server: nothing stored of the old version may be served again, and nothing of the
      // new one may join this session's weights (the next load starts over)
      if (err instanceof SourceChangedError) {
        this.failed ??= err;
        await this.wipe();
      }
      throw err;
    }
    this.fetchEnded();
    this.counts.fetches++;
    this.counts.fetchBytes += this.shape.total;
    if (s && s === this.live && s.epoch === this.epoch) await this.write(s, li, layer, expert, bytes);
    return bytes;
  }

  private fetchEnded(): void {
    if (--this.fetching === 0) this.counts.fetchMs += performance.now() - this.fetchingSince;
  }

  /** Writes the expert at e · total of its layer file, flushes, then sets and writes its presence bit. */
  private async write(s: Opened, li: number, layer: number, expert: number, b: ExpertBytes): Promise<void> {
    const h = s.files[li]!;
    const at0 = expert * this.shape.total;
    let grow = 0;
    const t0 = performance.now();
    try {
      grow = Math.max(0, at0 + this.shape.total - h.getSize());
      let at = at0;
      for (const a of [b.gateUpCodes, b.gateUpScales, b.downCodes, b.downScales]) {
        if (a.byteLength === 0) continue;
        const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
        // over quota, Chromium throws QuotaExceededError, or (some versions) returns a short count or an error
        // code as the count (2^32 - 8, FILE_ERROR_NO_SPACE): anything but the full length is a refusal
        if (h.write(view, { at }) !== a.byteLength) throw new DOMException('OPFS wrote less than asked', 'QuotaExceededError');
        at += a.byteLength;
      }
      h.flush();
      const byte = li * this.bytesPerLayer + (expert >> 3);
      setBit(s.bitmap, li * this.bytesPerLayer, expert);
      s.present.write(s.bitmap.subarray(byte, byte + 1), { at: byte });
      s.present.flush();
      this.counts.writeMs += performance.now() - t0;
      this.counts.writes++;
      this.counts.writeBytes += this.shape.total;
    } catch (err) {
      clearBit(s.bitmap, li * this.bytesPerLayer, expert);
      if (isQuota(err)) throw await this.quotaError(grow, `to store layer ${layer} expert ${expert} (bytes ${at0}-${at0 + this.shape.total - 1} of layer-${layer}.bin)`);
      // a closed handle (suspended meanwhile) or an I/O error: the expert is simply not stored
    }
  }

  /** The typed error for a write OPFS refused: `needed` bytes more for `what` (a phrase: 'to store ...'). */
  private async quotaError(needed: number, what: string): Promise<StorageQuotaError> {
    const mib = (b: number): string => (b / 2 ** 20).toFixed(2);
    const full = this.layers.length * this.c.n_routed_experts * this.shape.total;
    let free: number | undefined;
    let used = '';
    try {
      const e = await navigator.storage.estimate();
      if (e.quota !== undefined && e.usage !== undefined) {
        free = Math.max(0, e.quota - e.usage);
        used = ` (navigator.storage.estimate(): ${mib(e.usage)} of ${mib(e.quota)} MiB used)`;
      }
    } catch {
      // no estimate: the message says less
    }
    return new StorageQuotaError(
      `${this.name}: OPFS refused ${what}: the origin's storage is full${used}. It needs ${mib(needed)} MiB more for that, ` +
        `${mib(this.shape.total)} MiB per expert, up to ${mib(full)} MiB for all ${this.c.n_routed_experts} experts of the ${this.layers.length} MoE layers. ` +
        `Free disk space, or Clear cache (cached checkpoints share the quota), and load again`,
      needed,
      free,
    );
  }

  // --- opening, versioning, wiping

  private ready(): Promise<Opened | null> {
    if (this.closed) return Promise.resolve(null);
    this.opening ??= this.openStore(this.epoch).then((s) => {
      this.live = s;
      return s;
    });
    return this.opening;
  }

  private async openStore(epoch: number): Promise<Opened | null> {
    const network = (why: string): null => {
      this.mode = 'network';
      this.reason = why;
      return null;
    };
    const version = await this.opts.version();
    if (!version) return network('the checkpoint files have no recorded version (no OPFS copy)');
    const want: VersionRecord = { format: FORMAT, url: this.opts.url, shape: this.shape, experts: this.c.n_routed_experts, layers: this.layers, files: version };
    let parent: FileSystemDirectoryHandle;
    let dir: FileSystemDirectoryHandle;
    const key = await storeKey(this.opts.url);
    try {
      const root = await navigator.storage.getDirectory();
      parent = await (await root.getDirectoryHandle(CACHE_DIR, { create: true })).getDirectoryHandle(STORE_DIR, { create: true });
      dir = await parent.getDirectoryHandle(key, { create: true });
    } catch (err) {
      if (isQuota(err)) throw await this.quotaError(this.shape.total, 'to create the store');
      return network(`no OPFS in this browser context (${(err as Error).name}: ${(err as Error).message})`);
    }
    const files: SyncAccessHandle[] = [];
    let present: SyncAccessHandle | undefined;
    try {
      const recorded = await readJson<VersionRecord>(dir, VERSION_FILE);
      if (!sameVersion(recorded, want)) {
        // another version (or a new store): nothing of the old one may be read
        await parent.removeEntry(key, { recursive: true }).catch(() => {});
        dir = await parent.getDirectoryHandle(key, { create: true });
        await writeJson(dir, VERSION_FILE, want);
      }
      present = await syncHandle(dir, PRESENT_FILE);
      for (const l of this.layers) files.push(await syncHandle(dir, `layer-${l}.bin`));
    } catch (err) {
      present?.close();
      for (const h of files) h.close();
      if (isQuota(err)) throw await this.quotaError(this.shape.total, 'to create the store');
      return network(`the store could not be opened (${(err as Error).name}: another tab may hold it)`);
    }
    const bitmap = new Uint8Array(this.layers.length * this.bytesPerLayer);
    present.read(bitmap, { at: 0 });
    // a bit is only trusted when its expert's bytes are all in the file
    files.forEach((h, li) => {
      const size = h.getSize();
      for (let e = 0; e < this.c.n_routed_experts; e++) if ((e + 1) * this.shape.total > size) clearBit(bitmap, li * this.bytesPerLayer, e);
    });
    const s: Opened = { present, bitmap, files, epoch };
    if (this.closed || epoch !== this.epoch) {
      closeOpened(s); // suspended or closed while opening
      return null;
    }
    this.mode = 'opfs';
    this.reason = undefined;
    return s;
  }

  /** Removes the store (its version is outdated); the next read opens an empty one. */
  private async wipe(): Promise<void> {
    this.suspend();
    try {
      const root = await navigator.storage.getDirectory();
      const parent = await (await root.getDirectoryHandle(CACHE_DIR)).getDirectoryHandle(STORE_DIR);
      await parent.removeEntry(await storeKey(this.opts.url), { recursive: true });
    } catch {
      // already gone; the version check of the next open catches anything else
    }
  }

  private closeHandles(): void {
    if (this.live) closeOpened(this.live);
    this.live = null;
  }
}

/**
 * The store for a checkpoint loaded by URL through opfs-files.ts' cachedUrlFiles: `sources` are the cached files
 * as the loader opened them (by URL). Absent experts are read through checkpointExpertSource over a view of
 * `ckpt` whose routed-expert tensors read with `readThrough` (see the header).
 */
export function urlExpertStore(ckpt: Checkpoint, url: string, sources: ReadonlyMap<string, CachedByteSource>, opts: Pick<ExpertStoreOptions, 'reuseBuffers'> = {}): OpfsExpertStore {
  const { view, files } = readThroughCheckpoint(ckpt, sources);
  return new OpfsExpertStore({
    url,
    config: ckpt.config,
    network: checkpointExpertSource(view),
    ...opts,
    async version() {
      const out: Record<string, Validators> = {};
      for (const f of [...files].sort()) {
        const src = sources.get(f);
        if (!src) return undefined;
        out[f] = await src.validators();
      }
      return out;
    },
  });
}

/** Matches a routed expert's tensors (`model.layers.L.mlp.experts.E.*`), not the shared expert's. */
const EXPERT_LEAF = /\.mlp\.experts\.\d+\./;

/**
 * A view of `ckpt` whose routed-expert tensors read through `sources[url].readThrough` (the file's OPFS copy when
 * it has the bytes, else the network pinned to the copy's version, not added to the copy); every other tensor is
 * as in `ckpt`. `files`: the URLs of the files that hold routed experts. Closing the view closes nothing.
 */
export function readThroughCheckpoint(ckpt: Checkpoint, sources: ReadonlyMap<string, CachedByteSource>): { view: Checkpoint; files: Set<string> } {
  const files = new Set<string>();
  const through = new Map<string, TensorInfo['source']>();
  const re = (t: TensorInfo): TensorInfo => {
    files.add(t.source.name);
    const src = sources.get(t.source.name);
    if (!src) return t;
    let s = through.get(src.name);
    if (!s) {
      s = { name: src.name, size: () => src.size(), read: (o, n) => src.readThrough(o, n), close: async () => {} };
      through.set(src.name, s);
    }
    return { ...t, source: s };
  };
  const weights = ckpt.weights.map((w) =>
    EXPERT_LEAF.test(w.spec.name) ? { ...w, weight: re(w.weight), ...(w.scale ? { scale: re(w.scale) } : {}), ...(w.shape ? { shape: re(w.shape) } : {}) } : w,
  );
  return { view: { ...ckpt, weights, close: async () => {} }, files };
}

// --- helpers

/** The four arrays of an expert as views of one buffer (sizes from `shape`, in the store's order). */
function split(buf: Uint8Array, shape: ExpertShape): ExpertBytes {
  let at = 0;
  const take = (n: number): Uint8Array => {
    const v = buf.subarray(at, at + n);
    at += n;
    return v;
  };
  const gateUpCodes = take(shape.gateUpCodes);
  const gateUpScales = take(shape.gateUpScales);
  const downCodes = take(shape.downCodes);
  const downScales = take(shape.downScales);
  return { gateUpCodes, gateUpScales, downCodes, downScales };
}

function has(bitmap: Uint8Array, base: number, e: number): boolean {
  return (bitmap[base + (e >> 3)]! & (1 << (e & 7))) !== 0;
}
function setBit(bitmap: Uint8Array, base: number, e: number): void {
  bitmap[base + (e >> 3)]! |= 1 << (e & 7);
}
function clearBit(bitmap: Uint8Array, base: number, e: number): void {
  bitmap[base + (e >> 3)]! &= ~(1 << (e & 7));
}

function closeOpened(s: Opened): void {
  for (const h of [s.present, ...s.files]) {
    try {
      h.close();
    } catch {
      // already closed
    }
  }
}

function isQuota(err: unknown): boolean {
  return err instanceof Error && err.name === 'QuotaExceededError';
}

function sameVersion(a: VersionRecord | undefined, b: VersionRecord): boolean {
  if (!a || a.format !== b.format || a.url !== b.url || a.experts !== b.experts) return false;
  if (JSON.stringify(a.shape) !== JSON.stringify(b.shape) || JSON.stringify(a.layers) !== JSON.stringify(b.layers)) return false;
  const fa = Object.keys(a.files ?? {}).sort();
  const fb = Object.keys(b.files).sort();
  if (JSON.stringify(fa) !== JSON.stringify(fb)) return false;
  return fb.every((f) => versionMismatch(a.files[f]!, b.files[f]!) === undefined);
}

async function storeKey(url: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(`experts v1 ${url}`));
  return Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A file's sync access handle, retried for a second (a worker of the page being unloaded may still hold it). */
async function syncHandle(dir: FileSystemDirectoryHandle, name: string): Promise<SyncAccessHandle> {
  const fh = (await dir.getFileHandle(name, { create: true })) as FileHandleWithSync;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fh.createSyncAccessHandle();
    } catch (err) {
      if (attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function readJson<T>(dir: FileSystemDirectoryHandle, name: string): Promise<T | undefined> {
  try {
    return JSON.parse(await (await (await dir.getFileHandle(name)).getFile()).text()) as T;
  } catch {
    return undefined;
  }
}

async function writeJson(dir: FileSystemDirectoryHandle, name: string, value: unknown): Promise<void> {
  const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
  await w.write(JSON.stringify(value));
  await w.close();
}
