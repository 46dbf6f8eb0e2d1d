/**
 * Byte sources: where checkpoint bytes come from. The loader reads tensors lazily through this interface, so
 * the same code serves Node (positioned reads on a file handle), the browser (HTTP Range requests) and `File`/`Blob`.
 * A source never returns fewer bytes than asked for: a short read is a truncated file and throws FormatError.
 * Platform-neutral: no Node imports here (the file-handle source is in node-source.ts).
 */
import { FormatError } from '../errors.js';

export interface ByteSource {
  /** A name for error messages (a path or URL). */
  readonly name: string;
  /** Total size in bytes. */
  size(): Promise<number>;
  /** Exactly `length` bytes starting at `offset`, in a fresh (aligned, unshared) buffer. */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** A `Blob` or `File` (browser file picker, or Node's Blob). */
export function blobSource(blob: Blob, name = (blob as File).name ?? 'blob'): ByteSource {
  return {
    name,
    size: async () => blob.size,
    async read(offset, length) {
      checkRange(name, offset, length, blob.size);
      let buf: Uint8Array;
      try {
        buf = new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
      } catch (err) {
        throw new FormatError(`cannot read ${length} bytes at ${offset} (${(err as Error).message})`, name);
      }
      if (buf.length !== length) throw new FormatError(`short read: wanted ${length} bytes at ${offset}, got ${buf.length}`, name);
      return buf;
    },
    close: async () => {},
  };
}

/** An in-memory buffer (tests, generated files). */
export function memorySource(bytes: Uint8Array, name = 'memory'): ByteSource {
  return {
    name,
    size: async () => bytes.length,
    async read(offset, length) {
      checkRange(name, offset, length, bytes.length);
      return bytes.slice(offset, offset + length);
    },
    close: async () => {},
  };
}

export function checkRange(name: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new FormatError(`read of ${length} bytes at offset ${offset} is outside the file (${size} bytes): truncated or corrupt`, name);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP Range source

/** The part of `fetch` the HTTP source uses (so tests and other runtimes can pass their own). */
export type FetchFn = (url: string, init?: { headers?: Record<string, string>; method?: string }) => Promise<Response>;

export interface HttpSourceOptions {
  /** Bytes asked for by the first request, which also learns the file size; later reads inside them are free. */
  probeBytes?: number;
  /**
   * When the server ignores `Range` and answers 200 with the whole file, a file up to this size is read once into
   * memory and served from there; a larger one is refused (its body is cancelled, not downloaded). Default 256 MiB.
   */
  maxFullDownload?: number;
  /** Extra request headers (e.g. Authorization). */
  headers?: Record<string, string>;
  /** Retries of a request that failed on the network or with 429/5xx. Default 2. */
  retries?: number;
}

interface ProbeResult {
  size: number;
  /** The first bytes of the file, or the whole file when the server does not do ranges. */
  head: Uint8Array;
  whole: boolean;
}

/**
 * A file behind a URL, read with HTTP Range requests (`206 Partial Content`, `Content-Range: bytes a-b/total`
 * checked against what was asked). Works in the browser and in Node 18+ (global fetch).
 */
export function httpSource(url: string, fetchFn: FetchFn = (u, init) => fetch(u, init), opts: HttpSourceOptions = {}): ByteSource {
  const probeBytes = Math.max(1, opts.probeBytes ?? 65536);
  const maxFull = opts.maxFullDownload ?? 256 * 2 ** 20;
  let probe: Promise<ProbeResult> | undefined;

  const getProbe = (): Promise<ProbeResult> => {
    probe ??= (async () => {
      const res = await fetchWithRetry(url, fetchFn, { ...opts.headers, Range: `bytes=0-${probeBytes - 1}` }, opts.retries);
      if (res.status === 206) {
        const cr = parseContentRange(res.headers.get('content-range'), url);
        if (cr.start !== 0 || cr.end === undefined || cr.end - cr.start + 1 > probeBytes || cr.end >= cr.total) {
          await cancelBody(res);
          throw new FormatError(`server answered bytes=0-${probeBytes - 1} with Content-Range ${res.headers.get('content-range')}`, url);
        }
        const head = await readBody(res, cr.end + 1, cr.end + 1, url);
        return { size: cr.total, head, whole: head.length === cr.total };
      }
      if (res.status === 416) {
        // only an empty file cannot satisfy bytes=0-N
        await cancelBody(res);
        const cr = parseContentRange(res.headers.get('content-range'), url);
        if (cr.total !== 0) throw new FormatError(`server refused bytes=0-${probeBytes - 1} (HTTP 416) for a ${cr.total}-byte file`, url);
        return { size: 0, head: new Uint8Array(0), whole: true };
      }
      if (res.status === 200) {
        // The server ignored Range: read the body once (bounded) and serve every read from memory, or refuse.
        const len = contentLength(res);
        if (len !== undefined && len > maxFull) {
          await cancelBody(res);
          throw new FormatError(
            `server ignores HTTP Range requests (answered 200 with the whole ${len}-byte file); serve the checkpoint from a server that supports Range (any static file server, the HF hub) or pick the folder with the file picker`,
            url,
          );
        }
        const body = await readBody(res, len ?? 0, len ?? maxFull, url, len === undefined);
        return { size: body.length, head: body, whole: true };
      }
      await cancelBody(res);
      throw httpError(res, url);
    })();
    // a failed probe may be retried by a later call
    probe.catch(() => {
      probe = undefined;
    });
    return probe;
  };

  return {
    name: url,
    size: async () => (await getProbe()).size,
    async read(offset, length) {
      const p = await getProbe();
      checkRange(url, offset, length, p.size);
      if (length === 0) return new Uint8Array(0);
      if (offset + length <= p.head.length) return p.head.slice(offset, offset + length);
      if (p.whole) throw new FormatError(`internal: read past the cached file`, url);
      const end = offset + length - 1;
      const res = await fetchWithRetry(url, fetchFn, { ...opts.headers, Range: `bytes=${offset}-${end}` }, opts.retries);
      if (res.status !== 206) {
        await cancelBody(res);
        if (res.status === 200) throw new FormatError(`server stopped honouring Range requests (HTTP 200 to bytes=${offset}-${end})`, url);
        if (res.status === 416) throw new FormatError(`bytes ${offset}-${end} are past the end of the file on the server (HTTP 416): the file changed or is truncated`, url);
        throw httpError(res, url);
      }
      const cr = parseContentRange(res.headers.get('content-range'), url);
      if (cr.start !== offset || cr.end !== end) {
        await cancelBody(res);
        throw new FormatError(`asked for bytes ${offset}-${end}, server sent Content-Range ${res.headers.get('content-range')}`, url);
      }
      if (cr.total !== p.size) {
        await cancelBody(res);
        throw new FormatError(`file size changed on the server (${p.size} -> ${cr.total} bytes) while reading`, url);
      }
      return readBody(res, length, length, url);
    },
    close: async () => {
      probe = undefined;
    },
  };
}

/** GET with retries on network errors and 429/5xx; every failure becomes a FormatError naming the URL. */
export async function fetchWithRetry(url: string, fetchFn: FetchFn, headers: Record<string, string> | undefined, retries = 2): Promise<Response> {
  let lastErr: unknown;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 100 * 4 ** (attempt - 1)));
    try {
      const res = await fetchFn(url, { headers });
      if ((res.status === 429 || res.status >= 500) && attempt < retries) {
        await cancelBody(res);
        continue;
      }
      return res;
    } catch (err) {
      lastErr = err;
    }
  }
  throw new FormatError(`cannot fetch (${lastErr instanceof Error ? lastErr.message : String(lastErr)})`, url);
}

