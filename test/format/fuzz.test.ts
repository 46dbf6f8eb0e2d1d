/**
 * Seeded fuzz of everything that parses untrusted checkpoint bytes: safetensors headers (random bytes, header
 * lengths, JSON-level edits of dtypes, shapes, offsets and metadata, duplicate keys), truncation and trailing
 * bytes, config.json fields and the shard index. Every failure must be a WebmoeError (no TypeError/RangeError),
 * and the reader must never ask its source for more bytes than the file has (so it never allocates what a
 * corrupt header claims). Change SEED to explore; a failure prints the seed, iteration and mutation.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WebmoeError } from '../../src/errors.js';
import { DTYPE_BITS, openSafetensors, readTensorBytes } from '../../src/format/safetensors.js';
import { memorySource, type ByteSource } from '../../src/format/source.js';
import { encodeSafetensors } from '../../src/format/writer.js';
import { parseConfig } from '../../src/model/config.js';
import { memoryFiles, openCheckpoint } from '../../src/model/checkpoint.js';
import { makeToyCheckpointInMemory, Rng } from '../../src/model/toy.js';
import { golden } from './shared-paths.js';

const SEED = Number(process.env.WEBMOE_FUZZ_SEED ?? 20240611);
/** WEBMOE_FUZZ_SCALE=10 runs ten times the iterations (for a longer local hunt). */
const SCALE = Number(process.env.WEBMOE_FUZZ_SCALE ?? 1);
// the golden tiny checkpoint (written by an independent implementation)
const tinyFile = new Uint8Array(readFileSync(`${golden('tiny')}/model.safetensors`));
const tinyConfig = readFileSync(`${golden('tiny')}/config.json`, 'utf8');

/** Wraps a source and records the largest read it was asked for. */
function spy(bytes: Uint8Array): ByteSource & { maxAsked: number } {
  const inner = memorySource(bytes, 'fuzz.safetensors');
  const s = {
    name: inner.name,
    maxAsked: 0,
    size: () => inner.size(),
    read(offset: number, length: number) {
      s.maxAsked = Math.max(s.maxAsked, length);
      return inner.read(offset, length);
    },
    close: () => inner.close(),
  };
  return s;
}

function split(file: Uint8Array): { headerLen: number; header: string; data: Uint8Array } {
  const headerLen = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  return { headerLen, header: new TextDecoder().decode(file.subarray(8, 8 + headerLen)), data: file.subarray(8 + headerLen) };
}

function assemble(headerText: string, data: Uint8Array, lenOverride?: bigint): Uint8Array {
  const h = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng.uniform() * xs.length)]!;
const WEIRD = [-1, 0, 1, 1.5, 2 ** 31, 2 ** 53, 2 ** 64, '3', null, [], {}, true, 'x'];
const DTYPES = [...Object.keys(DTYPE_BITS), 'f32', '', 'F8_E4M3FN', 'constructor', '__proto__'];

