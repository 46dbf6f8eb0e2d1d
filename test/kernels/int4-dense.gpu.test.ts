/**
 * Dense linears through the fp8_gemv_wide kernel family (shaders/fp8_gemv_wide.wgsl, `// #formats fp8 bf16 int4`):
 *   - fp8_gemv_wide_int4: an INT4 pack-quantized dense linear (GpuLinear 'int4', uploadLinear) for decode and, per
 *     token row (grid y), for prefill, against the f64 product with the CPU-dequantised weight (format/int4.ts
 *     dequantizeInt4, exact); every code in every nibble position decodes exactly; seeded random shapes with rows
 *     that are not multiples of the workgroup (WG · RPT), cols multiples of 32 that are not multiples of 64 or 128,
 *     and (hand-packed, as the kernel allows) cols with a partial last group and a partial 16-column chunk; offsets,
 *     strides, accumulate, forced GEMMs (batched decode rows), row chunks under a binding cap; a group size other
 *     than 32 and a wrong scale count are typed errors naming the tensor;
 *   - fp8_gemv_wide_bf16, which serves BF16 decode since bf16_gemv was folded into the family: exact widening of
 *     every column, random ragged shapes against bf16ArrayToF32.
 *
 * Tolerance, derived (per output y, relative to m = Σ_c |W[r, c] · x_c|, the size of the summed terms): the
 * weights decode exactly on both sides ((u − 8) · s is a 4-bit integer times a BF16 value; BF16 widens exactly), and
 * the reference sums the same f32 products in f64, so the GPU's error is f32 rounding only. A product w·x enters the
 * sum through at most d roundings: in fp8_gemv_wide_int4 the product, 3 adds in a vec4 dot, 1 + 1 adds joining the
 * chunk's two words (udot8, cdot), ≤ 2 adds over the group's two chunks, the multiply by the group scale, then one add
 * per group: d ≤ 9 + ⌈cols/32⌉. In fp8_gemv_wide_bf16 (no scale blocks: one running sum of 8-column chunks)
 * d ≤ 6 + ⌈cols/8⌉. The classical bound is |err| ≤ γ_d · m, γ_d = d·u / (1 − d·u), u = 2^-24; we allow 2·γ_d (for
 * the bound's own slack and any fused multiply-add a compiler forms, which only removes roundings) + 1e-30.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DeviceError, FormatError, ShapeError } from '../../src/errors.js';
import { bf16ArrayToF32, f32ArrayToBf16 } from '../../src/format/fp8.js';
import { dequantizeInt4, quantizeInt4 } from '../../src/format/int4.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { destroyLinear, gemvSubgroupKernel, gemvWideKernel, linear, uploadLinear, type GpuLinear } from '../../src/gpu/ops/linear.js';
import { int4RowStrideWords } from '../../src/gpu/ops/fp8-layout.js';
import type { Int4Weight } from '../../src/model/checkpoint.js';
import { compareClose, randInt, randn, rng, testAdapter, testGpu } from '../helpers/gpu.js';
import { bf16Case, linearReference } from './linear-cases.js';
import { f32Buffer, kernels, readF32, record } from './ops-harness.js';

const U = 2 ** -24;
const gamma = (d: number): number => (d * U) / (1 - d * U);
const int4Rtol = (cols: number): number => 2 * gamma(9 + Math.ceil(cols / 32));
const bf16Rtol = (cols: number): number => 2 * gamma(6 + Math.ceil(cols / 8));
const ATOL = 1e-30;

/**
 * Family settings covered ({} = the engine's tuning, 4 rows per invocation on CPU adapters): one, an odd count and
 * the most rows per invocation, and a small workgroup. Every RPT 1..8 runs in test/kernels/linear.gpu.test.ts on the
 * FP8 instance (the row logic is the same body); each setting is a pipeline to compile (seconds on SwiftShader).
 */
const WIDE: Array<{ rpt?: number; wg?: number }> = [{}, { rpt: 1 }, { rpt: 3 }, { rpt: 8, wg: 16 }];

