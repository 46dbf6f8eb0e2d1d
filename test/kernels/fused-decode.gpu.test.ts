/**
 * The fused decode kernels (issue #13 item 1, docs/kernels.md "Fused decode dispatches") against the CPU reference and
 * against the unfused dispatches they replace:
 *   mla_kv_rope (ops/rope.ts mlaKvRope): kv_a_layernorm of c into the cache row, RoPE of k_pe into it, RoPE of q_pe
 *     in place, for any T, with offsets and strides on every side; against reference.ts rmsNorm + rope.ts applyRope,
 *     and bit for bit against rmsnorm + rope_copy + rope (the batched path ran those; the engine's batch tests
 *     compare a batched row with a solo decode bit for bit).
 *   the fp8_gemv_wide family with its NORM prologue (linear with `norm`): y = W · RMSNorm(x, nw, eps) for FP8, BF16 and
 *     INT4 weights, ragged rows and columns, token rows with offsets and strides, accumulate, several rows per
 *     invocation, and row chunks under a binding cap; against an f64 product with reference.ts rmsNorm; with XN
 *     (norm.out) the normalised rows written on the side against reference.ts rmsNorm. x staged in workgroup memory
 *     (XS) changes no bit; a NORM row's bits do not depend on the rows beside it.
 *
 * Tolerances:
 *   norm: f32 sum of squares (≤ 700 terms) vs f64, one division / sqrt / two products: rtol 1e-5 + atol 1e-6
 *     (dense.gpu.test.ts rmsnorm);
 *   rope: two f32 products and one add per output on the same f32 table values: atol 1e-6 + rtol 1e-6.
 *   fused-norm GEMV, per output y_r, relative to m_r = Σ_c |W[r,c]·xn_c|: the f32 GEMV bound of linear.gpu.test.ts
 *     (1e-5·m_r + 1e-6: summation order) covers the extra roundings too: x_c·nw_c (one ulp per term, inside the
 *     m_r bound), the f32 sum of squares (≤ 700 terms, ~1e-6 relative) and the final scale (one ulp).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { dequantizeFp8Block, quantizeFp8Block } from '../../src/format/fp8.js';
import { dequantizeInt4 } from '../../src/format/int4.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { destroyLinear, fusesNorm, linear, uploadLinear, type GemvWideTuning, type GpuLinear } from '../../src/gpu/ops/linear.js';
import { rmsNorm } from '../../src/gpu/ops/norm.js';
import { mlaKvRope, ropeCopy, ropeInPlace, uploadRopeTable } from '../../src/gpu/ops/rope.js';
import { rmsNorm as cpuRmsNorm } from '../../src/model/reference.js';
import { applyRope, ropeTables, type RopeConfig } from '../../src/model/rope.js';
import { compareClose, expectClose, randInt, randn, rng, testAdapter, testGpu } from '../helpers/gpu.js';
import type { StoredLinear } from '../../src/model/checkpoint.js';
import { bf16Case } from './linear-cases.js';
import { f32Buffer, kernels, readF32, record } from './ops-harness.js';

const YARN: RopeConfig = {
  qk_rope_head_dim: 24,
  rope_theta: 50000,
  rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 64, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
};

describe(`fused decode kernels (${testAdapter()})`, () => {
  afterAll(async () => (await testGpu()).destroy());

  it('mla_kv_rope: the reference and the three unfused dispatches, bit for bit (debug case + seeds 0-5)', async () => {
    const gpu = await testGpu();
    // seed -1: the fixed debug case (R 4, Dr 8, 2 heads, one token at position 3, no padding)
    for (let seed = -1; seed < 6; seed++) {
      const rand = rng(100 + seed);
      const dbg = seed < 0;
      const Dr = dbg ? 8 : 2 * randInt(rand, 1, 16);
      const c: RopeConfig = dbg || seed % 2 === 0 ? { qk_rope_head_dim: Dr, rope_theta: 10000, rope_scaling: null } : { ...YARN, qk_rope_head_dim: Dr };
      const ctx = 160;
      const table = uploadRopeTable(gpu, ropeTables(c, Array.from({ length: ctx }, (_, i) => i)), ctx);
      const R = dbg ? 4 : randInt(rand, 1, 700); // ragged: not a multiple of 4 or of the workgroup
      const H = dbg ? 2 : randInt(rand, 1, 9);
      const T = dbg ? 1 : randInt(rand, 1, 9);
      const Dn = dbg ? 4 : randInt(rand, 0, 7);
      const pos0 = dbg ? 3 : randInt(rand, 0, ctx - T);
      const L = R + Dr;
      const kvStride = L + (dbg ? 0 : randInt(rand, 0, 5));
      const kvOffset = dbg ? 0 : randInt(rand, 0, 7);
      const cacheStride = L + (dbg ? 0 : randInt(rand, 0, 3));
      const Dq = Dn + Dr;
      const qHeadStride = Dq + (dbg ? 0 : randInt(rand, 0, 2));
      const qTokenStride = H * qHeadStride + (dbg ? 0 : randInt(rand, 0, 5));
      const qOffset = dbg ? 0 : randInt(rand, 0, 3);
      const kv = randn(rand, kvOffset + T * kvStride, 2);
      const q0 = randn(rand, qOffset + T * qTokenStride);
      const wt = randn(rand, R);
      const run = async (fused: boolean) => {
        const kvb = f32Buffer(gpu, kv, 'kv');
        const qb = f32Buffer(gpu, q0, 'q');
        const wb = f32Buffer(gpu, wt, 'w');
        const cache = f32Buffer(gpu, ctx * cacheStride, 'cache');
        const qSeg = { buf: qb, offset: qOffset + Dn, tokenStride: qTokenStride, headStride: qHeadStride };
        await record(gpu, (r) => {
          if (fused) {
            mlaKvRope(r.k, r.pass, r.arena, {
              table, tokens: T, pos0, kv: kvb, kvOffset, kvStride, norm: wb, eps: 1e-6, rank: R,
              cache, cacheOffset: pos0 * cacheStride, cacheStride, heads: H, q: qSeg,
            });
            return;
          }
          rmsNorm(r.k, r.pass, r.arena, { x: kvb, xOffset: kvOffset, xStride: kvStride, weight: wb, y: cache, yOffset: pos0 * cacheStride, yStride: cacheStride, n: R, tokens: T, eps: 1e-6 });
          ropeCopy(r.k, r.pass, r.arena, {
            table, tokens: T, pos0, heads: 1,
            src: { buf: kvb, offset: kvOffset + R, tokenStride: kvStride, headStride: 0 },
            dst: { buf: cache, offset: pos0 * cacheStride + R, tokenStride: cacheStride, headStride: 0 },
          });
          ropeInPlace(r.k, r.pass, r.arena, { table, tokens: T, pos0, heads: H, x: qSeg });
        });
        const out = { cache: await readF32(gpu, cache, ctx * cacheStride), q: await readF32(gpu, qb, q0.length) };
        for (const b of [kvb, qb, wb, cache]) b.destroy();
        return out;
      };
      const fused = await run(true);
      const label = `seed ${seed}: R ${R} Dr ${Dr} H ${H} T ${T} pos0 ${pos0}`;
      // the reference
      const tabs = ropeTables(c, Array.from({ length: T }, (_, t) => pos0 + t));
      for (let t = 0; t < T; t++) {
        const row = fused.cache.subarray((pos0 + t) * cacheStride, (pos0 + t + 1) * cacheStride);
        const cIn = Float64Array.from(kv.subarray(kvOffset + t * kvStride, kvOffset + t * kvStride + R));
        expectClose(row.subarray(0, R), cpuRmsNorm(cIn, wt, 1e-6), { rtol: 1e-5, atol: 1e-6, label: `${label} c t=${t}` });
        const kpe = Float64Array.from(kv.subarray(kvOffset + t * kvStride + R, kvOffset + t * kvStride + L));
        applyRope(kpe, 0, tabs, t);
        expectClose(row.subarray(R, L), kpe, { atol: 1e-6, rtol: 1e-6, label: `${label} k_pe t=${t}` });
        expect(Array.from(row.subarray(L))).toEqual(new Array(cacheStride - L).fill(0)); // row padding untouched
      }
      const wantQ = Float64Array.from(q0);
      for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) applyRope(wantQ, qOffset + t * qTokenStride + h * qHeadStride + Dn, tabs, t);
      expectClose(fused.q, wantQ, { atol: 1e-6, rtol: 1e-6, label: `${label} q (rope parts rotated, the rest untouched)` });
      // other cache rows untouched
      expect(fused.cache.subarray(0, pos0 * cacheStride).every((v) => v === 0)).toBe(true);
      expect(fused.cache.subarray((pos0 + T) * cacheStride).every((v) => v === 0)).toBe(true);
      // bit for bit against the unfused dispatches
      const old = await run(false);
      expect(Buffer.from(fused.cache.buffer).equals(Buffer.from(old.cache.buffer)), `${label}: cache bits`).toBe(true);
      expect(Buffer.from(fused.q.buffer).equals(Buffer.from(old.q.buffer)), `${label}: q bits`).toBe(true);
      table.buffer.destroy();
    }
  });

  it('fp8_gemv_wide NORM (and XN): FP8, BF16, INT4 against RMSNorm + f64 product (debug case + seeds 0-3)', async () => {
    const gpu = await testGpu();
    for (let seed = -1; seed < 4; seed++) {
      const rand = rng(200 + seed);
      const dbg = seed < 0;
      const rows = dbg ? 5 : randInt(rand, 1, 300);
      const cols = dbg ? 20 : randInt(rand, 1, 700);
      const T = dbg ? 1 : randInt(rand, 1, 3);
      for (const fmt of ['fp8', 'bf16', 'int4'] as const) {
        const c = weightCase(rand, fmt, rows, cols);
        const gw = uploadLinear(gpu, fmt, c.w);
        // the engine's tuning and, per seed, one of: one row, an odd count with a small workgroup, the most rows with
        // the f32 bit-trick decode (each setting is a pipeline to compile per format: seconds on lavapipe)
        const others: Array<Partial<GemvWideTuning>> = [{ rpt: 1 }, { rpt: 3, wg: 16 }, { rpt: 8, f16bits: false }];
        const settings: Array<Partial<GemvWideTuning>> = dbg ? [{}] : [{}, others[seed % others.length]!];
        for (const wide of settings) {
          const accumulate = !dbg && rand() < 0.5;
          const xn = dbg || rand() < 0.5;
          await checkNormGemv(gpu, gw, c, T, rand, { wide, accumulate, strided: !dbg, xn, label: `seed ${seed} ${fmt} [${rows}, ${cols}] T ${T} ${JSON.stringify(wide)}` });
        }
        destroyLinear(gw);
      }
    }
  });

  it('fp8_gemv_wide XS (x staged in workgroup memory) changes no bit; with NORM a batched row equals its one-token launch bit for bit (FP8, BF16, INT4)', async () => {
    const gpu = await testGpu();
    const rand = rng(250);
    const bits = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    // the last case's rows (3000 columns) fit workgroup memory only 2 tokens per invocation: the batched launch
    // lowers its TB from 4, which changes no bit either
    const cases = [...(['fp8', 'bf16', 'int4'] as const).map((fmt) => ({ fmt, rows: randInt(rand, 1, 200), cols: randInt(rand, 1, 500) })), { fmt: 'fp8' as const, rows: 9, cols: 3000 }];
    for (const { fmt, rows, cols } of cases) {
      const c = weightCase(rand, fmt, rows, cols);
      const gw = uploadLinear(gpu, fmt, c.w);
      const T = 5;
      const x = randn(rand, T * cols, 3);
      const nwt = Float32Array.from(randn(rand, cols, 0.1), (v) => 1 + v);
      const [xb, nb] = [f32Buffer(gpu, x, 'x'), f32Buffer(gpu, padded(nwt), 'nw')];
      const run = async (tokens: number, xOffset: number, opts: { xs: boolean; norm: boolean }): Promise<Float32Array> => {
        const yb = f32Buffer(gpu, tokens * rows, 'y');
        await record(gpu, (r) => linear(r.k, r.pass, r.arena, {
          w: gw, x: xb, xOffset, y: yb, tokens, gemv: 'wide', perRow: tokens > 1, wide: { xs: opts.xs }, norm: opts.norm ? { weight: nb, eps: 1e-6 } : undefined,
        }));
        const y = await readF32(gpu, yb, tokens * rows);
        yb.destroy();
        return y;
      };
      const label = `${fmt} [${rows}, ${cols}]`;
      for (const tokens of [1, T]) {
        expect(bits(await run(tokens, 0, { xs: true, norm: false })).equals(bits(await run(tokens, 0, { xs: false, norm: false }))), `${label} T ${tokens}: XS`).toBe(true);
      }
      const batched = await run(T, 0, { xs: true, norm: true });
      for (let t = 0; t < T; t++) {
        const one = await run(1, t * cols, { xs: true, norm: true });
        expect(bits(batched.subarray(t * rows, (t + 1) * rows)).equals(bits(one)), `${label}: NORM row ${t} of ${T} vs alone`).toBe(true);
      }
      for (const b of [xb, nb]) b.destroy();
      destroyLinear(gw);
    }
  });

  it('fusesNorm: the family only (FP8 wide decode, BF16 decode, INT4, per-row); elsewhere linear refuses a norm', async () => {
    const gpu = await testGpu();
    const rand = rng(300);
    const c = weightCase(rand, 'fp8', 8, 16);
    const gw = uploadLinear(gpu, 'fp8', c.w);
    const k = kernels(gpu);
    expect(fusesNorm(k, { w: gw, tokens: 1, gemv: 'wide' })).toBe(true);
    expect(fusesNorm(k, { w: gw, tokens: 1, gemv: 'f32' })).toBe(false);
    expect(fusesNorm(k, { w: gw, tokens: 2, gemv: 'wide' })).toBe(false);
    expect(fusesNorm(k, { w: gw, tokens: 2, gemv: 'wide', perRow: true })).toBe(true);
    // the prologue needs x staged in workgroup memory: not without XS, nor for rows too wide for it
    expect(fusesNorm(k, { w: gw, tokens: 1, gemv: 'wide', wide: { xs: false } })).toBe(false);
    const wideRows = uploadLinear(gpu, 'wide', weightCase(rand, 'bf16', 2, 8192).w);
    expect(fusesNorm(k, { w: wideRows, tokens: 1, gemv: 'wide' })).toBe(false);
    destroyLinear(wideRows);
    const x = f32Buffer(gpu, 32);
    const y = f32Buffer(gpu, 16);
    const nw = f32Buffer(gpu, 16);
    expect(() => linear(kernels(gpu), null as unknown as GPUComputePassEncoder, null as never, { w: gw, x, y, tokens: 2, norm: { weight: nw, eps: 1e-6 } })).toThrow(/fused RMSNorm/);
    for (const b of [x, y, nw]) b.destroy();
    destroyLinear(gw);
  });
});

describe(`fused decode kernels under a 64 KiB binding cap (${testAdapter()})`, () => {
  const cap = 64 << 10;
  afterAll(async () => (await testGpu({ maxBindingSizeCap: cap })).destroy());

  it('fp8_gemv_wide NORM + XN over row chunks (FP8, BF16, INT4)', async () => {
    const gpu = await testGpu({ maxBindingSizeCap: cap });
    const rand = rng(400);
    // 430 columns (x rows staged in workgroup memory, 8 tokens per invocation: fusesNorm); FP8 rows of 432 B: 3
    // chunks of 128 rows; BF16 864 B: 5 chunks; INT4 224 B: 2 chunks
    const rows = 301;
    const cols = 430;
    for (const fmt of ['fp8', 'bf16', 'int4'] as const) {
      const c = weightCase(rand, fmt, rows, cols);
      const gw = uploadLinear(gpu, fmt, c.w);
      expect(gw.chunks.length, fmt).toBeGreaterThan(1);
      for (const T of [1, 2]) await checkNormGemv(gpu, gw, c, T, rand, { wide: {}, accumulate: T === 2, strided: true, xn: true, label: `${fmt} split T ${T}` });
      destroyLinear(gw);
    }
  });
});

/** A weight as stored and its dequantised values [rows, cols]. */
interface WeightCase {
  w: StoredLinear;
  dense: Float32Array;
}

