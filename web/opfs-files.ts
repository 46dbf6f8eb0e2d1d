/**
 * A checkpoint folder behind a URL, with every byte read cached in the Origin Private File System, so a reload
 * (or a later visit) reads the weights from disk instead of downloading them again. Runs in the Web Worker
 * (synchronous access handles exist only there).
 *
 * Why OPFS and not the Cache API: the Cache API does not store 206 Partial Content responses, and the loader
 * reads tensors with HTTP Range requests (src/format/source.ts httpSource).
 *
 * The cache can never serve a wrong model (issue #11): every cached file carries the validators of the version
 * it holds (ETag, Last-Modified, total size), and every load revalidates each file with one cheap request
 * (`Range: bytes=0-0`) before using a cached byte: another version drops the file's cache. The network source
 * behind a cached file is pinned to the same validators, so a range of another version (the file replaced on
 * the server during a load) is a SourceChangedError: the file's cache is dropped and the worker loads again.
 * Failures are never cached: a 404, an HTML page (a login page, a dev server's fallback) or a timeout is asked
 * again next time. Without ETag and Last-Modified only the size is compared: a same-size replacement is not seen.
 *
 * Layout: webmoe-cache/<sha256("v2 " + folder URL), 16 hex>/
 *   texts.json          small files: name -> {text, v: validators}; absent files are not recorded
 *   <file>.bin          a sparse copy of the file: bytes at their own offsets
 *   <file>.meta.json    {v: validators, ranges: [[start, end), ...]} of the bytes present in <file>.bin, merged, sorted
 * A read the cached ranges cover is served from <file>.bin without touching the network; any other read is
 * fetched with one Range request, written into <file>.bin at its offset and added to the ranges.
 * If the cache cannot be used (another tab holds the file's lock, quota exceeded), reads go to the network.
 *
 * The page's expert store (opfs-experts.ts) lives in webmoe-cache/experts/ (so clearOpfsCache removes it too) and
 * reads the routed experts it lacks with `readThrough` (from the copy when cached, else from the network pinned
 * to the copy's version, without adding them to the copy: the store keeps them once, expert-major); it ties
 * itself to the version with `validators()` of the files (`sources`, by URL, as the loader opened them).
 */
import { FormatError, SourceChangedError } from '../src/errors.js';
import { urlFiles, type CheckpointFiles } from '../src/model/checkpoint.js';
import {
  checkRange,
  fetchText,
  fetchValidators,
  httpSource,
  versionMismatch,
  type ByteSource,
  type FetchFn,
  type HttpByteSource,
  type HttpSourceOptions,
  type Validators,
} from '../src/format/source.js';

/** The worker-only OPFS handle (not in TypeScript's DOM lib). */
interface SyncAccessHandle {
  read(buffer: Uint8Array, opts: { at: number }): number;
  write(buffer: Uint8Array, opts: { at: number }): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}
type FileHandleWithSync = FileSystemFileHandle & { createSyncAccessHandle(): Promise<SyncAccessHandle> };

export interface CacheStats {
  /** Bytes fetched from the network this session. */
  networkBytes: number;
  /** Bytes served from the OPFS cache this session. */
  cachedBytes: number;
  requests: number;
  /** Every byte of every response body as it arrived (revalidation and probes included): progress. */
  downloadedBytes: number;
}

/** The cache's folder in the origin's OPFS root (the expert store is its `experts/` folder). */
export const CACHE_DIR = 'webmoe-cache';

async function cacheKey(url: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(url));
  return Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** File names inside the cache folder: the checkpoint's own names, with '/' made safe. */
function safeName(file: string): string {
  return file.replace(/[^A-Za-z0-9._-]/g, '_');
}

async function readJson<T>(dir: FileSystemDirectoryHandle, name: string): Promise<T | undefined> {
  try {
    const f = await (await dir.getFileHandle(name)).getFile();
    return JSON.parse(await f.text()) as T;
  } catch {
    return undefined;
  }
}

async function writeJson(dir: FileSystemDirectoryHandle, name: string, value: unknown): Promise<void> {
  const h = await dir.getFileHandle(name, { create: true });
  const w = await h.createWritable();
  await w.write(JSON.stringify(value));
  await w.close();
}

/** Removes every cached checkpoint. */
export async function clearOpfsCache(): Promise<void> {
  const root = await navigator.storage.getDirectory();
  await root.removeEntry(CACHE_DIR, { recursive: true }).catch(() => {});
}

/** Sorted, merged [start, end) ranges. */
type Ranges = [number, number][];