/** One random corruption of a safetensors file; returns the new bytes and a description. */
function mutate(rng: Rng, file: Uint8Array): [Uint8Array, string] {
  const { headerLen, header, data } = split(file);
  const kind = Math.floor(rng.uniform() * 7);
  if (kind === 0) {
    const out = file.slice();
    const n = 1 + Math.floor(rng.uniform() * 4);
    const where: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = Math.floor(rng.uniform() * (8 + headerLen));
      out[p] = Math.floor(rng.uniform() * 256);
      where.push(p);
    }
    return [out, `random bytes at ${where.join(',')}`];
  }
  if (kind === 1) {
    const len = pick(rng, [0n, 1n, 7n, BigInt(headerLen - 1), BigInt(headerLen + 1), BigInt(file.length), BigInt(file.length - 8), 2n ** 32n, 2n ** 53n, 2n ** 63n, 100_000_000n, 100_000_001n, BigInt(Math.floor(rng.uniform() * 2 ** 32))]);
    const out = file.slice();
    new DataView(out.buffer).setBigUint64(0, len, true);
    return [out, `header length ${len}`];
  }
  if (kind === 2) {
    const at = Math.floor(rng.uniform() * file.length);
    return [file.slice(0, at), `truncated at ${at}`];
  }
  if (kind === 3) {
    const extra = new Uint8Array(1 + Math.floor(rng.uniform() * 16));
    const out = new Uint8Array(file.length + extra.length);
    out.set(file);
    return [out, `${extra.length} trailing bytes`];
  }
  if (kind === 4) {
    const junk = Array.from({ length: 1 + Math.floor(rng.uniform() * 64) }, () => String.fromCharCode(32 + Math.floor(rng.uniform() * 95))).join('');
    return [assemble(pick(rng, [junk, '{' + junk, '[' + junk + ']', '"' + junk + '"', '{"a":' + junk + '}']), data), 'junk header'];
  }
  if (kind === 5) {
    // duplicate a key at the text level (JSON.parse would silently keep the last)
    const m = /"(model\.[^"]+|[a-z]\.[a-z0-9]+)":(\{[^}]*\})/.exec(header);
    if (!m) return [file, 'no-op'];
    return [assemble(header.replace('{', `{"${m[1]}":${m[2]},`), data), `duplicate key ${m[1]}`];
  }
  // JSON-level edit of one entry
  const h = JSON.parse(header) as Record<string, unknown>;
  const names = Object.keys(h).filter((k) => k !== '__metadata__');
  const name = pick(rng, names);
  const e = h[name] as { dtype: unknown; shape: unknown; data_offsets: unknown };
  const op = Math.floor(rng.uniform() * 12);
  let what = '';
  const shape = e.shape as number[];
  const offs = e.data_offsets as number[];
  switch (op) {
    case 0: e.dtype = pick(rng, DTYPES); what = `dtype ${JSON.stringify(e.dtype)}`; break;
    case 1: e.shape = [...shape, pick(rng, [1, 2, 0])]; what = 'extra dim'; break;
    case 2: e.shape = shape.slice(1); what = 'dropped dim'; break;
    case 3: e.shape = shape.length ? [pick(rng, WEIRD), ...shape.slice(1)] : pick(rng, WEIRD); what = `dim ${JSON.stringify(e.shape)}`; break;
    case 4: e.data_offsets = [offs[0]! - 1, offs[1]! - 1]; what = 'offsets -1'; break;
    case 5: e.data_offsets = [offs[0]! + 1, offs[1]! + 1]; what = 'offsets +1'; break;
    case 6: e.data_offsets = [offs[1], offs[0]]; what = 'offsets swapped'; break;
    case 7: e.data_offsets = pick(rng, [[offs[0]], [offs[0], offs[1], 0], 'x', [offs[0], 2 ** 60], [-1, offs[1]], [offs[0], offs[1]! + 1e-3], null]); what = `offsets ${JSON.stringify(e.data_offsets)}`; break;
    case 8: delete h[name]; what = 'tensor removed (gap)'; break;
    case 9: h.__metadata__ = pick(rng, [{ format: 1 }, ['pt'], 'pt', { a: {} }, null, 7]); what = `metadata ${JSON.stringify(h.__metadata__)}`; break;
    case 10: h[name] = pick(rng, WEIRD); what = `entry ${JSON.stringify(h[name])}`; break;
    default: {
      // make two entries overlap by moving one onto another's range
      const other = h[pick(rng, names)] as { data_offsets: number[] };
      e.data_offsets = other.data_offsets;
      what = 'offsets copied from another tensor';
    }
  }
  return [assemble(JSON.stringify(h), data), `${name}: ${what}`];
}

