/**
 * The HTTP Range byte source and the URL checkpoint builder against a real node:http server on 127.0.0.1
 * (Range honoured, Range ignored, broken Content-Range, 404, a server that sends too much, a closed port).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FormatError, HttpTimeoutError, SourceChangedError } from '../../src/errors.js';
import { fetchValidators, httpSource, versionMismatch } from '../../src/format/source.js';
import { loadCliModel } from '../../src/cli/load-model.js';
import { memoryFiles, openCheckpoint, readLinear, urlFiles } from '../../src/model/checkpoint.js';
import { makeToyCheckpointInMemory } from '../../src/model/toy.js';

const files = new Map<string, Uint8Array>();
let server: Server;
let base = '';
const log: { path: string; range?: string; sent: number }[] = [];
/** /versioned/blob.bin: same size, content and ETag follow `version` (changed by the tests). */
let version = 1;
/** Open responses of the hang/stall servers, ended in afterAll. */
const held: import('node:http').ServerResponse[] = [];

beforeAll(async () => {
  const blob = new Uint8Array(200_000).map((_, i) => (i * 7 + (i >> 8)) & 0xff);
  files.set('/blob.bin', blob);
  const toy = await makeToyCheckpointInMemory('ragged', { shards: 3, seed: 5 });
  for (const [name, bytes] of toy.data) files.set(`/ragged/${name}`, bytes);
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    // /norange/... ignores Range; /badrange/... lies in Content-Range; /toomuch/... sends extra bytes; /grow/... reports another size
    // /hang/... never answers; /stall/... sends headers and 10 bytes, then nothing; /trickle/... sends a chunk every 60 ms
    // /spa/... answers its HTML page for any file it does not have (a dev server's SPA fallback)
    const mode = url.pathname.split('/')[1]!;
    const modes = ['norange', 'badrange', 'toomuch', 'grow', 'hang', 'stall', 'trickle', 'spa', 'versioned'];
    const path = modes.includes(mode) ? url.pathname.slice(mode.length + 1) : url.pathname;
    if (mode === 'hang') {
      held.push(res);
      return;
    }
    if (mode === 'versioned') {
      const body = files.get('/blob.bin')!.map((b) => (b + version) & 0xff);
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!;
      const [start, end] = [Number(m[1]), Math.min(Number(m[2]), body.length - 1)];
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${body.length}`, ETag: `"v${version}"` }).end(body.subarray(start, end + 1));
      return;
    }
    const body = files.get(path) ?? (mode === 'spa' ? undefined : undefined);
    if (mode === 'spa' && !body) {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><html><body><div id="app"></div></body></html>');
      return;
    }
    if (body && (mode === 'stall' || mode === 'trickle')) {
      res.writeHead(200, { 'Content-Length': body.length, 'Content-Type': 'application/octet-stream' });
      res.write(body.subarray(0, 10));
      if (mode === 'stall') {
        held.push(res);
        return;
      }
      let at = 10;
      const step = Math.ceil((body.length - 10) / 5);
      const timer = setInterval(() => {
        res.write(body.subarray(at, at + step));
        at += step;
        if (at >= body.length) {
          clearInterval(timer);
          res.end();
        }
      }, 60);
      return;
    }
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    const range = req.headers.range;
    const m = range ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    if (!m || mode === 'norange') {
      log.push({ path, range, sent: body.length });
      res.writeHead(200, { 'Content-Length': body.length }).end(body);
      return;
    }
    const start = Number(m[1]);
    const end = Math.min(m[2] ? Number(m[2]) : body.length - 1, body.length - 1);
    if (start >= body.length) {
      res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
      return;
    }
    const total = mode === 'grow' && start > 0 ? body.length + 1 : body.length;
    const cr = mode === 'badrange' && start > 0 ? `bytes ${start + 1}-${end}/${total}` : `bytes ${start}-${end}/${total}`;
    if (mode === 'toomuch' && start > 0) {
      // chunked, so the body can run past what the range asked for
      res.writeHead(206, { 'Content-Range': cr });
      res.end(body.subarray(start, Math.min(body.length, end + 50)));
      log.push({ path, range, sent: end + 50 - start });
      return;
    }
    log.push({ path, range, sent: end - start + 1 });
    res.writeHead(206, { 'Content-Range': cr, 'Content-Length': end - start + 1, 'Accept-Ranges': 'bytes' }).end(body.subarray(start, end + 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const r of held) r.destroy();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('httpSource', () => {
  it('reads exact ranges and learns the size from Content-Range', async () => {
    const blob = files.get('/blob.bin')!;
    const src = httpSource(`${base}/blob.bin`, undefined, { probeBytes: 1024 });
    expect(await src.size()).toBe(blob.length);
    log.length = 0;
    expect(await src.read(10, 100)).toEqual(blob.subarray(10, 110)); // inside the probe: no request
    expect(log.length).toBe(0);
    expect(await src.read(150_000, 4096)).toEqual(blob.subarray(150_000, 154_096));
    expect(await src.read(blob.length - 1, 1)).toEqual(blob.subarray(blob.length - 1));
    expect(await src.read(5000, 0)).toEqual(new Uint8Array(0));
    expect(log.map((l) => l.range)).toEqual(['bytes=150000-154095', `bytes=${blob.length - 1}-${blob.length - 1}`]);
    await expect(src.read(blob.length - 10, 11)).rejects.toThrow(FormatError);
  });

  it('opens a sharded checkpoint through urlFiles and reads tensors lazily', async () => {
    log.length = 0;
    const ckpt = await openCheckpoint(urlFiles(`${base}/ragged`, undefined, { probeBytes: 4096 }));
    expect(ckpt.name).toBe('ragged');
    expect(ckpt.files.length).toBe(3);
    expect(ckpt.tokenizerJson).toBeDefined();
    const name = 'model.layers.1.mlp.experts.3.down_proj.weight';
    const viaHttp = await readLinear(ckpt, name);
    const local = await openCheckpoint(memoryFiles('ragged', new Map([...files].filter(([k]) => k.startsWith('/ragged/')).map(([k, v]) => [k.slice(8), v]))));
    expect(viaHttp).toEqual(await readLinear(local, name));
    const shardBytes = [...files].filter(([k]) => k.endsWith('.safetensors')).reduce((a, [, v]) => a + v.length, 0);
    const sent = log.filter((l) => l.path.endsWith('.safetensors')).reduce((a, l) => a + l.sent, 0);
    expect(sent).toBeLessThan(shardBytes / 4); // headers + one weight, not the files
    await ckpt.close();
  });

  it('serves a small file from one 200 response when the server ignores Range', async () => {
    log.length = 0;
    const blob = files.get('/blob.bin')!;
    const src = httpSource(`${base}/norange/blob.bin`);
    expect(await src.size()).toBe(blob.length);
    expect(await src.read(123_456, 1000)).toEqual(blob.subarray(123_456, 124_456));
    expect(await src.read(7, 3)).toEqual(blob.subarray(7, 10));
    expect(log.length).toBe(1); // the whole file once, never twice
  });

  it('refuses a large file from a server that ignores Range, without downloading it', async () => {
    const err = await httpSource(`${base}/norange/blob.bin`, undefined, { maxFullDownload: 10_000 }).size().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/ignores HTTP Range requests/);
  });

  const bad: [string, string, RegExp][] = [
    ['a wrong Content-Range', 'badrange', /server sent Content-Range/],
    ['a body longer than the range', 'toomuch', /more than the \d+ bytes asked for/],
  ];
  for (const [what, mode, msg] of bad) {
    it(`refuses ${what}`, async () => {
      const src = httpSource(`${base}/${mode}/blob.bin`, undefined, { probeBytes: 16, retries: 0 });
      const err = await src.read(100_000, 64).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(msg);
    });
  }

  it('never combines ranges of two versions: a changed size (no ETag, no Last-Modified) or ETag is a SourceChangedError', async () => {
    const grown = await httpSource(`${base}/grow/blob.bin`, undefined, { probeBytes: 16, retries: 0 }).read(100_000, 64).catch((e: unknown) => e);
    expect(grown).toBeInstanceOf(SourceChangedError);
    expect((grown as Error).message).toMatch(/grow\/blob\.bin: the file changed on the server.*size 200000 -> 200001/);
    version = 1;
    const src = httpSource(`${base}/versioned/blob.bin`, undefined, { probeBytes: 16, retries: 0 });
    expect(await src.validators()).toEqual({ size: 200_000, etag: '"v1"' });
    expect((await src.read(1000, 8))[0]).toBe((files.get('/blob.bin')![1000]! + 1) & 0xff);
    version = 2; // same size, new content: only the ETag tells
    const changed = await src.read(2000, 8).catch((e: unknown) => e);
    expect(changed).toBeInstanceOf(SourceChangedError);
    expect((changed as Error).message).toMatch(/ETag "v1" -> "v2"/);
    // a cache's recorded version: the probe itself must match it
    const pinned = await httpSource(`${base}/versioned/blob.bin`, undefined, { retries: 0, expect: { size: 200_000, etag: '"v1"' } }).size().catch((e: unknown) => e);
    expect(pinned).toBeInstanceOf(SourceChangedError);
    expect(await fetchValidators(`${base}/versioned/blob.bin`, fetch)).toEqual({ size: 200_000, etag: '"v2"' });
    expect(await fetchValidators(`${base}/missing.bin`, fetch)).toBeUndefined();
    expect(await fetchValidators(`${base}/spa/missing.json`, fetch)).toBeUndefined();
    // comparison rules: weak and strong ETags are one version; nothing to compare is a change
    expect(versionMismatch({ size: 5, etag: 'W/"a"' }, { size: 5, etag: '"a"' })).toBeUndefined();
    expect(versionMismatch({ size: 5, lastModified: 'Mon, 01 Jan 2024 00:00:00 GMT' }, { size: 5, lastModified: 'Tue, 02 Jan 2024 00:00:00 GMT' })).toMatch(/Last-Modified/);
    expect(versionMismatch({}, { etag: '"a"' })).toMatch(/nothing|no size/);
  });

  it('turns 404 and network failures into FormatErrors naming the URL', async () => {
    const e404 = await httpSource(`${base}/missing.bin`, undefined, { retries: 0 }).size().catch((e: unknown) => e);
    expect(e404).toBeInstanceOf(FormatError);
    expect((e404 as Error).message).toMatch(/missing\.bin.*HTTP 404/);
    // a port nothing listens on
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const eNet = await httpSource(`http://127.0.0.1:${port}/x`, undefined, { retries: 0 }).size().catch((e: unknown) => e);
    expect(eNet).toBeInstanceOf(FormatError);
    expect((eNet as Error).message).toMatch(/cannot fetch/);
    // a folder without config.json
    await expect(openCheckpoint(urlFiles(`${base}/nothing-here`, undefined, { retries: 0 }))).rejects.toThrow(/no config\.json/);
  });
});

