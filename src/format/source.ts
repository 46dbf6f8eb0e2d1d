/**
 * Byte sources: where checkpoint bytes come from. The loader reads tensors lazily through this interface, so
 * the same code serves Node (positioned reads on a file handle), the browser (HTTP Range requests) and `File`/`Blob`.
 * A source never returns fewer bytes than asked for: a short read is a truncated file and throws FormatError.
 * Platform-neutral: no Node imports here (the file-handle source is in node-source.ts).
 */
import { FormatError, HttpTimeoutError, SourceChangedError } from '../errors.js';

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

/**
 * The part of `fetch` the HTTP source uses (so tests and other runtimes can pass their own). `signal` aborts the
 * request when a timeout fires; a FetchFn that ignores it still gets the timeout error, only the socket lingers.
 */
export type FetchFn = (url: string, init?: { headers?: Record<string, string>; method?: string; signal?: AbortSignal }) => Promise<Response>;

/** Default connect (response headers) and idle (no byte of the body) timeouts of HTTP reads. */
export const DEFAULT_HTTP_TIMEOUT_MS = 30_000;

/**
 * What identifies one version of a file behind a URL: its total size, and the ETag / Last-Modified the server
 * sent (when it sent them, and, cross-origin, exposed ETag through Access-Control-Expose-Headers).
 */
export interface Validators {
  /** Total bytes; undefined when a response did not say (a 200 without Content-Length). */
  size?: number;
  etag?: string;
  lastModified?: string;
}

/** The validators a response carries (`size` is filled in by the caller, who knows what the body is). */
export function responseValidators(res: Response, size: number | undefined): Validators {
  const v: Validators = { size };
  const etag = res.headers.get('etag');
  const lm = res.headers.get('last-modified');
  if (etag) v.etag = etag.trim();
  if (lm) v.lastModified = lm.trim();
  return v;
}

/**
 * Why `b` is not the same version as `a`, or undefined when it is. Sizes must agree; ETags (weak or strong, as
 * servers weaken them when compressing) and Last-Modified must agree where both responses carry them. Two sets
 * that share no field but an unknown size cannot be compared: that counts as a change. With neither ETag nor
 * Last-Modified, only the size is compared: a same-size replacement goes unnoticed (docs: README, browser).
 */
export function versionMismatch(a: Validators, b: Validators): string | undefined {
  if (a.size !== undefined && b.size !== undefined && a.size !== b.size) return `size ${a.size} -> ${b.size} bytes`;
  const tag = (t: string): string => t.replace(/^W\//, '');
  if (a.etag !== undefined && b.etag !== undefined && tag(a.etag) !== tag(b.etag)) return `ETag ${a.etag} -> ${b.etag}`;
  if (a.lastModified !== undefined && b.lastModified !== undefined && a.lastModified !== b.lastModified) return `Last-Modified ${a.lastModified} -> ${b.lastModified}`;
  const compared = (a.size !== undefined && b.size !== undefined) || (a.etag !== undefined && b.etag !== undefined) || (a.lastModified !== undefined && b.lastModified !== undefined);
  return compared ? undefined : 'no size, ETag or Last-Modified to compare';
}

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
  /** Retries of a request that failed on the network or with 429/5xx (not of a timeout). Default 2. */
  retries?: number;
  /** Milliseconds to wait for a response's headers before an HttpTimeoutError ('connect'). Default 30 000; 0 = none. */
  connectTimeoutMs?: number;
  /** Milliseconds without a byte of a response body before an HttpTimeoutError ('idle'). Default 30 000; 0 = none. */
  idleTimeoutMs?: number;
  /** Called with the size of every chunk of a body as it arrives: progress from the first byte. */
  onBytes?: (bytes: number, url: string) => void;
  /**
   * The version every byte must come from (a cache's recorded validators). Without it, the first response's
   * validators are pinned and every later range response must carry the same; a mismatch is a SourceChangedError.
   */
  expect?: Validators;
}