export function addRange(ranges: Ranges, start: number, end: number): Ranges {
  const all = [...ranges, [start, end] as [number, number]].sort((a, b) => a[0] - b[0]);
  const out: Ranges = [];
  for (const r of all) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}

export function covers(ranges: Ranges, start: number, end: number): boolean {
  return ranges.some(([s, e]) => s <= start && end <= e);
}

/**
 * CheckpointFiles for `baseUrl` with an OPFS cache in front. `stats` counts what came from where, so the page
 * can say "loaded from cache" and the browser test can check that a reload downloads no weights. `http` carries
 * the timeouts; `onDownload` sees every downloaded chunk (progress from the first byte).
 */
export async function cachedUrlFiles(
  baseUrl: string,
  fetchFn: FetchFn = (u, i) => fetch(u, i),
  http: HttpSourceOptions = {},
  onDownload?: (networkBytes: number) => void,
): Promise<{ files: CheckpointFiles; stats: CacheStats; sources: Map<string, CachedByteSource> }> {
  const stats: CacheStats = { networkBytes: 0, cachedBytes: 0, requests: 0, downloadedBytes: 0 };
  const counting: FetchFn = async (u, i) => {
    stats.requests++;
    return fetchFn(u, i);
  };
  const opts: HttpSourceOptions = {
    ...http,
    onBytes: (n, url) => {
      stats.downloadedBytes += n;
      http.onBytes?.(n, url);
      onDownload?.(stats.downloadedBytes);
    },
  };
  const name = urlFiles(baseUrl).name;
  let dir: FileSystemDirectoryHandle | undefined;
  try {
    const root = await navigator.storage.getDirectory();
    const top = await root.getDirectoryHandle(CACHE_DIR, { create: true });
    dir = await top.getDirectoryHandle(await cacheKey(`v2 ${baseUrl}`), { create: true });
  } catch {
    dir = undefined; // no OPFS (private mode, old browser): plain network reads
  }
  const texts = (dir && (await readJson<Record<string, CachedText>>(dir, TEXTS))) || {};
  const saveTexts = async (): Promise<void> => {
    if (dir) await writeJson(dir, TEXTS, texts).catch(() => {});
  };
  const sources = new Map<string, CachedByteSource>();
  const base = baseUrl.endsWith('/') ? baseUrl : baseUrl + '/';
  const urlOf = (file: string): string => base + file.split('/').map(encodeURIComponent).join('/');

  const files: CheckpointFiles = {
    name,
    async readText(file) {
      const url = urlOf(file);
      const cached = texts[file];
      if (cached) {
        // revalidate: one byte, compared with the recorded version
        const now = await fetchValidators(url, counting, opts);
        if (now && !versionMismatch(cached.v, now)) {
          stats.cachedBytes += cached.text.length;
          return cached.text;
        }
        delete texts[file];
        await saveTexts();
      }
      // a 404 or an HTML page is absent (an error for config.json) and is never recorded
      const r = await fetchText(url, counting, { ...opts, maxBytes: MAX_TEXT_FILE_BYTES, required: file === 'config.json' });
      if (!r.found) return undefined;
      stats.networkBytes += r.bytes.length;
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(r.bytes);
      } catch {
        throw new FormatError('not valid UTF-8 text', url);
      }
      texts[file] = { text, v: r.validators };
      await saveTexts();
      return text;
    },
    async open(file) {
      const url = urlOf(file);
      if (!dir) return countNetwork(httpSource(url, counting, opts), stats);
      const src = await cachedSource(dir, file, url, counting, opts, stats);
      sources.set(url, src);
      return src;
    },
  };
  return { files, stats, sources };
}

/** A file read through its OPFS copy (see the header: `readThrough` and `validators` serve the expert store). */
export interface CachedByteSource extends ByteSource {
  /** The version the copy holds (revalidated against the server on first use). */
  validators(): Promise<Validators>;
  /** As read(), but bytes that come from the network are not added to the copy. */
  readThrough(offset: number, length: number): Promise<Uint8Array>;
}

/** A small file as cached: its text and the version it is. */
interface CachedText {
  text: string;
  v: Validators;
}

/** A big file's cache record: the version its bytes are of, and which bytes are present. */
interface FileMeta {
  v: Validators;
  ranges: Ranges;
}

const TEXTS = 'texts.json';
/** As in src/model/checkpoint.ts: config.json, tokenizer.json, the index are nowhere near this. */
const MAX_TEXT_FILE_BYTES = 256 * 2 ** 20;

