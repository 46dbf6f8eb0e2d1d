/**
 * A tiny static file server for browser tests: HTTP Range (206 + Content-Range), ETag and Last-Modified as
 * common servers send them (from size and mtime; `validators: false` sends neither), CORS for another origin
 * (ETag exposed), `spa` to answer an HTML page for any missing file (Vite's dev server does), a `hook` that can
 * take over a request (to interrupt a download), and a log of every request, so a test can count what a page
 * downloaded.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';

export interface LoggedRequest {
  method: string;
  path: string;
  range?: string;
  status: number;
  bytes: number;
}

export interface StaticServer {
  url: string;
  requests: LoggedRequest[];
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.wasm': 'application/wasm',
};

export interface StaticServerOptions {
  cors?: boolean;
  /** Send ETag and Last-Modified (default true). */
  validators?: boolean;
  /** Answer `200 text/html` with a page for every file that does not exist. */
  spa?: boolean;
  /** Returns true when it has answered the request itself. */
  hook?: (req: IncomingMessage, res: ServerResponse, path: string) => boolean;
}

export async function startStaticServer(rootDir: string, opts: StaticServerOptions = {}): Promise<StaticServer> {
  const root = resolve(rootDir);
  const requests: LoggedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    const entry: LoggedRequest = { method: req.method ?? 'GET', path, range: req.headers.range, status: 200, bytes: 0 };
    requests.push(entry);
    if (opts.cors) {
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Access-Control-Allow-Headers', 'Range');
      res.setHeader('Access-Control-Expose-Headers', 'Content-Range, Content-Length, Accept-Ranges, ETag');
    }
    if (req.method === 'OPTIONS') {
      res.writeHead((entry.status = 204)).end();
      return;
    }
    if (opts.hook?.(req, res, path)) {
      entry.status = -1;
      return;
    }
    const file = normalize(join(root, path.endsWith('/') ? path + 'index.html' : path));
    let size: number;
    let mtimeMs: number;
    try {
      if (file !== root && !file.startsWith(root + sep)) throw new Error('outside');
      const st = statSync(file);
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
      mtimeMs = st.mtimeMs;
    } catch {
      if (opts.spa) {
        res.writeHead((entry.status = 200), { 'Content-Type': 'text/html' }).end('<!doctype html><html><head><title>app</title></head><body><div id="app"></div></body></html>');
        return;
      }
      res.writeHead((entry.status = 404), { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    if (opts.validators !== false) {
      res.setHeader('ETag', `"${size.toString(16)}-${Math.round(mtimeMs * 1000).toString(16)}"`);
      res.setHeader('Last-Modified', new Date(mtimeMs).toUTCString());
    }
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Type', TYPES[extname(file)] ?? 'application/octet-stream');
    res.setHeader('Cache-Control', 'no-store');
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = size - 1;
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (start >= size || end < start) {
        res.writeHead((entry.status = 416), { 'Content-Range': `bytes */${size}` }).end();
        return;
      }
      res.writeHead((entry.status = 206), { 'Content-Range': `bytes ${start}-${end}/${size}`, 'Content-Length': end - start + 1 });
    } else {
      res.writeHead(200, { 'Content-Length': size });
    }
    entry.bytes = end - start + 1;
    if (req.method === 'HEAD' || size === 0) res.end();
    else createReadStream(file, { start, end }).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${addr.port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
