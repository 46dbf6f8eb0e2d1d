/**
 * The expert sources (src/offload/expert-source.ts) against the stored tensors, read independently here from the
 * raw safetensors bytes: FP8, BF16 and INT4 toys built in memory, the FP8 and BF16 ones with ragged widths (rows
 * whose bytes are not a multiple of 16, so every row carries padding), checked row by row in the GPU stack layout
 * (row r of matrix m at byte m · matrixWords · 4 + r · rowStrideWords · 4, padding zero; gate then up; scales as
 * stored, INT4's BF16 scales widened to f32). INT4 rows are never padded: the toy maker needs whole groups of 32
 * columns, and ⌈32k / 8⌉ words is always a multiple of 4. Also: typed errors for dense layers, expert ids out of
 * range, a model without MoE layers and an INT4 group size the kernels do not take; memoryExpertSource;
 * loadExpertsIntoMemory; checkExpertBytes; a Kimi K2.5-wrapped checkpoint gives its flat twin's bytes.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { FormatError, InputError } from '../../src/errors.js';
import { readTensorBytes } from '../../src/format/safetensors.js';
import { expertRowStrideWords, stackLayout, type ExpertFormat } from '../../src/gpu/ops/fp8-layout.js';
import { memoryFiles, openCheckpoint, type Checkpoint } from '../../src/model/checkpoint.js';
import { kimiInt4QuantizationConfig } from '../../src/model/convert.js';
import { makeToyCheckpointInMemory, toyConfigJson, type ToyOptions } from '../../src/model/toy.js';
import {
  checkExpertBytes, checkpointExpertSource, expertShape, loadExpertsIntoMemory, memoryExpertSource,
  type ExpertBytes, type ExpertShape, type ExpertSource,
} from '../../src/offload/expert-source.js';

type Json = Record<string, unknown>;

/** The golden `ragged` toy at other widths. */
function ragged(D: number, F: number, extra: Json = {}): Json {
  return { ...toyConfigJson('ragged'), hidden_size: D, moe_intermediate_size: F, ...extra };
}

async function openToy(name: string, config: Json | 'tiny', opts: ToyOptions): Promise<Checkpoint> {
  const toy = await makeToyCheckpointInMemory(config, { seed: 11, ...opts });
  return openCheckpoint(memoryFiles(name, toy.data));
}

const fail = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

/** The first index where a and b differ (-1: equal); fast on large arrays, and a readable failure. */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Checks two experts hold the same bytes (toEqual on large typed arrays is slow). */
function expectSameExpert(a: ExpertBytes, b: ExpertBytes, what: string): void {
  for (const k of ['gateUpCodes', 'gateUpScales', 'downCodes', 'downScales'] as const) expect(firstDiff(a[k], b[k]), `${what} ${k}`).toBe(-1);
}

/** Bytes of one row as stored: FP8 cols codes, BF16 2 · cols bytes, INT4 ⌈cols/8⌉ words. */
function storedRowBytes(format: ExpertFormat, cols: number): number {
  return format === 'fp8' ? cols : format === 'bf16' ? 2 * cols : Math.ceil(cols / 8) * 4;
}

/** A stored tensor's raw bytes by logical name. */
async function raw(ckpt: Checkpoint, name: string): Promise<Uint8Array> {
  const t = ckpt.tensors.get(name);
  if (!t) throw new Error(`test: no tensor ${name}`);
  return readTensorBytes(t);
}

/** The matrix's codes and its scales as f32 bytes, straight from the safetensors data (no library reader). */
async function storedMatrix(ckpt: Checkpoint, format: ExpertFormat, module: string): Promise<{ codes: Uint8Array; scales: Uint8Array }> {
  if (format === 'bf16') return { codes: await raw(ckpt, `${module}.weight`), scales: new Uint8Array(0) };
  if (format === 'fp8') return { codes: await raw(ckpt, `${module}.weight`), scales: await raw(ckpt, `${module}.weight_scale_inv`) };
  const bf16 = await raw(ckpt, `${module}.weight_scale`);
  const f32 = new Uint8Array(bf16.length * 2); // BF16 bits are the high half of the f32 (little-endian: bytes 2, 3)
  for (let i = 0; i < bf16.length / 2; i++) {
    f32[4 * i + 2] = bf16[2 * i]!;
    f32[4 * i + 3] = bf16[2 * i + 1]!;
  }
  return { codes: await raw(ckpt, `${module}.weight_packed`), scales: f32 };
}