/** A ByteSource over a URL, which also tells the version (validators) of the file it reads. */
export interface HttpByteSource extends ByteSource {
  /** The pinned validators (the first response's, or `expect`). */
  validators(): Promise<Validators>;
}

interface ProbeResult {
  size: number;
  validators: Validators;
  /** The first bytes of the file, or the whole file when the server does not do ranges. */
  head: Uint8Array;
  whole: boolean;
}

/**
 * A file behind a URL, read with HTTP Range requests (`206 Partial Content`, `Content-Range: bytes a-b/total`
 * checked against what was asked). Works in the browser and in Node 18+ (global fetch).
 */
export function httpSource(url: string, fetchFn: FetchFn = (u, init) => fetch(u, init), opts: HttpSourceOptions = {}): HttpByteSource {
  const probeBytes = Math.max(1, opts.probeBytes ?? 65536);
  const maxFull = opts.maxFullDownload ?? 256 * 2 ** 20;
  let probe: Promise<ProbeResult> | undefined;
  /** Every response must be of the pinned version: `expect`, else the probe's. */
  const pin = (res: Response, size: number | undefined, pinned: Validators | undefined): Validators => {
    const v = responseValidators(res, size);
    const ref = opts.expect ?? pinned;
    const why = ref && versionMismatch(ref, v);
    if (why) {
      void cancelBody(res);
      throw new SourceChangedError(url, why);
    }
    return ref ?? v;
  };

  const getProbe = (): Promise<ProbeResult> => {
    probe ??= (async () => {
      const res = await fetchWithRetry(url, fetchFn, { ...opts.headers, Range: `bytes=0-${probeBytes - 1}` }, opts);
      if (res.ok && looksHtml(res.headers.get('content-type'), '') && !isHtmlUrl(url)) {
        await cancelBody(res);
        throw new FormatError(`the server answered an HTML page (content-type ${res.headers.get('content-type')}) instead of the file: is the file in the folder the URL names?`, url);
      }
      if (res.status === 206) {
        const cr = parseContentRange(res.headers.get('content-range'), url);
        if (cr.start !== 0 || cr.end === undefined || cr.end - cr.start + 1 > probeBytes || cr.end >= cr.total) {
          await cancelBody(res);
          throw new FormatError(`server answered bytes=0-${probeBytes - 1} with Content-Range ${res.headers.get('content-range')}`, url);
        }
        const validators = pin(res, cr.total, undefined);
        const head = await readBody(res, cr.end + 1, cr.end + 1, url, false, opts);
        return { size: cr.total, validators, head, whole: head.length === cr.total };
      }
      if (res.status === 416) {
        // only an empty file cannot satisfy bytes=0-N
        await cancelBody(res);
        const cr = parseContentRange(res.headers.get('content-range'), url);
        if (cr.total !== 0) throw new FormatError(`server refused bytes=0-${probeBytes - 1} (HTTP 416) for a ${cr.total}-byte file`, url);
        return { size: 0, validators: pin(res, 0, undefined), head: new Uint8Array(0), whole: true };
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
        const validators = pin(res, len, undefined);
        const body = await readBody(res, len ?? 0, len ?? maxFull, url, len === undefined, opts);
        return { size: body.length, validators: { ...validators, size: body.length }, head: body, whole: true };
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
    validators: async () => (await getProbe()).validators,
    async read(offset, length) {
      const p = await getProbe();
      checkRange(url, offset, length, p.size);
      if (length === 0) return new Uint8Array(0);
      if (offset + length <= p.head.length) return p.head.slice(offset, offset + length);
      if (p.whole) throw new FormatError(`internal: read past the cached file`, url);
      const end = offset + length - 1;
      const res = await fetchWithRetry(url, fetchFn, { ...opts.headers, Range: `bytes=${offset}-${end}` }, opts);
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
      // never combine ranges of two versions: size, ETag and Last-Modified must be the pinned ones
      pin(res, cr.total, p.validators);
      return readBody(res, length, length, url, false, opts);
    },
    close: async () => {
      probe = undefined;
    },
  };
}

/** The request options fetchWithRetry takes (a number is `retries`, as before). */
export type FetchOptions = Pick<HttpSourceOptions, 'retries' | 'connectTimeoutMs' | 'idleTimeoutMs' | 'onBytes'>;

/** Aborts the request behind a response (readBody's idle timeout closes the connection with it). */
const aborters = new WeakMap<Response, AbortController>();

/**
 * GET with retries on network errors and 429/5xx; every failure becomes a FormatError naming the URL. Response
 * headers must arrive within `connectTimeoutMs` (default 30 s), else an HttpTimeoutError (not retried: a server
 * that does not answer would only make the user wait three times as long).
 */
export async function fetchWithRetry(url: string, fetchFn: FetchFn, headers: Record<string, string> | undefined, options: number | FetchOptions = {}): Promise<Response> {
  const o: FetchOptions = typeof options === 'number' ? { retries: options } : options;
  const retries = o.retries ?? 2;
  const timeoutMs = o.connectTimeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
  let lastErr: unknown;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 100 * 4 ** (attempt - 1)));
    const ac = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const request = fetchFn(url, { headers, signal: ac.signal });
      const res =
        timeoutMs > 0
          ? await Promise.race([
              request,
              new Promise<never>((_, reject) => {
                timer = setTimeout(() => {
                  // reject first: aborting rejects the request at once, and the race must report the timeout
                  reject(new HttpTimeoutError(url, timeoutMs, 'connect'));
                  ac.abort();
                  request.then(cancelBody, () => {});
                }, timeoutMs);
              }),
            ])
          : await request;
      clearTimeout(timer);
      if ((res.status === 429 || res.status >= 500) && attempt < retries) {
        await cancelBody(res);
        continue;
      }
      aborters.set(res, ac);
      return res;
    } catch (err) {
      clearTimeout(timer);
      if (err instanceof HttpTimeoutError) throw err;
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
 * No byte for `idleTimeoutMs` (default 30 s) is an HttpTimeoutError; `onBytes` sees every chunk as it arrives.
 */
export async function readBody(res: Response, expected: number, cap: number, url: string, grow = false, io: FetchOptions = {}): Promise<Uint8Array> {
  let buf = new Uint8Array(grow ? Math.min(cap, 1 << 16) : expected);
  let n = 0;
  const idleMs = io.idleTimeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
  try {
    if (!res.body) {
      const ab = new Uint8Array(await res.arrayBuffer());
      if (ab.length > cap) throw new FormatError(`response of ${ab.length} bytes exceeds ${cap}`, url);
      buf = ab;
      n = ab.length;
      io.onBytes?.(n, url);
    } else {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await withIdleTimeout(reader, res, idleMs, url);
        if (done) break;
        io.onBytes?.(value.length, url);
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
    if (err instanceof FormatError || err instanceof HttpTimeoutError) throw err;
    throw new FormatError(`connection failed while reading the body (${(err as Error).message})`, url);
  }
  if (!grow && n !== expected) throw new FormatError(`short read: server sent ${n} of ${expected} bytes`, url);
  return n === buf.length ? buf : buf.slice(0, n);
}

/** reader.read(), or an HttpTimeoutError (and the request aborted) when no chunk comes within `idleMs`. */
function withIdleTimeout(reader: ReadableStreamDefaultReader<Uint8Array>, res: Response, idleMs: number, url: string): Promise<ReadableStreamReadResult<Uint8Array>> {
  if (!(idleMs > 0)) return reader.read();
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    reader.read(),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new HttpTimeoutError(url, idleMs, 'idle')); // before the abort, which fails the read at once
        aborters.get(res)?.abort();
        reader.cancel().catch(() => {});
      }, idleMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A small file's answer: its bytes and version, or why it counts as absent. */
export type TextAnswer = { found: true; bytes: Uint8Array; validators: Validators; contentType?: string } | { found: false; why: string; html: boolean };

/** A URL whose file is HTML itself (then an HTML answer is the file). */
function isHtmlUrl(url: string): boolean {
  return /\.x?html?$/i.test(new URL(url, 'http://x/').pathname);
}

/** An HTML page (by content type, or by its first bytes when the server says nothing useful). */
function looksHtml(contentType: string | null, first: string): boolean {
  if (contentType && /^\s*(text\/html|application\/xhtml\+xml)\b/i.test(contentType)) return true;
  return /^\s*<(!doctype\s+html|html[\s>]|head[\s>])/i.test(first);
}

/**
 * GET of a small file of a checkpoint folder (config.json, the index, tokenizer.json...). 404/410 is absent. So is
 * an HTML page (a dev server's single-page-app fallback, a login page) and, for a `.json` file, an answer that
 * does not start like JSON: for an optional file (the caller then tries the next layout), whereas for a
 * `required` one they are a FormatError saying what the server sent. Other HTTP errors are FormatErrors.
 */
export async function fetchText(url: string, fetchFn: FetchFn, opts: HttpSourceOptions & { maxBytes: number; required?: boolean }): Promise<TextAnswer> {
  const res = await fetchWithRetry(url, fetchFn, opts.headers, opts);
  if (res.status === 404 || res.status === 410) {
    await cancelBody(res);
    return { found: false, why: `HTTP ${res.status}`, html: false };
  }
  if (!res.ok) {
    await cancelBody(res);
    const hint = res.status === 401 || res.status === 403 ? ' (the server wants credentials: pass an Authorization header, or make the files public)' : '';
    throw new FormatError(`HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}${hint}`, url);
  }
  const contentType = res.headers.get('content-type') ?? undefined;
  const absent = (why: string, html: boolean): TextAnswer => {
    if (opts.required) {
      throw new FormatError(
        `the server answered ${why} instead of the file: is the URL the checkpoint folder? (a login page, or a dev server's page for a file it does not have, looks like this)`,
        url,
      );
    }
    return { found: false, why, html };
  };
  if (looksHtml(contentType ?? null, '') && !isHtmlUrl(url)) {
    await cancelBody(res);
    return absent(`an HTML page (content-type ${contentType})`, true);
  }
  const bytes = await readBody(res, 0, opts.maxBytes, url, true, opts);
  const first = new TextDecoder().decode(bytes.subarray(0, 64));
  if (looksHtml(null, first)) return absent(`an HTML page (content-type ${contentType ?? 'not given'})`, true);
  if (/\.json$/i.test(new URL(url, 'http://x/').pathname) && !/^\s*[{[]/.test(first.replace(/^\uFEFF/, ''))) {
    return absent(`something that is not JSON (content-type ${contentType ?? 'not given'}, starting ${JSON.stringify(first.slice(0, 20))})`, false);
  }
  return { found: true, bytes, validators: responseValidators(res, bytes.length), contentType };
}

/**
 * The current version of the file at `url`, by a cheap request (`Range: bytes=0-0`: one byte), or undefined when
 * the file is absent (404/410, or an HTML page for a file that is not HTML). For a cache's revalidation.
 */
export async function fetchValidators(url: string, fetchFn: FetchFn, opts: HttpSourceOptions = {}): Promise<Validators | undefined> {
  const res = await fetchWithRetry(url, fetchFn, { ...opts.headers, Range: 'bytes=0-0' }, opts);
  try {
    if (res.status === 404 || res.status === 410) return undefined;
    if (looksHtml(res.headers.get('content-type'), '') && !isHtmlUrl(url)) return undefined;
    if (res.status === 206 || res.status === 416) return responseValidators(res, parseContentRange(res.headers.get('content-range'), url).total);
    if (res.status === 200) return responseValidators(res, contentLength(res));
    throw httpError(res, url);
  } finally {
    await cancelBody(res);
  }
}
