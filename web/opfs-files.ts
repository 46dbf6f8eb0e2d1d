/**
 * A checkpoint folder behind a URL, with every byte read cached in the Origin Private File System, so a reload
 * (or a later visit) reads the weights from disk instead of downloading them again. Runs in the Web Worker
 * (synchronous access handles exist only there).
 *
 * Why OPFS and not the Cache API: the Cache API does not store 206 Partial Content responses, and the loader
 * reads tensors with HTTP Range requests (src/format/source.ts httpSource).
 *
 * Layout: webmoe-cache/<sha256(folder URL), 16 hex>/
 *   files.json          small files: name -> text, or null for "absent on the server" (404)
 *   <file>.bin          a sparse copy of the file: bytes at their own offsets
 *   <file>.ranges.json  {size, ranges: [[start, end), ...]} of the bytes present in <file>.bin, merged, sorted
 * A read the cached ranges cover is served from <file>.bin without touching the network; any other read is
 * fetched with one Range request, written into <file>.bin at its offset and added to the ranges.
 * If the cache cannot be used (another tab holds the file's lock, quota exceeded), reads go to the network.
 */
import { urlFiles, type CheckpointFiles } from '../src/model/checkpoint.js';
import { checkRange, httpSource, type ByteSource, type FetchFn } from '../src/format/source.js';

/** The worker-only OPFS handle (not in TypeScript's DOM lib). */
interface SyncAccessHandle {
  read(buffer: Uint8Array, opts: { at: number }): number;
  write(buffer: Uint8Array, opts: { at: number }): number;
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
}

const CACHE_DIR = 'webmoe-cache';

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
 * can say "loaded from cache" and the browser test can check that a reload downloads nothing.
 */
export async function cachedUrlFiles(baseUrl: string, fetchFn: FetchFn = (u, i) => fetch(u, i)): Promise<{ files: CheckpointFiles; stats: CacheStats }> {
  const stats: CacheStats = { networkBytes: 0, cachedBytes: 0, requests: 0 };
  const counting: FetchFn = async (u, i) => {
    stats.requests++;
    return fetchFn(u, i);
  };
  const remote = urlFiles(baseUrl, counting);
  let dir: FileSystemDirectoryHandle | undefined;
  try {
    const root = await navigator.storage.getDirectory();
    const top = await root.getDirectoryHandle(CACHE_DIR, { create: true });
    dir = await top.getDirectoryHandle(await cacheKey(baseUrl), { create: true });
  } catch {
    dir = undefined; // no OPFS (private mode, old browser): plain network reads
  }
  const texts = (dir && (await readJson<Record<string, string | null>>(dir, 'files.json'))) || {};
  const base = baseUrl.endsWith('/') ? baseUrl : baseUrl + '/';

  const files: CheckpointFiles = {
    name: remote.name,
    async readText(file) {
      if (file in texts) {
        const t = texts[file];
        if (t !== null && t !== undefined) stats.cachedBytes += t.length;
        return t ?? undefined;
      }
      const t = await remote.readText(file);
      if (t !== undefined) stats.networkBytes += t.length;
      texts[file] = t ?? null;
      if (dir) await writeJson(dir, 'files.json', texts).catch(() => {});
      return t;
    },
    async open(file) {
      const url = base + file.split('/').map(encodeURIComponent).join('/');
      const net = httpSource(url, counting);
      if (!dir) return countNetwork(net, stats);
      return cachedSource(dir, file, net, stats).catch(() => countNetwork(net, stats));
    },
  };
  return { files, stats };
}

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

async function cachedSource(dir: FileSystemDirectoryHandle, file: string, net: ByteSource, stats: CacheStats): Promise<ByteSource> {
  const metaName = `${safeName(file)}.ranges.json`;
  let meta = (await readJson<{ size: number; ranges: Ranges }>(dir, metaName)) ?? undefined;
  const fh = (await dir.getFileHandle(`${safeName(file)}.bin`, { create: true })) as FileHandleWithSync;
  // one OPFS operation at a time per file (the handle is exclusive); network reads still overlap
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn);
    queue = run.catch(() => {});
    return run;
  };
  const size = async (): Promise<number> => {
    if (!meta) {
      meta = { size: await net.size(), ranges: [] };
      await writeJson(dir, metaName, meta);
    }
    return meta.size;
  };
  return {
    name: net.name,
    size,
    async read(offset, length) {
      const total = await size();
      checkRange(net.name, offset, length, total);
      const m = meta!;
      if (covers(m.ranges, offset, offset + length)) {
        const buf = new Uint8Array(length);
        const n = await serial(() => withHandle(fh, (h) => h.read(buf, { at: offset }))).catch(() => -1);
        if (n === length) {
          stats.cachedBytes += length;
          return buf;
        }
        if (n >= 0) m.ranges = []; // the cache file is shorter than its ranges say: start over
      }
      const bytes = await net.read(offset, length);
      stats.networkBytes += bytes.length;
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
    },
    close: () => net.close(),
  };
}