/** A BF16-representable scale ~ size · U(0.5, 1.5) (stored BF16, widened to f32 exactly). */
function bf16Scale(rand: () => number, size: number): number {
  return bf16ArrayToF32(f32ArrayToBf16(Float32Array.of(size * (0.5 + rand()))))[0]!;
}

/**
 * A random INT4 weight packed by hand (any cols: the padding nibbles past `cols` are 0, as a writer pads): uniform
 * codes 0..15, BF16 group scales.
 */
function handInt4(rand: () => number, rows: number, cols: number, size = 0.05): { w: Int4Weight; dense: Float32Array } {
  const wpr = Math.ceil(cols / 8);
  const data = new Uint32Array(rows * wpr);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) data[r * wpr + (j >> 3)]! |= Math.floor(rand() * 16) << ((j & 7) * 4);
  const scale = Float32Array.from({ length: rows * Math.ceil(cols / 32) }, () => bf16Scale(rand, size));
  return { w: { format: 'int4', rows, cols, groupSize: 32, data, scale }, dense: dequantizeInt4(data, scale, rows, cols) };
}

/** An INT4 weight as a checkpoint stores it: normal weights through the compressed-tensors quantiser (cols % 32 == 0). */
function quantInt4(rand: () => number, rows: number, cols: number): { w: Int4Weight; dense: Float32Array } {
  const q = quantizeInt4(randn(rand, rows * cols, 1 / Math.sqrt(cols)), rows, cols);
  const scale = bf16ArrayToF32(q.scale);
  return { w: { format: 'int4', rows, cols, groupSize: 32, data: q.packed, scale, scaleBf16: q.scale }, dense: dequantizeInt4(q.packed, scale, rows, cols) };
}



/** |got − want| <= rtol·m + atol per element; the report lists the first mismatches. Returns max |got − want| / m. */
function expectWithin(got: Float32Array, want: Float64Array, m: Float64Array, rtol: number, label: string): number {
  let worst = 0;
  const bad: string[] = [];
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i]! - want[i]!);
    if (!(e <= rtol * m[i]! + ATOL)) bad.push(`[${i}] got ${got[i]} want ${want[i]} (|Δ| ${e.toExponential(2)} > ${(rtol * m[i]! + ATOL).toExponential(2)})`);
    if (m[i]! > 0) worst = Math.max(worst, e / m[i]!);
  }
  if (bad.length) throw new Error(`${label}: ${bad.length} of ${want.length} outside rtol ${rtol.toExponential(2)}·Σ|w·x|:\n  ${bad.slice(0, 10).join('\n  ')}`);
  return worst;
}

interface Io {
  T: number;
  xOffset?: number;
  xStride?: number;
  yOffset?: number;
  yStride?: number;
  accumulate?: boolean;
  forceGemm?: boolean;
  wide?: { rpt?: number; wg?: number };
  gemv?: 'subgroup';
  subgroupWg?: number;
}

/** Runs linear() with x / y laid out per `io` (NaN outside the token rows of x; 1 everywhere in y first). */
async function run(gpu: GpuContext, gw: GpuLinear, x: Float32Array, io: Io): Promise<{ got: Float32Array; y: Float32Array; yOffset: number; yStride: number }> {
  const { T, xOffset = 0, yOffset = 0, accumulate = false } = io;
  const xStride = io.xStride ?? gw.cols;
  const yStride = io.yStride ?? gw.rows;
  const xp = new Float32Array(xOffset + T * xStride + 3).fill(NaN);
  for (let t = 0; t < T; t++) xp.set(x.subarray(t * gw.cols, (t + 1) * gw.cols), xOffset + t * xStride);
  const ylen = yOffset + T * yStride + 1;
  const xb = f32Buffer(gpu, xp, 'x');
  const yb = f32Buffer(gpu, new Float32Array(ylen).fill(1), 'y');
  await record(gpu, (r) => linear(r.k, r.pass, r.arena, { w: gw, x: xb, xOffset, xStride, y: yb, yOffset, yStride, tokens: T, accumulate, forceGemm: io.forceGemm, wide: io.wide, gemv: io.gemv, subgroupWg: io.subgroupWg }));
  const y = await readF32(gpu, yb, ylen);
  xb.destroy();
  yb.destroy();
  const got = new Float32Array(T * gw.rows);
  for (let t = 0; t < T; t++) got.set(y.subarray(yOffset + t * yStride, yOffset + t * yStride + gw.rows), t * gw.rows);
  return { got, y, yOffset, yStride };
}

