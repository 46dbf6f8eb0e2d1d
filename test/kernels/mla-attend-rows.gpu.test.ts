/**
 * mla_attend_rows (and its BF16 twin): the whole absorbed attention of one-token decode in one dispatch, against the
 * CPU reference's attentionAbsorbed (model/reference.ts) and against the unfused kernels (mla_absorb_q →
 * mla_attention_rows → mla_absorb_v) it replaces; ragged geometries (R % 4 != 0, kv_b rows crossing 128-row scale
 * blocks mid-head), strided cache views, p0 from 0 to a few hundred; mlaAttend with `fused` and a key split keeps
 * the unfused kernels (mla_decode_reduce).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { attentionAbsorbed, type MlaShape } from '../../src/model/reference.js';
import { bf16ArrayToF32, f32ArrayToBf16 } from '../../src/format/fp8.js';
import { packBf16Rows, packFp8Rows } from '../../src/gpu/ops/fp8-layout.js';
import { createMlaScratch, mlaAttend, mlaAttendRows, type KvBWeight, type LatentCacheView, type MlaGeometry } from '../../src/gpu/ops/attention.js';
import { randn, rng, testAdapter, testGpu } from '../helpers/gpu.js';
import { checkClose, harness, printMeasured, randomFp8, readF32, runPass, toF64, upload, zeros } from './moe-mla-harness.js';

// Legend: H heads, Dn / Dr / Dv head dims, R kv_lora_rank, S = p0 + 1 cached keys.
const SMALL: MlaGeometry = { heads: 4, nope: 32, rope: 16, v: 32, rank: 64 }; // golden `small`
const RAGGED: MlaGeometry = { heads: 3, nope: 40, rope: 24, v: 56, rank: 72 }; // golden `ragged`
const ODD: MlaGeometry = { heads: 5, nope: 24, rope: 6, v: 20, rank: 50 }; // R % 4 == 2
const K2: MlaGeometry = { heads: 3, nope: 128, rope: 64, v: 128, rank: 512 }; // Kimi K2 head geometry, 3 heads

interface Case {
  g: MlaGeometry;
  p0: number;
  scale: number;
  q: Float32Array; // [1, H, Dn + Dr]
  cHat: Float32Array; // [S, R]
  kPe: Float32Array; // [S, Dr]
  kvB: Float32Array; // the weight the GPU sees, decoded: [H(Dn+Dv), R]
  codes: Uint8Array;
  scales: Float32Array | null; // null: BF16
}

function makeCase(seed: number, g: MlaGeometry, p0: number, format: 'fp8' | 'bf16'): Case {
  const rand = rng(seed);
  const S = p0 + 1;
  const rows = g.heads * (g.nope + g.v);
  const base = { g, p0, scale: (g.nope + g.rope) ** -0.5 };
  const q = randn(rand, g.heads * (g.nope + g.rope), 1);
  const cHat = randn(rand, S * g.rank, 1);
  const kPe = randn(rand, S * g.rope, 1);
  if (format === 'bf16') {
    const data = f32ArrayToBf16(randn(rand, rows * g.rank, 0.08));
    return { ...base, q, cHat, kPe, kvB: bf16ArrayToF32(data), codes: packBf16Rows({ rows, cols: g.rank, data }).bytes, scales: null };
  }
  const { m, w } = randomFp8(rand, rows, g.rank, 0.08);
  return { ...base, q, cHat, kPe, kvB: w, codes: packFp8Rows(m).bytes, scales: m.scale };
}

function reference(c: Case): Float64Array {
  const { heads: H, nope: Dn, rope: Dr, v, rank } = c.g;
  const qNope = new Float64Array(H * Dn);
  const qPe = new Float64Array(H * Dr);
  for (let h = 0; h < H; h++) {
    for (let d = 0; d < Dn; d++) qNope[h * Dn + d] = c.q[h * (Dn + Dr) + d]!;
    for (let d = 0; d < Dr; d++) qPe[h * Dr + d] = c.q[h * (Dn + Dr) + Dn + d]!;
  }
  const shape: MlaShape = { heads: H, nope: Dn, rope: Dr, v, rank, scale: c.scale };
  const keys = Array.from({ length: c.p0 + 1 }, (_, j) => j);
  const kvB = { rows: H * (Dn + v), cols: rank, data: c.kvB };
  return attentionAbsorbed(qNope, qPe, toF64(c.cHat), toF64(c.kPe), kvB, [c.p0], keys, shape);
}

/** Runs mlaAttend (fused or not, `splits`) on one buffer [S, R + Dr] per cache, or on padded separate buffers. */
async function run(c: Case, fused: boolean, splits: number, strided = false): Promise<Float32Array> {
  const gpu = await testGpu();
  const h = harness(gpu);
  const g = c.g;
  const S = c.p0 + 1;
  // strided: ĉ rows padded to R + 5, k_pe rows to Dr + 3 at offset 1 (NaN padding: a stray read shows)
  const cStride = g.rank + (strided ? 5 : g.rope);
  const peStride = strided ? g.rope + 3 : cStride;
  const peOffset = strided ? 1 : g.rank;
  const cBuf = new Float32Array(S * cStride).fill(NaN);
  const peBuf = strided ? new Float32Array(S * peStride).fill(NaN) : cBuf;
  for (let j = 0; j < S; j++) {
    cBuf.set(c.cHat.subarray(j * g.rank, (j + 1) * g.rank), j * cStride);
    peBuf.set(c.kPe.subarray(j * g.rope, (j + 1) * g.rope), j * peStride + peOffset);
  }
  const cb = upload(gpu, cBuf);
  const cache: LatentCacheView = { c: cb, cStride, pe: strided ? upload(gpu, peBuf) : cb, peStride, peOffset };
  const kvB: KvBWeight = c.scales ? { codes: upload(gpu, c.codes), scales: upload(gpu, c.scales) } : { format: 'bf16', codes: upload(gpu, c.codes) };
  const out = zeros(gpu, g.heads * g.v * 4);
  const scratch = createMlaScratch(gpu, g, 1, Math.max(1, splits));
  const args = { q: upload(gpu, c.q), kvB, cache, out, tokens: 1, startPos: c.p0, geometry: g, scale: c.scale };
  await runPass(h, (pass) => mlaAttend(h.k, pass, h.arena, { ...args, scratch, splits, fused, tuning: { variant: 'rows' } }));
  return readF32(gpu, out, g.heads * g.v);
}

