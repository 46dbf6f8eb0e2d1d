/**
 * FP8 / BF16 linear kernels (fp8_gemv, fp8_gemv_subgroup, fp8_gemv_f16, fp8_gemv_wide, fp8_gemm, fp8_gemm_f16,
 * fp8_gemm_tiled, bf16_gemv, bf16_gemm) against an f64 CPU product on the same decoded weights (format/fp8.ts dequantizeFp8Block,
 * bf16ArrayToF32), on seeded random shapes with ragged 128-blocks, cols not a multiple of 4, rows not a
 * multiple of the workgroup, and one fixed debug case.
 *
 * Tolerances, per output y_r, relative to m_r = Σ_c |W[r,c]·x_c| (the size of the terms being summed):
 *   f32 kernels: the weights decode exactly and every product is exact-ish in f32; only the f32 summation order
 *     differs from the f64 reference: |err| <= 1e-5·m_r + 1e-6 (≈ 100 ulp of the sum; K <= 1000 here).
 *   f16 kernels: x is rounded to f16 (2^-11 relative) and each 4-term dot is formed in f16:
 *     |err| <= 4e-3·m_r + 1e-4.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DeviceError, ShapeError } from '../../src/errors.js';
import { bf16ArrayToF32, dequantizeFp8Block, quantizeFp8Block } from '../../src/format/fp8.js';
import { quantizeInt4 } from '../../src/format/int4.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { destroyLinear, linear, stackLinears, uploadLinear, type GemmTiledTuning, type HostLinear, type GemmVariant, type GemvVariant, type GemvWideTuning, type GpuLinear, type LinearArgs } from '../../src/gpu/ops/linear.js';
import { chooseGemm } from '../../src/gpu/plan.js';
import type { LinearWeight } from '../../src/model/checkpoint.js';
import { compareClose, randInt, randn, rng, testAdapter, testGpu } from '../helpers/gpu.js';
import { bf16Case, linearReference, type LinearCase } from './linear-cases.js';
import { f32Buffer, kernels, readF32, record } from './ops-harness.js';

function fp8Case(rand: () => number, rows: number, cols: number): LinearCase {
  const q = quantizeFp8Block(randn(rand, rows * cols, 0.5), rows, cols);
  // vary the block scales so a wrong block index shows
  for (let i = 0; i < q.scale.length; i++) q.scale[i] = q.scale[i]! * (0.5 + rand());
  return { w: { format: 'fp8', rows, cols, data: q.data, scale: q.scale }, dense: dequantizeFp8Block(q.data, q.scale, rows, cols) };
}



/** Per-element check |got - want| <= rtol·m + atol, with an llm.c-style report. */
function expectWithin(got: Float32Array, want: Float64Array, m: Float64Array, rtol: number, atol: number, label: string): number {
  const bound = Float64Array.from(m, (v) => rtol * v + atol);
  const diff = Float64Array.from(got, (g, i) => (Math.abs(g - want[i]!) <= bound[i]! ? want[i]! : g));
  const r = compareClose(diff, want, { atol: 0, rtol: 0, label });
  if (!r.ok) throw new Error(r.message + `\n  (bound rtol ${rtol}·Σ|w·x| + ${atol})`);
  return compareClose(got, want).maxAbs;
}

interface RunOpts {
  gemv?: GemvVariant;
  gemm?: GemmVariant;
  forceGemm?: boolean;
  perRow?: boolean;
  wide?: Partial<GemvWideTuning>;
  tiled?: Partial<GemmTiledTuning>;
  norm?: LinearArgs['norm'];
}

async function runLinear(gpu: GpuContext, gw: GpuLinear, x: Float32Array, T: number, opts: RunOpts = {}): Promise<Float32Array> {
  const xb = f32Buffer(gpu, x, 'x');
  const yb = f32Buffer(gpu, T * gw.rows, 'y');
  await record(gpu, (r) => linear(r.k, r.pass, r.arena, { w: gw, x: xb, y: yb, tokens: T, ...opts }));
  const out = await readF32(gpu, yb, T * gw.rows);
  xb.destroy();
  yb.destroy();
  return out;
}