describe('timeouts: a server that never answers, or stops sending, is a typed error naming the URL and the limit', () => {
  it('connect timeout: no response headers', async () => {
    const t0 = Date.now();
    const err = await httpSource(`${base}/hang/blob.bin`, undefined, { connectTimeoutMs: 300 }).size().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpTimeoutError);
    expect(err).toMatchObject({ name: 'HttpTimeoutError', phase: 'connect', timeoutMs: 300, url: `${base}/hang/blob.bin` });
    expect((err as Error).message).toMatch(/hang\/blob\.bin: no response within 0\.3 s/);
    expect(Date.now() - t0).toBeLessThan(5000); // not retried
    const text = await urlFiles(`${base}/hang/ragged`, undefined, { connectTimeoutMs: 300 }).readText('config.json').catch((e: unknown) => e);
    expect(text).toBeInstanceOf(HttpTimeoutError);
  });

  it('idle timeout: the body stops; a slow but steady body is fine and reports progress from the first byte', async () => {
    const t0 = Date.now();
    const err = await httpSource(`${base}/stall/blob.bin`, undefined, { idleTimeoutMs: 300 }).size().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpTimeoutError);
    expect(err).toMatchObject({ phase: 'idle', timeoutMs: 300 });
    expect((err as Error).message).toMatch(/stall\/blob\.bin: no data for 0\.3 s/);
    expect(Date.now() - t0).toBeLessThan(5000);
    const chunks: number[] = [];
    const src = httpSource(`${base}/trickle/blob.bin`, undefined, { idleTimeoutMs: 300, onBytes: (n) => chunks.push(n) });
    expect(await src.read(150_000, 10)).toEqual(files.get('/blob.bin')!.subarray(150_000, 150_010));
    expect(chunks[0]).toBe(10); // the first chunk is reported as it arrives
    expect(chunks.reduce((a, b) => a + b, 0)).toBe(200_000);
  });

  it('the CLI loader: --idle-timeout ends a stalled download with the typed error, and the progress line appears at the first byte', async () => {
    const config = files.get('/ragged/config.json')!;
    files.set('/slowmodel/config.json', config);
    const writes: string[] = [];
    const err = { isTTY: true, columns: 100, write: (s: string) => writes.push(s), cursorTo: () => true, clearLine: () => true, moveCursor: () => true, on: () => err };
    const t0 = Date.now();
    const e = await loadCliModel({ model: `${base}/stall/slowmodel`, backend: 'cpu', connectTimeout: 0.3, idleTimeout: 0.3 }, err).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HttpTimeoutError);
    expect((e as Error).message).toMatch(/slowmodel\/config\.json: no data for 0\.3 s/);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(writes.join('')).toMatch(/downloading config and headers: 0\.00 MiB/);
  });
});