function countNetwork(src: ByteSource, stats: CacheStats): ByteSource {
  return {
    name: src.name,
    size: () => src.size(),
    async read(offset, length) {
      const b = await src.read(offset, length);
      stats.networkBytes += b.length;
      return b;
    },
    close: () => src.close(),
  };
}

/**
 * Runs `fn` with the file's synchronous access handle, opened for this call only: the handle locks the file, and
 * holding it between reads would lock out another tab, or this page's next load right after a reload.
 */
async function withHandle<T>(fh: FileHandleWithSync, fn: (h: SyncAccessHandle) => T): Promise<T> {
  let handle: SyncAccessHandle | undefined;
  for (let attempt = 0; !handle; attempt++) {
    try {
      handle = await fh.createSyncAccessHandle();
    } catch (err) {
      // NoModificationAllowedError: a worker of the page being unloaded still holds the lock
      if (attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return fn(handle);
  } finally {
    handle.close();
  }
}

/**
 * A safetensors file read through its OPFS copy. The first use revalidates the recorded version (one byte from
 * the server) and drops the copy when the server has another; the network source is pinned to the version the
 * copy holds, so a read can never combine bytes of two versions: on a SourceChangedError the copy is dropped and
 * the error goes up (the worker then loads again, from the new version).
 */
async function cachedSource(dir: FileSystemDirectoryHandle, file: string, url: string, fetchFn: FetchFn, opts: HttpSourceOptions, stats: CacheStats): Promise<CachedByteSource> {
  const metaName = `${safeName(file)}.meta.json`;
  const fh = (await dir.getFileHandle(`${safeName(file)}.bin`, { create: true })) as FileHandleWithSync;
  // one OPFS operation at a time per file (the handle is exclusive); network reads still overlap
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn);
    queue = run.catch(() => {});
    return run;
  };
  const drop = async (): Promise<void> => {
    await serial(async () => {
      await dir.removeEntry(metaName).catch(() => {});
      await withHandle(fh, (h) => h.truncate(0)).catch(() => {});
    });
  };
  let state: Promise<{ meta: FileMeta; net: HttpByteSource }> | undefined;
  const open = (): Promise<{ meta: FileMeta; net: HttpByteSource }> => {
    state ??= (async () => {
      const recorded = await readJson<FileMeta>(dir, metaName);
      if (recorded && recorded.v && Array.isArray(recorded.ranges)) {
        const now = await fetchValidators(url, fetchFn, opts);
        if (now && !versionMismatch(recorded.v, now) && recorded.v.size !== undefined) {
          return { meta: recorded, net: httpSource(url, fetchFn, { ...opts, expect: recorded.v }) };
        }
        await drop(); // another version (or gone): nothing of the old copy may be used
      }
      const net = httpSource(url, fetchFn, opts);
      const meta: FileMeta = { v: await net.validators(), ranges: [] };
      await serial(() => writeJson(dir, metaName, meta)).catch(() => {});
      return { meta, net };
    })();
    state.catch(() => {
      state = undefined;
    });
    return state;
  };
  const read = async (offset: number, length: number, keep: boolean): Promise<Uint8Array> => {
    const { meta: m, net } = await open();
    checkRange(url, offset, length, m.v.size!);
    if (covers(m.ranges, offset, offset + length)) {
      const buf = new Uint8Array(length);
      const n = await serial(() => withHandle(fh, (h) => h.read(buf, { at: offset }))).catch(() => -1);
      if (n === length) {
        stats.cachedBytes += length;
        return buf;
      }
      if (n >= 0) m.ranges = []; // the cache file is shorter than its ranges say: start over
    }
    let bytes: Uint8Array;
    try {
      bytes = await net.read(offset, length);
    } catch (err) {
      if (err instanceof SourceChangedError) {
        m.ranges = [];
        state = undefined;
        await drop();
      }
      throw err;
    }
    stats.networkBytes += bytes.length;
    if (!keep) return bytes;
    try {
      await serial(async () => {
        await withHandle(fh, (h) => {
          h.write(bytes, { at: offset });
          h.flush();
        });
        m.ranges = addRange(m.ranges, offset, offset + length);
        await writeJson(dir, metaName, m);
      });
    } catch {
      // quota, lock or I/O error: the read still succeeds from the network
    }
    return bytes;
  };
  return {
    name: url,
    size: async () => (await open()).meta.v.size!,
    validators: async () => ({ ...(await open()).meta.v }),
    read: (offset, length) => read(offset, length, true),
    readThrough: (offset, length) => read(offset, length, false),
    close: async () => {
      const s = state;
      state = undefined;
      if (s) await (await s.catch(() => undefined))?.net.close();
    },
  };
}