const F32 = { rtol: 1e-5, atol: 1e-6 };
const F16 = { rtol: 4e-3, atol: 1e-4 };

/** fp8_gemv_wide settings covered by the tests: every rows-per-invocation count, both decoders, two workgroup sizes. */
const WIDE: Array<Partial<GemvWideTuning>> = [
  ...[1, 2, 3, 4, 5, 6, 7, 8].map((rpt) => ({ rpt, f16bits: true })),
  { rpt: 2, f16bits: false },
  { rpt: 8, f16bits: false },
  { rpt: 4, f16bits: true, wg: 16 },
];

/**
 * fp8_gemm_tiled settings covered by the tests: rows per invocation 1-8, token quads 1-4, both decoders, two
 * workgroup sizes ({} = the engine's tuning for this adapter).
 */
const TILED: Array<Partial<GemmTiledTuning>> = [
  {},
  { rt: 1, tq: 4 },
  { rt: 3, tq: 3 },
  { rt: 5, tq: 2 },
  { rt: 8, tq: 2 },
  { rt: 7, tq: 1, f16bits: false },
  { rt: 2, tq: 1, wg: 16 },
];

describe(`linear kernels (${testAdapter()})`, () => {
  afterAll(async () => (await testGpu()).destroy());

  it('decodes every finite E4M3 code exactly (all 254 codes, per adapter)', async () => {
    const gpu = await testGpu();
    // row r = code r (NaN codes 0x7F / 0xFF replaced by 0), x = e_c picks column c: y = e4m3(code) * scale
    const codes = Array.from({ length: 256 }, (_, i) => (i === 0x7f || i === 0xff ? 0 : i));
    const rows = 256;
    const cols = 3; // also a ragged last word
    const data = new Uint8Array(rows * cols);
    codes.forEach((c, r) => data.fill(c, r * cols, (r + 1) * cols));
    const scale = new Float32Array([1, 1]);
    const gw = uploadLinear(gpu, 'codes', { format: 'fp8', rows, cols, data, scale });
    const want = dequantizeFp8Block(data, scale, rows, cols);
    for (const variant of ['f32', 'subgroup', 'f16'] as const) {
      if (variant !== 'f32' && !kernels(gpu).available(variant === 'f16' ? 'fp8_gemv_f16' : 'fp8_gemv_subgroup')) continue;
      const y = await runLinear(gpu, gw, new Float32Array([1, 0, 0]), 1, { gemv: variant });
      const exp = Float32Array.from({ length: rows }, (_, r) => want[r * cols]!);
      // == rather than toEqual: -0 (code 0x80) sums to +0
      expect(y.every((v, r) => v === exp[r]), `gemv ${variant}`).toBe(true);
    }
    // fp8_gemv_wide: the unpack2x16float decode (docs/kernels.md §3.1 (B)) must be exact on this adapter, subnormals
    // (codes 0x01-0x07, 0x81-0x87) included; all 256 codes as 16 columns so the vec4 path and the tail both run
    for (const wide of [{}, ...WIDE]) {
      const y = await runLinear(gpu, gw, new Float32Array([1, 0, 0]), 1, { gemv: 'wide', wide });
      const exp = Float32Array.from({ length: rows }, (_, r) => want[r * cols]!);
      expect(y.every((v, r) => v === exp[r]), `gemv wide ${JSON.stringify(wide)}`).toBe(true);
    }
    {
      const c16 = 20; // one full vec4 word + a 4-column tail
      const d16 = new Uint8Array(rows * c16);
      codes.forEach((c, r) => d16.fill(c, r * c16, (r + 1) * c16));
      const g16 = uploadLinear(gpu, 'codes16', { format: 'fp8', rows, cols: c16, data: d16, scale });
      const w16 = dequantizeFp8Block(d16, scale, rows, c16);
      for (const col of [5, 18]) {
        const xe = new Float32Array(c16);
        xe[col] = 1;
        for (const wide of [{}, ...WIDE]) {
          const y = await runLinear(gpu, g16, xe, 1, { gemv: 'wide', wide });
          expect(y.every((v, r) => v === w16[r * c16 + col]), `gemv wide ${JSON.stringify(wide)} column ${col}`).toBe(true);
        }
      }
      destroyLinear(g16);
    }
    const y = await runLinear(gpu, gw, new Float32Array([0, 0, 1]), 1, { forceGemm: true });
    expect(y.every((v, r) => v === want[r * cols + 2]), 'gemm').toBe(true);
    {
      // fp8_gemm_tiled: the vec4 body (columns < 16·⌊cols/16⌋) and the one-column tail, both decoders, every
      // token slot of the tile: token t picks column cols[t % 3], so each slot sees a body and a tail column
      const c20 = 20;
      const d20 = new Uint8Array(rows * c20);
      codes.forEach((c, r) => d20.fill(c, r * c20, (r + 1) * c20));
      const g20 = uploadLinear(gpu, 'codes20', { format: 'fp8', rows, cols: c20, data: d20, scale });
      const w20 = dequantizeFp8Block(d20, scale, rows, c20);
      const T = 16;
      const pick = [3, 17, 12];
      const xe = new Float32Array(T * c20);
      for (let t = 0; t < T; t++) xe[t * c20 + pick[t % 3]!] = 1;
      for (const tiled of TILED) {
        const yt = await runLinear(gpu, g20, xe, T, { gemm: 'tiled', tiled });
        const ok = yt.every((v, i) => v === w20[(i % rows) * c20 + pick[Math.floor(i / rows) % 3]!]);
        expect(ok, `gemm tiled ${JSON.stringify(tiled)}`).toBe(true);
      }
      destroyLinear(g20);
    }
    destroyLinear(gw);
  });

  it('debug case: fp8 [3, 5], x = 1..5, GEMV == GEMM == hand-computed', async () => {
    const gpu = await testGpu();
    // codes 0x38 = 1.0, 0x40 = 2.0, 0xB8 = -1.0, 0x30 = 0.5; scale 2
    const data = new Uint8Array([0x38, 0x38, 0x38, 0x38, 0x38, 0x40, 0x00, 0xb8, 0x00, 0x30, 0x00, 0x00, 0x00, 0x00, 0x38]);
    const gw = uploadLinear(gpu, 'debug', { format: 'fp8', rows: 3, cols: 5, data, scale: new Float32Array([2]) });
    const x = new Float32Array([1, 2, 3, 4, 5]);
    const want = [2 * 15, 2 * (2 - 3 + 2.5), 2 * 5];
    expect(Array.from(await runLinear(gpu, gw, x, 1))).toEqual(want);
    expect(Array.from(await runLinear(gpu, gw, x, 1, { forceGemm: true }))).toEqual(want);
    expect(Array.from(await runLinear(gpu, gw, x, 1, { gemm: 'tiled', forceGemm: true }))).toEqual(want);
    destroyLinear(gw);
  });

  const shapes: Array<[string, number, number, number]> = [
    // [label, rows, cols, T]
    ['1x1', 1, 1, 1],
    ['ragged blocks 200x72 (ragged fixture)', 200, 72, 1],
    ['130x257 ragged both ways', 130, 257, 1],
    ['65x300 T=3', 65, 300, 3],
    ['300x150 T=9', 300, 150, 9],
    ['128x128 T=16', 128, 128, 16],
  ];
  for (const [i, [label, rows, cols, T]] of shapes.entries()) {
    it(`fp8 ${label}: every GEMV variant and the GEMM (seed ${i})`, async () => {
      const gpu = await testGpu();
      const rand = rng(100 + i);
      const c = fp8Case(rand, rows, cols);
      const x = randn(rand, T * cols);
      const gw = uploadLinear(gpu, `w${i}`, c.w);
      const ref = linearReference(c.dense, rows, cols, x, T);
      expectWithin(await runLinear(gpu, gw, x, T, { forceGemm: true }), ref.y, ref.m, F32.rtol, F32.atol, 'fp8_gemm');
      for (const tiled of TILED) {
        expectWithin(await runLinear(gpu, gw, x, T, { gemm: 'tiled', forceGemm: true, tiled }), ref.y, ref.m, F32.rtol, F32.atol, `fp8_gemm_tiled ${JSON.stringify(tiled)}`);
      }
      if (kernels(gpu).available('fp8_gemm_f16')) {
        expectWithin(await runLinear(gpu, gw, x, T, { forceGemm: true, gemm: 'f16' }), ref.y, ref.m, F16.rtol, F16.atol, 'fp8_gemm_f16');
      }
      if (T === 1) {
        expectWithin(await runLinear(gpu, gw, x, 1), ref.y, ref.m, F32.rtol, F32.atol, 'fp8_gemv');
        if (kernels(gpu).available('fp8_gemv_subgroup')) {
          expectWithin(await runLinear(gpu, gw, x, 1, { gemv: 'subgroup' }), ref.y, ref.m, F32.rtol, F32.atol, 'fp8_gemv_subgroup');
        }
        if (kernels(gpu).available('fp8_gemv_f16')) {
          expectWithin(await runLinear(gpu, gw, x, 1, { gemv: 'f16' }), ref.y, ref.m, F16.rtol, F16.atol, 'fp8_gemv_f16');
        }
        for (const wide of WIDE) {
          expectWithin(await runLinear(gpu, gw, x, 1, { gemv: 'wide', wide }), ref.y, ref.m, F32.rtol, F32.atol, `fp8_gemv_wide ${JSON.stringify(wide)}`);
        }
      }
      destroyLinear(gw);
    });
  }

  for (let seed = 0; seed < 4; seed++) {
    it(`fp8 and bf16 random shape, offsets, strides, accumulate (seed ${seed})`, async () => {
      const gpu = await testGpu();
      const rand = rng(1000 + seed);
      const rows = randInt(rand, 1, 290);
      const cols = randInt(rand, 1, 400);
      const T = randInt(rand, 1, 11);
      for (const fmt of ['fp8', 'bf16'] as const) {
        const c = fmt === 'fp8' ? fp8Case(rand, rows, cols) : bf16Case(rand, rows, cols);
        const gw = uploadLinear(gpu, fmt, c.w);
        const x = randn(rand, T * cols);
        const ref = linearReference(c.dense, rows, cols, x, T);
        // x with a 3-element offset and stride cols + 5; y with offset 7, stride rows + 2, accumulating on 1.0
        const xOffset = 3;
        const xStride = cols + 5;
        const xp = new Float32Array(xOffset + T * xStride).fill(NaN);
        for (let t = 0; t < T; t++) xp.set(x.subarray(t * cols, (t + 1) * cols), xOffset + t * xStride);
        const yOffset = 7;
        const yStride = rows + 2;
        const ylen = yOffset + T * yStride;
        const xb = f32Buffer(gpu, xp, 'x');
        const yb = f32Buffer(gpu, new Float32Array(ylen).fill(1), 'y');
        await record(gpu, (r) => linear(r.k, r.pass, r.arena, { w: gw, x: xb, xOffset, xStride, y: yb, yOffset, yStride, tokens: T, accumulate: true }));
        const yp = await readF32(gpu, yb, ylen);
        const got = new Float32Array(T * rows);
        for (let t = 0; t < T; t++) got.set(yp.subarray(yOffset + t * yStride, yOffset + t * yStride + rows), t * rows);
        const want = ref.y.map((v) => v + 1);
        expectWithin(got, want, ref.m.map((v) => v + 1), F32.rtol, F32.atol, `${fmt} T=${T} [${rows}, ${cols}]`);
        // untouched padding between token rows stays 1
        for (let t = 0; t < T; t++) expect(yp[yOffset + t * yStride + rows]).toBe(1);
        xb.destroy();
        yb.destroy();
        destroyLinear(gw);
      }
    });
  }

  for (let seed = 0; seed < 3; seed++) {
    it(`fp8 prefill GEMM as the engine picks it: random ragged shape, T up to 130, offsets, strides, accumulate (seed ${seed})`, async () => {
      const gpu = await testGpu();
      const rand = rng(2000 + seed);
      // rows and cols never multiples of 128 or of the tile (16 columns, RT·WG rows), T never of 4·TQ
      const rows = 128 * randInt(rand, 0, 2) + randInt(rand, 1, 127);
      const cols = 128 * randInt(rand, 0, 2) + 16 * randInt(rand, 0, 7) + randInt(rand, 1, 15);
      const Ts = [1, randInt(rand, 2, 15), randInt(rand, 17, 63), randInt(rand, 100, 130)].map((t) => (t > 1 && t % 4 === 0 ? t + 1 : t));
      const c = fp8Case(rand, rows, cols);
      const gw = uploadLinear(gpu, 'prefill', c.w);
      for (const T of Ts) {
        const x = randn(rand, T * cols);
        const ref = linearReference(c.dense, rows, cols, x, T);
        const xOffset = randInt(rand, 0, 5);
        const xStride = cols + randInt(rand, 0, 6);
        const xp = new Float32Array(xOffset + T * xStride + 3).fill(NaN); // NaN outside the token rows: never read
        for (let t = 0; t < T; t++) xp.set(x.subarray(t * cols, (t + 1) * cols), xOffset + t * xStride);
        const yOffset = randInt(rand, 0, 5);
        const yStride = rows + randInt(rand, 0, 3);
        const ylen = yOffset + T * yStride + 1;
        for (const tiled of T === 1 ? [{}] : [{}, { rt: 1, tq: 4 }, { rt: 4, tq: 1 }, { rt: 3, tq: 3, f16bits: false }]) {
          const xb = f32Buffer(gpu, xp, 'x');
          const yb = f32Buffer(gpu, new Float32Array(ylen).fill(1), 'y');
          const gemm = T > 1 && Object.keys(tiled).length ? ('tiled' as const) : undefined;
          await record(gpu, (r) => linear(r.k, r.pass, r.arena, { w: gw, x: xb, xOffset, xStride, y: yb, yOffset, yStride, tokens: T, accumulate: true, gemm, tiled }));
          const yp = await readF32(gpu, yb, ylen);
          const got = new Float32Array(T * rows);
          for (let t = 0; t < T; t++) got.set(yp.subarray(yOffset + t * yStride, yOffset + t * yStride + rows), t * rows);
          const label = `${chooseGemm(gemm ?? 'f32', T, false)} ${JSON.stringify(tiled)} T=${T} [${rows}, ${cols}] seed ${seed}`;
          expectWithin(got, ref.y.map((v) => v + 1), ref.m.map((v) => v + 1), F32.rtol, F32.atol, label);
          // nothing outside the token rows' first `rows` columns is written
          for (let i = 0; i < ylen; i++) {
            const o = i - yOffset;
            if (o < 0 || o >= T * yStride || o % yStride >= rows) expect(yp[i], `${label} y[${i}]`).toBe(1);
          }
          xb.destroy();
          yb.destroy();
        }
      }
      destroyLinear(gw);
    });
  }

  it('fp8_gemv_wide with x/y offsets, accumulate and ragged shapes (engine default tuning and every RPT)', async () => {
    const gpu = await testGpu();
    const rand = rng(4242);
    for (const [rows, cols] of [[67, 300], [9, 16], [130, 129], [3, 1]] as const) {
      const c = fp8Case(rand, rows, cols);
      const gw = uploadLinear(gpu, 'wide', c.w);
      const x = randn(rand, cols);
      const ref = linearReference(c.dense, rows, cols, x, 1);
      const xOffset = 5;
      const xp = new Float32Array(xOffset + cols + 3).fill(NaN);
      xp.set(x, xOffset);
      const yOffset = 3;
      for (const wide of [{}, ...WIDE]) {
        const xb = f32Buffer(gpu, xp, 'x');
        const yb = f32Buffer(gpu, new Float32Array(yOffset + rows + 1).fill(1), 'y');
        await record(gpu, (r) => linear(r.k, r.pass, r.arena, { w: gw, x: xb, xOffset, y: yb, yOffset, tokens: 1, accumulate: true, gemv: 'wide', wide }));
        const yp = await readF32(gpu, yb, yOffset + rows + 1);
        expectWithin(yp.subarray(yOffset, yOffset + rows), ref.y.map((v) => v + 1), ref.m.map((v) => v + 1), F32.rtol, F32.atol, `wide ${JSON.stringify(wide)} [${rows}, ${cols}]`);
        expect(yp[yOffset - 1]).toBe(1);
        expect(yp[yOffset + rows]).toBe(1);
        xb.destroy();
        yb.destroy();
      }
      destroyLinear(gw);
    }
  });

  it('per-row GEMVs (batched decode rows): each of T rows equals the one-token GEMV bit for bit, for every tokens-per-invocation count; other GEMVs are refused', async () => {
    const gpu = await testGpu();
    const rand = rng(77);
    for (const c of [fp8Case(rand, 70, 300), bf16Case(rand, 33, 130)]) {
      const gw = uploadLinear(gpu, 'rows', c.w);
      // T = 7 is no multiple of TB 2, 4 or 8: the last invocation of a column computes fewer tokens
      const T = 7;
      const x = randn(rand, T * c.w.cols);
      const nw = randn(rand, Math.ceil(c.w.cols / 4) * 4);
      const nwBuf = f32Buffer(gpu, nw, 'nw');
      const ones: Float32Array[] = [];
      const normed: Float32Array[] = [];
      for (let t = 0; t < T; t++) {
        const xt = x.slice(t * c.w.cols, (t + 1) * c.w.cols);
        ones.push(await runLinear(gpu, gw, xt, 1, { gemv: 'wide' }));
        normed.push(await runLinear(gpu, gw, xt, 1, { gemv: 'wide', norm: { weight: nwBuf, eps: 1e-6 } }));
      }
      // every TB for the plain GEMV; the prologue (per-token sums of squares) at the engine's TB (pipelines are slow to build)
      const cases = [...[1, 2, 4, 8].map((tb) => ({ tb, what: 'plain', norm: undefined, want: ones })), { tb: 8, what: 'RMSNorm prologue', norm: { weight: nwBuf, eps: 1e-6 }, want: normed }];
      for (const { tb, what, norm, want } of cases) {
        const all = await runLinear(gpu, gw, x, T, { gemv: 'wide', perRow: true, wide: { tb }, norm });
        for (let t = 0; t < T; t++) {
          expect(new Uint32Array(all.slice(t * c.w.rows, (t + 1) * c.w.rows).buffer), `${c.w.format} ${what} tb ${tb} row ${t}`).toEqual(new Uint32Array(want[t]!.buffer));
        }
      }
      if (c.w.format === 'fp8') {
        await expect(runLinear(gpu, gw, x, T, { gemv: 'f32', perRow: true })).rejects.toThrow(/per-row GEMVs need the wide FP8 GEMV/);
        await expect(runLinear(gpu, gw, x, T, { gemv: 'f32', perRow: true })).rejects.toBeInstanceOf(ShapeError);
        await expect(runLinear(gpu, gw, x, T, { gemv: 'wide', perRow: true, wide: { tb: 9 } })).rejects.toThrow(/needs 1 ≤ tb ≤ 8/);
      }
      nwBuf.destroy();
      destroyLinear(gw);
    }
  });

  it('stacked linears (q_a over kv_a): each part of the stacked GEMV and GEMM equals its own matrix bit for bit, FP8 padding rows 0; parts that cannot share a matrix are refused', async () => {
    const gpu = await testGpu();
    const rand = rng(91);
    const int4Case = (rows: number, cols: number): HostLinear => {
      const q = quantizeInt4(randn(rand, rows * cols, 0.5), rows, cols);
      return { format: 'int4', rows, cols, groupSize: 32, data: q.packed, scale: bf16ArrayToF32(q.scale) };
    };
    // FP8 rows 96 (not a whole 128-row block: b starts at row 128), BF16 / INT4 stacked without padding
    const pairs: Array<[HostLinear, HostLinear, number]> = [
      [fp8Case(rand, 96, 300).w, fp8Case(rand, 80, 300).w, 128],
      [fp8Case(rand, 256, 130).w, fp8Case(rand, 40, 130).w, 256],
      [bf16Case(rand, 33, 130).w, bf16Case(rand, 20, 130).w, 33],
      [int4Case(40, 96), int4Case(24, 96), 40],
    ];
    for (const [a, b, bRow] of pairs) {
      const st = stackLinears(a, b)!;
      expect(st.bRow, a.format).toBe(bRow);
      expect(st.w.rows).toBe(bRow + b.rows);
      const [ga, gb, gs] = [uploadLinear(gpu, 'a', a), uploadLinear(gpu, 'b', b), uploadLinear(gpu, 'ab', st.w)];
      for (const T of [1, 5]) {
        const x = randn(rand, T * a.cols);
        const [ya, yb, ys] = [await runLinear(gpu, ga, x, T), await runLinear(gpu, gb, x, T), await runLinear(gpu, gs, x, T)];
        for (let t = 0; t < T; t++) {
          const row = ys.subarray(t * st.w.rows, (t + 1) * st.w.rows);
          const bits = (v: Float32Array) => Array.from(new Uint32Array(v.slice().buffer));
          expect(bits(row.subarray(0, a.rows)), `${a.format} T ${T} a`).toEqual(bits(ya.subarray(t * a.rows, (t + 1) * a.rows)));
          expect(bits(row.subarray(bRow)), `${a.format} T ${T} b`).toEqual(bits(yb.subarray(t * b.rows, (t + 1) * b.rows)));
          expect(Array.from(row.subarray(a.rows, bRow)).every((v) => v === 0), `${a.format} padding rows`).toBe(true);
        }
      }
      for (const w of [ga, gb, gs]) destroyLinear(w);
    }
    expect(stackLinears(fp8Case(rand, 8, 64).w, bf16Case(rand, 8, 64).w)).toBeNull(); // formats differ
    expect(stackLinears(fp8Case(rand, 8, 64).w, fp8Case(rand, 8, 65).w)).toBeNull(); // columns differ
  });

  it('rejects wrong shapes with ShapeError before encoding', async () => {
    const gpu = await testGpu();
    const gw = uploadLinear(gpu, 'small', fp8Case(rng(5), 8, 16).w);
    const x = f32Buffer(gpu, 12, 'x'); // 48 bytes (padded to 64): fewer than 16 cols
    const y = f32Buffer(gpu, 8, 'y');
    await expect(record(gpu, (r) => linear(r.k, r.pass, r.arena, { w: gw, x, y, tokens: 1 }))).rejects.toBeInstanceOf(ShapeError);
    // fp8_gemm_tiled constants outside its register tile (rows 1-8, token quads 1-4) are refused by name
    const xs = f32Buffer(gpu, 64, 'x16');
    const ys = f32Buffer(gpu, 64, 'y16');
    for (const tiled of [{ rt: 9 }, { tq: 5 }, { rt: 0 }]) {
      await expect(record(gpu, (r) => linear(r.k, r.pass, r.arena, { w: gw, x: xs, y: ys, tokens: 4, gemm: 'tiled', tiled }))).rejects.toThrow(/fp8_gemm_tiled needs 1 ≤ rt ≤ 8 and 1 ≤ tq ≤ 4/);
    }
    // the subgroup GEMV's workgroup: whole subgroups (fewer threads than a subgroup would combine nothing), ≤ 256
    for (const subgroupWg of [7, 512, 1.5]) {
      await expect(record(gpu, (r) => linear(r.k, r.pass, r.arena, { w: gw, x: xs, y: ys, tokens: 1, gemv: 'subgroup', subgroupWg }))).rejects.toThrow(/fp8_gemv_subgroup: subgroupWg = .* must be/);
    }
    destroyLinear(gw);
  });
});