function httpError(res: Response, url: string): FormatError {
  return new FormatError(`HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`, url);
}

async function cancelBody(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // the body is being dropped anyway
  }
}

function contentLength(res: Response): number | undefined {
  const v = res.headers.get('content-length');
  if (v === null || !/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}

/** `bytes a-b/total` or `bytes * /total` (total must be known: we need the file size). */
export function parseContentRange(v: string | null, url: string): { start?: number; end?: number; total: number } {
  const m = v === null ? null : /^\s*bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+)\s*$/i.exec(v);
  if (!m) throw new FormatError(`missing or malformed Content-Range header (${JSON.stringify(v)}) in a range response`, url);
  const total = Number(m[3]);
  const start = m[1] === undefined ? undefined : Number(m[1]);
  const end = m[2] === undefined ? undefined : Number(m[2]);
  if (!Number.isSafeInteger(total) || (start !== undefined && (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end! < start))) {
    throw new FormatError(`malformed Content-Range header ${JSON.stringify(v)}`, url);
  }
  return { start, end, total };
}

/**
 * Reads a response body into one buffer without trusting the server: at most `cap` bytes are ever held (the
 * buffer grows only when `grow`), and anything but exactly `expected` bytes (unless `grow`) is a FormatError.
 */
export async function readBody(res: Response, expected: number, cap: number, url: string, grow = false): Promise<Uint8Array> {
  let buf = new Uint8Array(grow ? Math.min(cap, 1 << 16) : expected);
  let n = 0;
  try {
    if (!res.body) {
      const ab = new Uint8Array(await res.arrayBuffer());
      if (ab.length > cap) throw new FormatError(`response of ${ab.length} bytes exceeds ${cap}`, url);
      buf = ab;
      n = ab.length;
    } else {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (n + value.length > (grow ? cap : expected)) {
          await reader.cancel().catch(() => {});
          throw new FormatError(`server sent more than the ${grow ? cap : expected} bytes asked for`, url);
        }
        if (n + value.length > buf.length) {
          const bigger = new Uint8Array(Math.min(cap, Math.max(buf.length * 2, n + value.length)));
          bigger.set(buf.subarray(0, n));
          buf = bigger;
        }
        buf.set(value, n);
        n += value.length;
      }
    }
  } catch (err) {
    if (err instanceof FormatError) throw err;
    throw new FormatError(`connection failed while reading the body (${(err as Error).message})`, url);
  }
  if (!grow && n !== expected) throw new FormatError(`short read: server sent ${n} of ${expected} bytes`, url);
  return n === buf.length ? buf : buf.slice(0, n);
}