/** Checks matrix `m` of a stack in `codes`: each stored row at its padded place, padding zero. */
function expectRows(codes: Uint8Array, m: number, format: ExpertFormat, rows: number, cols: number, stored: Uint8Array, what: string): void {
  const L = stackLayout(format, m + 1, rows, cols);
  const stride = expertRowStrideWords(format, cols) * 4;
  const rowBytes = storedRowBytes(format, cols);
  expect(stored.length, what).toBe(rows * rowBytes);
  expect(L.matrixWords * 4).toBe(rows * stride);
  const base = m * L.matrixWords * 4;
  for (let r = 0; r < rows; r++) {
    const at = base + r * stride;
    expect(firstDiff(codes.subarray(at, at + rowBytes), stored.subarray(r * rowBytes, (r + 1) * rowBytes)), `${what} row ${r}`).toBe(-1);
    expect(codes.subarray(at + rowBytes, at + stride).every((b) => b === 0), `${what} row ${r} padding`).toBe(true);
  }
}

/** Checks one expert read from a source against the checkpoint's stored tensors. */
async function expectExpert(ckpt: Checkpoint, shape: ExpertShape, layer: number, e: number, b: ExpertBytes): Promise<void> {
  const { hidden_size: D, moe_intermediate_size: F } = ckpt.config;
  const f = shape.format;
  for (const k of ['gateUpCodes', 'gateUpScales', 'downCodes', 'downScales'] as const) expect(b[k].byteLength, k).toBe(shape[k]);
  const p = `model.layers.${layer}.mlp.experts.${e}.`;
  const [gate, up, down] = await Promise.all(['gate_proj', 'up_proj', 'down_proj'].map((n) => storedMatrix(ckpt, f, p + n)));
  expectRows(b.gateUpCodes, 0, f, F, D, gate!.codes, `${p}gate_proj`);
  expectRows(b.gateUpCodes, 1, f, F, D, up!.codes, `${p}up_proj`);
  expectRows(b.downCodes, 0, f, D, F, down!.codes, `${p}down_proj`);
  expect(firstDiff(b.gateUpScales, new Uint8Array([...gate!.scales, ...up!.scales])), `${p} gate/up scales`).toBe(-1);
  expect(firstDiff(b.downScales, down!.scales), `${p} down scales`).toBe(-1);
}

const CASES = [
  // D = 300, F = 140: FP8 rows of 300 / 140 bytes padded to 304 / 144; FP8 scale grids [2, 3] and [3, 2]
  { format: 'fp8' as const, config: ragged(300, 140), opts: { quant: 'fp8' as const } },
  // BF16 rows of 600 / 280 bytes padded to 608 / 288
  { format: 'bf16' as const, config: ragged(300, 140), opts: { quant: 'bf16' as const } },
  // INT4 needs whole groups of 32: D = 160, F = 96 (5 and 3 groups per row, 20 and 12 words: no padding)
  { format: 'int4' as const, config: ragged(160, 96), opts: { quant: 'int4' as const } },
];

describe.each(CASES)('checkpointExpertSource ($format)', ({ format, config, opts }) => {
  let ckpt: Checkpoint;
  let src: ExpertSource;
  beforeAll(async () => {
    ckpt = await openToy(`toy-${format}`, config, opts);
    src = checkpointExpertSource(ckpt);
  });

  it('has the expert shape of the stored format and the checkpoint name', () => {
    expect(src.name).toBe(`toy-${format}`);
    expect(src.shape).toEqual(expertShape(ckpt.config, format));
    const s = src.shape;
    expect(s.total).toBe(s.gateUpCodes + s.gateUpScales + s.downCodes + s.downScales);
    if (format !== 'int4') {
      // the widths are ragged: both matrix kinds really have padded rows
      for (const cols of [ckpt.config.hidden_size, ckpt.config.moe_intermediate_size]) {
        expect(expertRowStrideWords(format, cols) * 4).toBeGreaterThan(storedRowBytes(format, cols));
      }
    }
  });

  it('reads every MoE layer\'s experts in the GPU stack layout, byte for byte', async () => {
    const moe = ckpt.config.derived.moeLayers.flatMap((m, l) => (m ? [l] : []));
    expect(moe).toEqual([1, 2]);
    for (const layer of moe) {
      for (const e of [0, 5, ckpt.config.n_routed_experts - 1]) await expectExpert(ckpt, src.shape, layer, e, await src.read(layer, e));
    }
  });

  it('rejects a dense layer, a layer or expert id out of range with InputError', async () => {
    const E = ckpt.config.n_routed_experts;
    const cases: [number, number, string][] = [[0, 0, 'layer'], [3, 0, 'layer'], [-1, 0, 'layer'], [1.5, 0, 'layer'], [1, E, 'expert'], [1, -1, 'expert'], [2, 0.5, 'expert']];
    for (const [layer, e, field] of cases) {
      const err = await fail(src.read(layer, e));
      expect(err, `read(${layer}, ${e})`).toBeInstanceOf(InputError);
      expect((err as InputError).field).toBe(field);
    }
  });
});