describe(`linear kernels under a 1 MiB binding cap (${testAdapter()})`, () => {
  afterAll(async () => (await testGpu({ maxBindingSizeCap: 1 << 20 })).destroy());

  it('splits a weight larger than the cap into row chunks and matches the unsplit result', async () => {
    const gpu = await testGpu({ maxBindingSizeCap: 1 << 20 });
    const rand = rng(77);
    const rows = 700; // 700 rows x 1600 B (fp8, 1600 cols) = 1.12 MB > 1 MiB; bf16 rows: 3200 B -> 3 chunks
    const cols = 1600;
    for (const fmt of ['fp8', 'bf16'] as const) {
      const c = fmt === 'fp8' ? fp8Case(rand, rows, cols) : bf16Case(rand, rows, cols);
      const gw = uploadLinear(gpu, fmt, c.w);
      expect(gw.chunks.length).toBeGreaterThan(1);
      for (const ch of gw.chunks) expect(ch.codes.size).toBeLessThanOrEqual(1 << 20);
      for (const T of [1, 3, 37]) {
        const x = randn(rand, T * cols);
        const ref = linearReference(c.dense, rows, cols, x, T);
        expectWithin(await runLinear(gpu, gw, x, T), ref.y, ref.m, F32.rtol, F32.atol, `${fmt} split T=${T}`);
        if (fmt === 'fp8' && T > 1) {
          expectWithin(await runLinear(gpu, gw, x, T, { forceGemm: true }), ref.y, ref.m, F32.rtol, F32.atol, `fp8_gemm split T=${T}`);
          for (const tiled of [{ rt: 3, tq: 2 }, { rt: 4, tq: 4, f16bits: false }]) {
            expectWithin(await runLinear(gpu, gw, x, T, { gemm: 'tiled', tiled }), ref.y, ref.m, F32.rtol, F32.atol, `tiled split T=${T} ${JSON.stringify(tiled)}`);
          }
        }
        if (fmt === 'fp8' && T === 1) {
          for (const wide of [{}, { rpt: 3, f16bits: true }]) {
            expectWithin(await runLinear(gpu, gw, x, T, { gemv: 'wide', wide }), ref.y, ref.m, F32.rtol, F32.atol, `wide split ${JSON.stringify(wide)}`);
          }
        }
      }
      destroyLinear(gw);
    }
  });

  it('rejects a tensor whose single row exceeds the cap with a DeviceError naming it and the limit', async () => {
    const gpu = await testGpu({ maxBindingSizeCap: 1 << 20 });
    const cols = (1 << 20) + 64;
    const w: LinearWeight = { format: 'fp8', rows: 1, cols, data: new Uint8Array(cols), scale: new Float32Array(Math.ceil(cols / 128)) };
    let err: unknown;
    try {
      uploadLinear(gpu, 'model.layers.0.mlp.down_proj.weight', w);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DeviceError);
    expect((err as Error).message).toMatch(/model\.layers\.0\.mlp\.down_proj\.weight/);
    expect((err as Error).message).toMatch(/maxStorageBufferBindingSize 1048576/);
  });
});