async function expectTyped(label: string, run: () => Promise<unknown>, failures: string[]): Promise<'ok' | 'typed'> {
  try {
    await run();
    return 'ok';
  } catch (err) {
    if (!(err instanceof WebmoeError)) failures.push(`${label}: ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    return 'typed';
  }
}

describe('fuzz (seeded)', () => {
  const multi = encodeSafetensors([
    { name: 'a.f32', dtype: 'F32', shape: [3, 2], data: new Uint8Array(24) },
    { name: 'b.bf16', dtype: 'BF16', shape: [5], data: new Uint8Array(10) },
    { name: 'c.u8', dtype: 'U8', shape: [7], data: new Uint8Array(7) },
    { name: 'd.f4', dtype: 'F4', shape: [4], data: new Uint8Array(2) },
    { name: 'e.empty', dtype: 'I64', shape: [0], data: new Uint8Array(0) },
  ]);

  it('safetensors files: every failure is typed and no read exceeds the file', async () => {
    const rng = new Rng(SEED, 'safetensors');
    const failures: string[] = [];
    const counts = { ok: 0, typed: 0 };
    const t0 = Date.now();
    for (let i = 0; i < 1500 * SCALE; i++) {
      const base = i % 3 === 0 ? multi : tinyFile;
      const [bytes, what] = mutate(rng, base);
      const src = spy(bytes);
      const label = `seed ${SEED} iteration ${i} (${what})`;
      counts[
        await expectTyped(label, async () => {
          const st = await openSafetensors(src);
          for (const t of st.tensors.values()) await readTensorBytes(t);
        }, failures)
      ]++;
      if (src.maxAsked > bytes.length) failures.push(`${label}: asked for ${src.maxAsked} bytes of a ${bytes.length}-byte file`);
    }
    expect(failures.slice(0, 10)).toEqual([]);
    expect(counts.typed).toBeGreaterThan(1000 * SCALE); // most mutations must be caught
    expect(Date.now() - t0).toBeLessThan(30_000 * SCALE);
  });

  it('checkpoints: corrupt shards, configs and indexes fail with typed errors', async () => {
    const rng = new Rng(SEED, 'checkpoint');
    const failures: string[] = [];
    for (let i = 0; i < 300 * SCALE; i++) {
      const [bytes, what] = mutate(rng, tinyFile);
      await expectTyped(`shard ${i} (${what})`, () => openCheckpoint(memoryFiles('tiny', { 'config.json': new TextEncoder().encode(tinyConfig), 'model.safetensors': bytes })), failures);
    }
    // config.json: one field replaced by a weird value, removed, or the text cut
    const fields = Object.keys(JSON.parse(tinyConfig) as object);
    for (let i = 0; i < 400 * SCALE; i++) {
      const cfg = JSON.parse(tinyConfig) as Record<string, unknown>;
      const f = pick(rng, fields);
      const op = rng.uniform();
      if (op < 0.2) delete cfg[f];
      else cfg[f] = pick(rng, [...WEIRD, -5, 1e308, 'deepseek_v3', { type: 'yarn' }, [1, 2]]);
      await expectTyped(`config ${f} = ${JSON.stringify(cfg[f])}`, async () => parseConfig(cfg, 'config.json'), failures);
      const cut = tinyConfig.slice(0, Math.floor(rng.uniform() * tinyConfig.length));
      await expectTyped(`config cut`, () => openCheckpoint(memoryFiles('tiny', { 'config.json': new TextEncoder().encode(cut), 'model.safetensors': tinyFile })), failures);
    }
    // shard index
    const toy = await makeToyCheckpointInMemory('tiny', { shards: 3 });
    const index = JSON.parse(new TextDecoder().decode(toy.data.get('model.safetensors.index.json'))) as { weight_map: Record<string, string> };
    const names = Object.keys(index.weight_map);
    for (let i = 0; i < 200 * SCALE; i++) {
      const idx = structuredClone(index) as Record<string, unknown> & { weight_map: Record<string, unknown> };
      const op = Math.floor(rng.uniform() * 5);
      if (op === 0) idx.weight_map[pick(rng, names)] = pick(rng, ['../x.safetensors', 'missing.safetensors', 3, null, '', '/etc/passwd']);
      else if (op === 1) delete idx.weight_map[pick(rng, names)];
      else if (op === 2) idx.weight_map = pick(rng, WEIRD) as Record<string, unknown>;
      else if (op === 3) delete (idx as Record<string, unknown>).weight_map;
      else idx.weight_map[pick(rng, names)] = pick(rng, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
      const files = new Map(toy.data);
      files.set('model.safetensors.index.json', new TextEncoder().encode(JSON.stringify(idx)));
      await expectTyped(`index op ${op}`, () => openCheckpoint(memoryFiles('toy', files)), failures);
    }
    expect(failures.slice(0, 10)).toEqual([]);
  });
});