/** Everything outside the token rows' first `rows` columns is untouched (1). */
function expectUntouched(y: Float32Array, rows: number, T: number, yOffset: number, yStride: number, label: string): void {
  for (let i = 0; i < y.length; i++) {
    const o = i - yOffset;
    if (o < 0 || o >= T * yStride || o % yStride >= rows) expect(y[i], `${label} y[${i}]`).toBe(1);
  }
}

/**
 * BF16 and INT4 decode GEMVs through the subgroup family (fp8_gemv_subgroup_bf16 / _int4: what GPUs run, gpu/plan.ts
 * chooseGemv), wherever the adapter has `subgroups`. Tolerance: each word's partial dot takes at most 9 roundings
 * (INT4: 8 products, 7 adds, the group scale; BF16: 2 products, 1 add), and the words' partials are summed by the
 * lanes, the subgroup and the workgroup in some tree: whatever its shape, a partial passes through at most
 * words − 1 adds, so d ≤ 9 + ⌈cols / QCOLS⌉ and we allow 2·γ_d as above.
 */
describe(`dense BF16 and INT4 decode through the subgroup GEMV family (${testAdapter()})`, () => {
  // no afterAll: the describes below share these devices and destroy them
  const sgRtol = (cols: number, qcols: number): number => 2 * gamma(9 + Math.ceil(cols / qcols));

  for (let seed = 0; seed < 2; seed++) {
    it(`int4 and bf16: random ragged shapes, 64/128/256 threads, offsets, accumulate, a binding-cap split (seed ${seed})`, async (ctx) => {
      const gpu = await testGpu();
      if (!kernels(gpu).available(gemvSubgroupKernel('bf16'))) ctx.skip(); // no `subgroups` on this adapter
      const rand = rng(700 + seed);
      for (const fmt of ['int4', 'bf16'] as const) {
        const rows = randInt(rand, 1, 300);
        const cols = fmt === 'int4' ? 32 * randInt(rand, 1, 30) : randInt(rand, 1, 1100);
        const c = fmt === 'int4' ? quantInt4(rand, rows, cols) : bf16Case(rand, rows, cols);
        const gw = uploadLinear(gpu, `${fmt} subgroup`, c.w);
        const x = randn(rand, cols);
        const ref = linearReference(c.dense, rows, cols, x, 1);
        const rtol = sgRtol(cols, fmt === 'int4' ? 8 : 2);
        for (const wg of [64, 128, 256]) {
          const label = `${gemvSubgroupKernel(fmt)} wg ${wg} [${rows}, ${cols}]`;
          const r = await run(gpu, gw, x, { T: 1, xOffset: 3, yOffset: 2, accumulate: true, gemv: 'subgroup', subgroupWg: wg });
          expectWithin(r.got, ref.y.map((v) => v + 1), ref.m.map((v) => v + 1), rtol, label);
          expectUntouched(r.y, rows, 1, r.yOffset, r.yStride, label);
        }
        destroyLinear(gw);
      }
    });
  }

  it('an INT4 weight split into row chunks under a 64 KiB cap (scales indexed by global row) matches the reference', async (ctx) => {
    const cap = 64 << 10;
    const gpu = await testGpu({ maxBindingSizeCap: cap });
    if (!kernels(gpu).available(gemvSubgroupKernel('int4'))) ctx.skip();
    const rand = rng(808);
    const rows = 400; // 400 x 512 B of codes (1024 columns): 4 chunks; scales 50 KiB
    const cols = 1024;
    const c = quantInt4(rand, rows, cols);
    const gw = uploadLinear(gpu, 'int4 subgroup split', c.w);
    expect(gw.chunks.length).toBeGreaterThan(1);
    const x = randn(rand, cols);
    const ref = linearReference(c.dense, rows, cols, x, 1);
    expectWithin((await run(gpu, gw, x, { T: 1, gemv: 'subgroup' })).got, ref.y, ref.m, sgRtol(cols, 8), 'int4 subgroup split');
    destroyLinear(gw);
  });
});

