/**
 * The HTTP Range byte source and the URL checkpoint builder against a real node:http server on 127.0.0.1
 * (Range honoured, Range ignored, broken Content-Range, 404, a server that sends too much, a closed port).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { httpSource } from '../../src/format/source.js';
import { memoryFiles, openCheckpoint, readLinear, urlFiles } from '../../src/model/checkpoint.js';
import { makeToyCheckpointInMemory } from '../../src/model/toy.js';

const files = new Map<string, Uint8Array>();
let server: Server;
let base = '';
const log: { path: string; range?: string; sent: number }[] = [];

beforeAll(async () => {
  const blob = new Uint8Array(200_000).map((_, i) => (i * 7 + (i >> 8)) & 0xff);
  files.set('/blob.bin', blob);
  const toy = await makeToyCheckpointInMemory('ragged', { shards: 3, seed: 5 });
  for (const [name, bytes] of toy.data) files.set(`/ragged/${name}`, bytes);
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    // /norange/... ignores Range; /badrange/... lies in Content-Range; /toomuch/... sends extra bytes; /grow/... reports another size
    const mode = url.pathname.split('/')[1]!;
    const path = ['norange', 'badrange', 'toomuch', 'grow'].includes(mode) ? url.pathname.slice(mode.length + 1) : url.pathname;
    const body = files.get(path);
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
    ['a file that changed size', 'grow', /size changed on the server/],
  ];
  for (const [what, mode, msg] of bad) {
    it(`refuses ${what}`, async () => {
      const src = httpSource(`${base}/${mode}/blob.bin`, undefined, { probeBytes: 16, retries: 0 });
      const err = await src.read(100_000, 64).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(msg);
    });
  }

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