// Tolerance: f32 GPU vs f64 CPU on the same decoded weights: only summation order and the f32 rounding of the
// ≤ 576-long dots, exp and the rescaling differ (~1e-6 relative); 2e-5 of max|ref| leaves 10x margin (as
// mla-attention.gpu.test.ts). Fused vs unfused: the same sums in the same order but for the compiler's freedom
// to contract a·b + c into an fma in one kernel and not the other: 1e-6 of max|ref|.
const TOL = 2e-5;
const SAME = 1e-6;

describe(`mla_attend_rows (${testAdapter()})`, () => {
  afterAll(() => printMeasured(`mla_attend_rows (${testAdapter()}), measured errors:`));

  it('debug case: small geometry at p0 = 3, fused vs CPU reference and vs the unfused kernels', async () => {
    const c = makeCase(3, SMALL, 3, 'fp8');
    const fused = await run(c, true, 1);
    checkClose(fused, reference(c), TOL, 'debug: fused vs reference');
    checkClose(fused, await run(c, false, 1), SAME, 'debug: fused vs unfused');
  });

  for (const format of ['fp8', 'bf16'] as const) {
    it(`${format}: ragged geometries, p0 0 .. 300, fused and strided cache views`, async () => {
      for (const [g, p0, seed, strided] of [
        [SMALL, 0, 11, false], [RAGGED, 300, 12, true], [ODD, 130, 13, false], [ODD, 1, 14, true], [K2, 37, 15, false],
      ] as const) {
        const c = makeCase(seed, g, p0, format);
        const label = `${format} ${JSON.stringify(g)} p0=${p0}${strided ? ' strided' : ''}`;
        const fused = await run(c, true, 1, strided);
        checkClose(fused, reference(c), TOL, `${label}: fused vs reference`);
        checkClose(fused, await run(c, false, 1, strided), SAME, `${label}: fused vs unfused`);
      }
    });
  }

  it('a key split keeps the unfused kernels (mla_decode_reduce), fused requested or not', async () => {
    const c = makeCase(21, RAGGED, 600, 'fp8');
    const want = reference(c);
    checkClose(await run(c, true, 3), want, TOL, 'fused requested, 3 splits');
    checkClose(await run(c, false, 3), want, TOL, 'unfused, 3 splits');
  });

  it('launcher checks: geometry past the private arrays, short buffers', async () => {
    const gpu = await testGpu();
    const h = harness(gpu);
    const big = zeros(gpu, 1 << 20);
    const view: LatentCacheView = { c: big, cStride: 640, pe: big, peStride: 640, peOffset: 512 };
    const args = { q: big, kvB: { codes: big, scales: big }, cache: view, out: big, tokens: 1, startPos: 0, scale: 1 };
    const pass = gpu.device.createCommandEncoder().beginComputePass();
    expect(() => mlaAttendRows(h.k, pass, h.arena, { ...args, geometry: { ...K2, rank: 520 } })).toThrow(/exceed/);
    expect(() => mlaAttendRows(h.k, pass, h.arena, { ...args, out: zeros(gpu, 16), geometry: K2 })).toThrow(/out/);
  });
});