describe(`dense INT4 and BF16 linears through the fp8_gemv_wide family (${testAdapter()})`, () => {
  afterAll(async () => (await testGpu()).destroy());

  it('the family has one instance per format; an INT4 upload is the stored words in 16-byte rows + f32 group scales', async () => {
    const gpu = await testGpu();
    expect(gemvWideKernel('fp8')).toBe('fp8_gemv_wide');
    expect(gemvWideKernel('bf16')).toBe('fp8_gemv_wide_bf16');
    expect(gemvWideKernel('int4')).toBe('fp8_gemv_wide_int4');
    const { w } = handInt4(rng(1), 5, 72); // 9 words per row -> 12 (16-byte rows); 3 groups
    const gw = uploadLinear(gpu, 'model.layers.0.self_attn.o_proj.weight', w);
    expect(gw).toMatchObject({ format: 'int4', rows: 5, cols: 72, strideWords: int4RowStrideWords(72) });
    expect(gw.strideWords).toBe(12);
    expect(gw.chunks[0]!.codes.size).toBe(5 * 12 * 4);
    expect(gw.scales!.size).toBe(Math.ceil((5 * 3 * 4) / 16) * 16);
    destroyLinear(gw);
  });

  it('decodes every code in every nibble position exactly (one-hot x per token, both groups, both chunk words)', async () => {
    const gpu = await testGpu();
    // row r holds code u = r in every nibble; group scales are distinct powers of two per (row, group); token t
    // is the one-hot x = e_t over 64 columns, so y[t, r] = (r − 8) · s[r, t / 32] exactly
    const rows = 16;
    const cols = 64;
    const data = new Uint32Array(rows * 8);
    for (let r = 0; r < rows; r++) data.fill((r * 0x11111111) >>> 0, r * 8, (r + 1) * 8);
    const scale = Float32Array.from({ length: rows * 2 }, (_, i) => 2 ** ((i % 7) - 3));
    const gw = uploadLinear(gpu, 'codes', { format: 'int4', rows, cols, groupSize: 32, data, scale });
    const T = cols;
    const x = new Float32Array(T * cols);
    for (let t = 0; t < T; t++) x[t * cols + t] = 1;
    const dense = dequantizeInt4(data, scale, rows, cols);
    for (const wide of WIDE) {
      const { got } = await run(gpu, gw, x, { T, wide });
      const ok = got.every((v, i) => v === dense[(i % rows) * cols + Math.floor(i / rows)]);
      expect(ok, `int4 codes ${JSON.stringify(wide)}`).toBe(true);
    }
    destroyLinear(gw);
  });

  // [label, rows, cols, T, packed by the quantiser (cols % 32 == 0) or by hand]
  const shapes: Array<[string, number, number, number, 'quant' | 'hand']> = [
    ['1x32', 1, 32, 1, 'quant'],
    ['67x96 (rows past WG·RPT, 3 groups)', 67, 96, 1, 'quant'],
    ['130x160', 130, 160, 1, 'quant'],
    ['257x224 T=3', 257, 224, 3, 'quant'],
    ['300x1056 T=5 (33 groups)', 300, 1056, 5, 'quant'],
    ['7x200 (partial last group, 8-column tail chunk)', 7, 200, 1, 'hand'],
    ['65x40 T=2 (a 40-column row: half a chunk past one group)', 65, 40, 2, 'hand'],
    ['3x8 (one word)', 3, 8, 1, 'hand'],
  ];
  for (const [i, [label, rows, cols, T, how]] of shapes.entries()) {
    it(`int4 ${label}: the engine's tuning and other RPTs against dequantizeInt4 (seed ${i})`, async () => {
      const gpu = await testGpu();
      const rand = rng(300 + i);
      const c = how === 'quant' ? quantInt4(rand, rows, cols) : handInt4(rand, rows, cols);
      const gw = uploadLinear(gpu, `w${i}`, c.w);
      const x = randn(rand, T * cols);
      const ref = linearReference(c.dense, rows, cols, x, T);
      let worst = 0;
      for (const wide of WIDE) {
        worst = Math.max(worst, expectWithin((await run(gpu, gw, x, { T, wide })).got, ref.y, ref.m, int4Rtol(cols), `int4 ${label} ${JSON.stringify(wide)}`));
      }
      console.log(`[${testAdapter()}] int4 ${label}: max |Δ| / Σ|w·x| ${worst.toExponential(2)} (bound ${int4Rtol(cols).toExponential(2)})`);
      destroyLinear(gw);
    });
  }

  for (let seed = 0; seed < 3; seed++) {
    it(`int4 random shape, T up to 70, offsets, strides, accumulate, forced GEMM rows (seed ${seed})`, async () => {
      const gpu = await testGpu();
      const rand = rng(400 + seed);
      const rows = randInt(rand, 1, 290);
      const cols = 32 * randInt(rand, 1, 24);
      const c = quantInt4(rand, rows, cols);
      const gw = uploadLinear(gpu, 'int4', c.w);
      for (const T of [1, randInt(rand, 2, 9), randInt(rand, 30, 70)]) {
        const x = randn(rand, T * cols);
        const ref = linearReference(c.dense, rows, cols, x, T);
        const io: Io = { T, xOffset: randInt(rand, 0, 5), xStride: cols + randInt(rand, 0, 6), yOffset: randInt(rand, 0, 5), yStride: rows + randInt(rand, 0, 3), accumulate: true };
        for (const forceGemm of [false, true]) {
          const label = `int4 T=${T} [${rows}, ${cols}] forceGemm ${forceGemm}`;
          const r = await run(gpu, gw, x, { ...io, forceGemm });
          expectWithin(r.got, ref.y.map((v) => v + 1), ref.m.map((v) => v + 1), int4Rtol(cols), label);
          expectUntouched(r.y, rows, T, r.yOffset, r.yStride, label);
        }
        // a token row's result does not depend on how many rows run with it (batch invariance)
        const one = await run(gpu, gw, x.subarray(0, cols), { T: 1 });
        const all = await run(gpu, gw, x, { T });
        expect(Array.from(all.got.subarray(0, rows))).toEqual(Array.from(one.got));
      }
      destroyLinear(gw);
    });
  }

  it('bf16 through fp8_gemv_wide_bf16: every column of a ragged row widens exactly', async () => {
    const gpu = await testGpu();
    const rand = rng(11);
    const rows = 70;
    const cols = 21; // two full 8-column chunks and a 5-column tail
    const c = bf16Case(rand, rows, cols);
    const gw = uploadLinear(gpu, 'bf16', c.w);
    for (let col = 0; col < cols; col++) {
      const x = new Float32Array(cols);
      x[col] = 1;
      const { got } = await run(gpu, gw, x, { T: 1 });
      expect(got.every((v, r) => v === c.dense[r * cols + col]), `column ${col}`).toBe(true);
    }
    destroyLinear(gw);
  });

  for (let seed = 0; seed < 3; seed++) {
    it(`bf16 decode through fp8_gemv_wide_bf16: random ragged shape, several RPTs, offsets, accumulate (seed ${seed})`, async () => {
      const gpu = await testGpu();
      const rand = rng(500 + seed);
      const rows = randInt(rand, 1, 300);
      const cols = randInt(rand, 1, 1100);
      const c = bf16Case(rand, rows, cols);
      const gw = uploadLinear(gpu, 'bf16', c.w);
      const x = randn(rand, cols);
      const ref = linearReference(c.dense, rows, cols, x, 1);
      let worst = 0;
      for (const wide of WIDE) {
        const label = `bf16 [${rows}, ${cols}] ${JSON.stringify(wide)}`;
        const r = await run(gpu, gw, x, { T: 1, xOffset: 3, yOffset: 2, accumulate: true, wide });
        worst = Math.max(worst, expectWithin(r.got, ref.y.map((v) => v + 1), ref.m.map((v) => v + 1), bf16Rtol(cols), label));
        expectUntouched(r.y, rows, 1, r.yOffset, r.yStride, label);
      }
      console.log(`[${testAdapter()}] bf16 [${rows}, ${cols}]: max |Δ| / Σ|w·x| ${worst.toExponential(2)} (bound ${bf16Rtol(cols).toExponential(2)})`);
      destroyLinear(gw);
    });
  }

  it('a group size other than 32 is a FormatError naming the tensor; wrong scale or word counts a ShapeError', async () => {
    const gpu = await testGpu();
    const { w } = handInt4(rng(2), 4, 64);
    const name = 'model.layers.0.mlp.down_proj.weight';
    expect(() => uploadLinear(gpu, name, { ...w, groupSize: 128, scale: new Float32Array(4) })).toThrow(FormatError);
    expect(() => uploadLinear(gpu, name, { ...w, groupSize: 128, scale: new Float32Array(4) })).toThrow(/down_proj\.weight.*group size 128.*32/);
    expect(() => uploadLinear(gpu, name, { ...w, scale: w.scale.subarray(1) })).toThrow(ShapeError);
    expect(() => uploadLinear(gpu, name, { ...w, data: w.data.subarray(1) })).toThrow(ShapeError);
  });
});

