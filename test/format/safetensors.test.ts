/**
 * safetensors reader and writer: round trips (single file and shards), and one named case per validation rule
 * of docs/model.md §2.1 (the fuzz test covers random corruption).
 */
import { describe, expect, it } from 'vitest';
import { FormatError, InputError, ShapeError } from '../../src/errors.js';
import { asFloat32, asUint16, findDuplicateKey, openSafetensors, readTensorBytes } from '../../src/format/safetensors.js';
import { memorySource } from '../../src/format/source.js';
import { CheckpointWriter, encodeSafetensors, layoutSafetensors, memoryFolder, planShards, shardFileName } from '../../src/format/writer.js';

const enc = new TextEncoder();

/** A file from a header object and a data section, exactly as given (no validation). */
export function rawFile(header: unknown, data: Uint8Array, headerText = JSON.stringify(header)): Uint8Array {
  const h = enc.encode(headerText);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const sample = () => [
  { name: 'a.u8', dtype: 'U8' as const, shape: [3], data: new Uint8Array([1, 2, 3]) },
  { name: 'b.f32', dtype: 'F32' as const, shape: [2, 2], data: new Uint8Array(new Float32Array([1, -2, 3.5, 0]).buffer) },
  { name: 'c.bf16', dtype: 'BF16' as const, shape: [3], data: new Uint8Array(new Uint16Array([0x3f80, 0x4000, 0xbf80]).buffer) },
  { name: 'd.scalar', dtype: 'F64' as const, shape: [], data: new Uint8Array(new Float64Array([Math.PI]).buffer) },
  { name: 'e.empty', dtype: 'F32' as const, shape: [0, 7], data: new Uint8Array(0) },
];

describe('safetensors writer + reader', () => {
  it('round-trips tensors, metadata, scalars and empty tensors', async () => {
    const bytes = encodeSafetensors(sample(), { format: 'pt', note: 'x' });
    const st = await openSafetensors(memorySource(bytes, 'mem'));
    expect(st.metadata).toEqual({ format: 'pt', note: 'x' });
    expect([...st.tensors.keys()].sort()).toEqual(['a.u8', 'b.f32', 'c.bf16', 'd.scalar', 'e.empty']);
    expect([...asFloat32(await readTensorBytes(st.tensors.get('b.f32')!))]).toEqual([1, -2, 3.5, 0]);
    expect([...asUint16(await readTensorBytes(st.tensors.get('c.bf16')!))]).toEqual([0x3f80, 0x4000, 0xbf80]);
    expect(st.tensors.get('d.scalar')!.shape).toEqual([]);
    expect(st.tensors.get('e.empty')!.byteLength).toBe(0);
  });

  it('pads the header to 8 bytes and aligns every tensor to its element size', () => {
    const layout = layoutSafetensors(sample());
    expect((layout.header.length - 8) % 8).toBe(0);
    for (const t of layout.tensors.values()) {
      const size = { U8: 1, F32: 4, BF16: 2, F64: 8 }[t.dtype as 'U8'];
      expect((layout.dataStart + t.begin) % size, t.name).toBe(0);
    }
  });

  it('refuses duplicate names, wrong data lengths and impossible shapes', () => {
    const s = sample();
    expect(() => encodeSafetensors([s[0]!, s[0]!])).toThrow(InputError);
    expect(() => encodeSafetensors([{ ...s[1]!, shape: [3, 2] }])).toThrow(ShapeError);
    expect(() => layoutSafetensors([{ name: 'x', dtype: 'F4', shape: [3] }])).toThrow(ShapeError);
  });

  it('splits into K shards with an index whose weight_map covers every tensor', async () => {
    const tensors = Array.from({ length: 12 }, (_, i) => ({ name: `t${String(i).padStart(2, '0')}`, dtype: 'F32' as const, shape: [i + 1, 5] }));
    const plan = planShards(tensors, 4);
    expect(plan.files.map((f) => f.file)).toEqual([0, 1, 2, 3].map((i) => shardFileName(i, 4)));
    expect(shardFileName(0, 4)).toBe('model-00001-of-00004.safetensors');
    expect(plan.files.every((f) => f.layout.tensors.size > 0)).toBe(true);
    expect(Object.keys(plan.index!.weight_map).length).toBe(12);
    expect(plan.index!.metadata.total_size).toBe(tensors.reduce((a, t) => a + t.shape[0]! * 20, 0));
    const folder = memoryFolder();
    const w = await CheckpointWriter.create(plan, folder);
    for (const t of tensors) {
      const v = new Float32Array(t.shape[0]! * 5).map((_, j) => j + 100 * t.shape[0]!);
      const b = new Uint8Array(v.buffer);
      await w.write(t.name, b.subarray(0, 8)); // in two pieces
      await w.write(t.name, b.subarray(8));
    }
    await w.close();
    const index = JSON.parse(new TextDecoder().decode(folder.files.get('model.safetensors.index.json')));
    for (const t of tensors) {
      const file = index.weight_map[t.name];
      const st = await openSafetensors(memorySource(folder.files.get(file)!, file));
      const v = asFloat32(await readTensorBytes(st.tensors.get(t.name)!));
      expect(v[3]).toBe(3 + 100 * t.shape[0]!);
    }
  });

  it('refuses an incomplete or overfull tensor and a shard count larger than the tensors', async () => {
    const plan = planShards([{ name: 'x', dtype: 'U8', shape: [4] }]);
    const w = await CheckpointWriter.create(plan, memoryFolder());
    await expect(w.write('x', new Uint8Array(5))).rejects.toThrow(ShapeError);
    await w.write('x', new Uint8Array(3));
    await expect(w.close()).rejects.toThrow(/not fully written/);
    expect(() => planShards([{ name: 'x', dtype: 'U8', shape: [4] }], 2)).toThrow(InputError);
    expect(() => planShards([], 0)).toThrow(InputError);
  });
});

describe('safetensors validation (one case per rule)', () => {
  const data = new Uint8Array(16);
  const good = { __metadata__: { format: 'pt' }, x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'U8', shape: [8], data_offsets: [8, 16] } };
  const open = (bytes: Uint8Array) => openSafetensors(memorySource(bytes, 'bad.safetensors'));
  const variant = (patch: (h: Record<string, any>) => void): Uint8Array => {
    const h = structuredClone(good) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- free-form header edits
    patch(h);
    return rawFile(h, data);
  };

  it('accepts the unmodified file', async () => {
    expect((await open(rawFile(good, data))).tensors.size).toBe(2);
  });

  const cases: [string, () => Uint8Array, RegExp][] = [
    ['a file shorter than 8 bytes', () => new Uint8Array(5), /too short/],
    ['a header length past the end', () => { const b = rawFile(good, data); new DataView(b.buffer).setBigUint64(0, 10_000n, true); return b; }, /runs past the end/],
    ['a header length over 100 MB', () => { const b = rawFile(good, data); new DataView(b.buffer).setBigUint64(0, 2n ** 62n, true); return b; }, /100 MB/],
    ['invalid JSON', () => rawFile(null, data, '{"x": '), /not valid UTF-8 JSON/],
    ['invalid UTF-8', () => { const b = rawFile(good, data); b[10] = 0xff; return b; }, /not valid UTF-8 JSON/],
    ['a header that is an array', () => rawFile([1, 2], data), /must be a JSON object/],
    ['an unknown dtype', () => variant((h) => (h.x.dtype = 'F128')), /unknown dtype/],
    ['a dtype inherited from Object.prototype', () => variant((h) => (h.x.dtype = 'toString')), /unknown dtype/],
    ['a negative dimension', () => variant((h) => (h.x.shape = [-2])), /non-negative integers/],
    ['a fractional dimension', () => variant((h) => (h.x.shape = [1.5])), /non-negative integers/],
    ['shape x dtype != byte length', () => variant((h) => (h.x.shape = [3])), /needs 12 bytes/],
    ['an impossibly large shape', () => variant((h) => (h.x.shape = [2 ** 40, 2 ** 40])), /impossibly large/],
    ['negative offsets', () => variant((h) => (h.x.data_offsets = [-8, 0])), /two non-negative integers/],
    ['reversed offsets', () => variant((h) => (h.x.data_offsets = [8, 0])), /end before they begin/],
    ['overlapping tensors', () => variant((h) => { h.y.data_offsets = [4, 12]; h.y.shape = [8]; }), /overlaps/],
    ['a gap between tensors', () => variant((h) => { h.y.data_offsets = [9, 16]; h.y.shape = [7]; }), /gap of 1 bytes/],
    ['data past the end of the file', () => variant((h) => { h.y.data_offsets = [8, 24]; h.y.shape = [16]; }), /runs past the end/],
    ['trailing bytes after the last tensor', () => variant((h) => { h.y.data_offsets = [8, 12]; h.y.shape = [4]; }), /trailing bytes/],
    ['non-string metadata', () => variant((h) => (h.__metadata__.format = 1)), /must be a string/],
    ['metadata that is an array', () => variant((h) => (h.__metadata__ = ['pt'])), /object of strings/],
    ['an entry that is not an object', () => variant((h) => (h.x = 'F32')), /entry must be an object/],
    ['duplicate tensor names', () => rawFile(null, data, JSON.stringify(good).replace('"y":', '"x":')), /duplicate key "x"/],
  ];
  for (const [what, make, msg] of cases) {
    it(`refuses ${what} with a FormatError naming the file`, async () => {
      const err = await open(make()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as FormatError).message).toMatch(msg);
      expect((err as FormatError).message).toMatch(/^bad\.safetensors/);
    });
  }

  it('finds duplicate keys at any depth, not inside strings', () => {
    expect(findDuplicateKey('{"a": 1, "b": {"c": 1, "c": 2}}')).toBe('c');
    expect(findDuplicateKey('{"a": "\\"a\\": 1", "b": [{"a": 1}, {"a": 2}]}')).toBeUndefined();
    expect(findDuplicateKey('{"a\\u0062": 1, "ab": 2}')).toBe('ab');
  });
});