describe('checkpointExpertSource: checkpoints it refuses', () => {
  it('a model without MoE layers is an InputError when the source is made', async () => {
    const ckpt = await openToy('dense', { ...toyConfigJson('tiny'), first_k_dense_replace: 2 }, {});
    expect(() => checkpointExpertSource(ckpt)).toThrow(InputError);
  });

  it('INT4 experts with group size 16 are a FormatError naming the group size (the kernels take 32), at creation', async () => {
    const ckpt = await openToy('int4-g16', ragged(160, 96, { quantization_config: kimiInt4QuantizationConfig(16) }), {});
    let err: unknown;
    try {
      checkpointExpertSource(ckpt);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).message).toMatch(/group size 16.*32/);
  });

  it('a Kimi K2.5-wrapped INT4 checkpoint (prefixed tensors, shards) gives the flat twin\'s bytes', async () => {
    const flat = checkpointExpertSource(await openToy('flat', 'tiny', { quant: 'int4' }));
    const k25 = checkpointExpertSource(await openToy('k25', 'tiny', { quant: 'int4', k25: true, shards: 2 }));
    expect(k25.shape).toEqual(flat.shape);
    for (const e of [0, 7]) expectSameExpert(await k25.read(1, e), await flat.read(1, e), `expert ${e}`);
  });
});

describe('memoryExpertSource, loadExpertsIntoMemory, checkExpertBytes', () => {
  let ckpt: Checkpoint;
  let src: ExpertSource;
  beforeAll(async () => {
    ckpt = await openToy('toy-fp8', ragged(300, 140), { quant: 'fp8' });
    src = checkpointExpertSource(ckpt);
  });

  it('memoryExpertSource returns the arrays it holds and rejects a missing layer or expert with InputError', async () => {
    const held = [await src.read(1, 0), await src.read(1, 1)];
    const mem = memoryExpertSource(src.shape, new Map([[1, held]]), 'held');
    expect(mem.name).toBe('held');
    expect(mem.shape).toBe(src.shape);
    expect(await mem.read(1, 1)).toBe(held[1]);
    for (const [layer, e] of [[1, 2], [2, 0], [1, -1]] as const) {
      const err = await fail(mem.read(layer, e));
      expect(err, `read(${layer}, ${e})`).toBeInstanceOf(InputError);
      expect((err as InputError).message).toContain(`expert ${e} of layer ${layer}`);
    }
    await mem.close();
  });

  it('loadExpertsIntoMemory holds every routed expert, byte-identical to the source', async () => {
    const mem = await loadExpertsIntoMemory(ckpt.config, src);
    expect(mem.name).toBe('memory(toy-fp8)');
    expect(mem.shape).toBe(src.shape);
    for (const layer of [1, 2]) {
      for (let e = 0; e < ckpt.config.n_routed_experts; e++) expectSameExpert(await mem.read(layer, e), await src.read(layer, e), `layer ${layer} expert ${e}`);
    }
    expect(await fail(mem.read(0, 0))).toBeInstanceOf(InputError); // the dense layer holds nothing
  });

  it('checkExpertBytes passes the right sizes through and rejects a wrong one with FormatError', async () => {
    const b = await src.read(2, 3);
    expect(checkExpertBytes(b, src.shape, 'x')).toBe(b);
    const short = { ...b, downScales: b.downScales.subarray(4) };
    expect(() => checkExpertBytes(short, src.shape, 'store/2/3')).toThrow(FormatError);
    expect(() => checkExpertBytes(short, src.shape, 'store/2/3')).toThrow(/store\/2\/3: downScales has \d+ bytes, expected \d+/);
    // a source that returns a wrong size fails loadExpertsIntoMemory with FormatError naming layer and expert
    const bad: ExpertSource = { ...src, name: 'bad', read: async (l, e) => (l === 2 && e === 4 ? { ...b, gateUpCodes: new Uint8Array(8) } : src.read(l, e)) };
    const err = await fail(loadExpertsIntoMemory(ckpt.config, bad));
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).message).toContain('bad layer 2 expert 4');
  });
});