describe(`dense INT4 under a 64 KiB binding cap (${testAdapter()})`, () => {
  const cap = 64 << 10;
  afterAll(async () => (await testGpu({ maxBindingSizeCap: cap })).destroy());

  it('splits the codes into row chunks (the scales bound whole, indexed by global row) and matches the reference', async () => {
    const gpu = await testGpu({ maxBindingSizeCap: cap });
    const rand = rng(909);
    const rows = 700; // 700 rows x 512 B (1024 columns) = 350 KiB of codes: 6 chunks; scales 700 x 32 x 4 = 87.5 KiB
    const cols = 1024;
    const c = quantInt4(rand, rows, cols);
    // the scales exceed the cap too: one buffer bound whole is refused with a DeviceError naming the tensor
    expect(() => uploadLinear(gpu, 'model.layers.0.mlp.gate_proj.weight', c.w)).toThrow(DeviceError);
    expect(() => uploadLinear(gpu, 'model.layers.0.mlp.gate_proj.weight', c.w)).toThrow(/gate_proj\.weight.*scales/);
    const rowsOk = 400; // scales 50 KiB < cap, codes 200 KiB: 4 chunks
    const sub: Int4Weight = { ...c.w, rows: rowsOk, data: c.w.data.subarray(0, rowsOk * 128), scale: c.w.scale.subarray(0, rowsOk * 32) };
    const gw = uploadLinear(gpu, 'int4 split', sub);
    expect(gw.chunks.length).toBeGreaterThan(1);
    for (const ch of gw.chunks) expect(ch.codes.size).toBeLessThanOrEqual(cap);
    for (const T of [1, 5]) {
      const x = randn(rand, T * cols);
      const ref = linearReference(c.dense.subarray(0, rowsOk * cols), rowsOk, cols, x, T);
      expectWithin((await run(gpu, gw, x, { T })).got, ref.y, ref.m, int4Rtol(cols), `int4 split T=${T}`);
    }
    destroyLinear(gw);
  });
});