/** The norm weight as the NORM prologue reads it: whole vec4, the tail zero. */
function padded(w: Float32Array): Float32Array {
  const p = new Float32Array(Math.ceil(w.length / 4) * 4);
  p.set(w);
  return p;
}

function weightCase(rand: () => number, fmt: 'fp8' | 'bf16' | 'int4', rows: number, cols: number): WeightCase {
  if (fmt === 'bf16') return bf16Case(rand, rows, cols);
  const v = randn(rand, rows * cols, 0.5);
  if (fmt === 'fp8') {
    const q = quantizeFp8Block(v, rows, cols);
    for (let i = 0; i < q.scale.length; i++) q.scale[i] = q.scale[i]! * (0.5 + rand()); // a wrong block index shows
    return { w: { format: 'fp8', rows, cols, data: q.data, scale: q.scale }, dense: dequantizeFp8Block(q.data, q.scale, rows, cols) };
  }
  // INT4 packed by hand (any cols; padding nibbles 0, as a writer pads): uniform codes, group scales ~ 0.05
  const wpr = Math.ceil(cols / 8);
  const data = new Uint32Array(rows * wpr);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) data[r * wpr + (j >> 3)]! |= Math.floor(rand() * 16) << ((j & 7) * 4);
  const scale = Float32Array.from({ length: rows * Math.ceil(cols / 32) }, () => Math.fround(0.05 * (0.5 + rand())));
  return { w: { format: 'int4', rows, cols, groupSize: 32, data, scale }, dense: dequantizeInt4(data, scale, rows, cols) };
}