describe('a dev server that answers its HTML page for missing files', () => {
  it('an HTML answer for the optional index is absent: model.safetensors is tried next; for config.json it is a clear error', async () => {
    const toy = await makeToyCheckpointInMemory('tiny', { seed: 1 });
    for (const [name, bytes] of toy.data) files.set(`/single/${name}`, bytes);
    expect(toy.data.has('model.safetensors.index.json')).toBe(false);
    const ckpt = await openCheckpoint(urlFiles(`${base}/spa/single`, undefined, { retries: 0 }));
    expect(ckpt.files).toEqual(['model.safetensors']);
    await ckpt.close();
    const err = await openCheckpoint(urlFiles(`${base}/spa/not-a-model`, undefined, { retries: 0 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/not-a-model\/config\.json: the server answered an HTML page \(content-type text\/html\) instead of the file: is the URL the checkpoint folder/);
    // a shard the server does not have, answered with its page: named, not parsed as safetensors
    const shard = await httpSource(`${base}/spa/single/missing.safetensors`, undefined, { retries: 0 }).size().catch((e: unknown) => e);
    expect(shard).toBeInstanceOf(FormatError);
    expect((shard as Error).message).toMatch(/missing\.safetensors: the server answered an HTML page \(content-type text\/html\)/);
  });
});