/** Runs linear with `norm` on T raw rows (offsets / strides when `strided`) and checks y against RMSNorm + f64 product. */
async function checkNormGemv(
  gpu: GpuContext, gw: GpuLinear, c: WeightCase, T: number, rand: () => number,
  o: { wide: Partial<GemvWideTuning>; accumulate: boolean; strided: boolean; xn?: boolean; label: string },
): Promise<void> {
  const { rows, cols } = gw;
  const xStride = cols + (o.strided ? randInt(rand, 0, 5) : 0);
  const xOffset = o.strided ? randInt(rand, 0, 7) : 0;
  const yStride = rows + (o.strided ? randInt(rand, 0, 5) : 0);
  const yOffset = o.strided ? randInt(rand, 0, 7) : 0;
  const raw = randn(rand, T * cols, 3);
  const xs = new Float32Array(xOffset + T * xStride).fill(Number.NaN); // padding must never be read
  for (let t = 0; t < T; t++) xs.set(raw.subarray(t * cols, (t + 1) * cols), xOffset + t * xStride);
  const nwt = Float32Array.from(randn(rand, cols, 0.1), (v) => 1 + v);
  const y0 = randn(rand, yOffset + T * yStride);
  const xb = f32Buffer(gpu, xs, 'x');
  const yb = f32Buffer(gpu, y0, 'y');
  const nb = f32Buffer(gpu, padded(nwt), 'nw');
  const xnb = o.xn ? f32Buffer(gpu, xs.length, 'xn') : undefined;
  const perRow = T > 1; // grid y = token: the batched decode rows' path (FP8 needs gemv 'wide' there too)
  await record(gpu, (r) => linear(r.k, r.pass, r.arena, {
    w: gw, x: xb, xOffset, xStride, y: yb, yOffset, yStride, tokens: T, accumulate: o.accumulate, gemv: 'wide', perRow, wide: o.wide,
    norm: { weight: nb, eps: 1e-6, out: xnb },
  }));
  const ys = await readF32(gpu, yb, y0.length);
  const xn = cpuRmsNorm(Float64Array.from(raw), nwt, 1e-6);
  if (xnb) {
    // XN: the normalised rows in x's layout (rmsnorm's tolerance), nothing else written
    const got = await readF32(gpu, xnb, xs.length);
    for (let t = 0; t < T; t++) {
      expectClose(got.subarray(xOffset + t * xStride, xOffset + t * xStride + cols), xn.subarray(t * cols, (t + 1) * cols), { rtol: 1e-5, atol: 1e-6, label: `${o.label} xn t=${t}` });
      for (let j = cols; j < xStride && xOffset + t * xStride + j < got.length; j++) expect(got[xOffset + t * xStride + j]).toBe(0);
    }
    expect(got.subarray(0, xOffset).every((v) => v === 0)).toBe(true);
    xnb.destroy();
  }
  for (const b of [xb, yb, nb]) b.destroy();
  const got = new Float32Array(T * rows);
  const want = new Float64Array(T * rows);
  const bound = new Float64Array(T * rows);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      let m = 0;
      for (let j = 0; j < cols; j++) {
        const p = c.dense[r * cols + j]! * xn[t * cols + j]!;
        s += p;
        m += Math.abs(p);
      }
      const at = yOffset + t * yStride + r;
      const base = o.accumulate ? y0[at]! : 0;
      want[t * rows + r] = base + s;
      bound[t * rows + r] = 1e-5 * (m + Math.abs(base)) + 1e-6;
      got[t * rows + r] = ys[at]!;
    }
  }
  const clipped = Float64Array.from(got, (g, i) => (Math.abs(g - want[i]!) <= bound[i]! ? want[i]! : g));
  const rep = compareClose(clipped, want, { label: o.label });
  if (!rep.ok) throw new Error(rep.message + '\n  (bound 1e-5·Σ|w·xn| + 1e-6)');
  // the columns between rows of y are untouched
  for (let t = 0; t < T; t++) for (let j = rows; j < yStride && t * yStride + j + yOffset < ys.length; j++) expect(ys[yOffset + t * yStride + j]).toBe(y0[yOffset + t * yStride + j]);
}
