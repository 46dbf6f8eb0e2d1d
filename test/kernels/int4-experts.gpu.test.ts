/**
 * The INT4 instances of the expert kernel families (moe_gateup_id_int4, moe_down_id_int4, their _wide_int4 twins,
 * moe_gateup_grouped_int4, moe_down_grouped_int4), run through the same launchers as FP8 (selected by the stacks'
 * `format: 'int4'`), against the CPU SwiGLU of model/reference.ts on the same weights dequantised by
 * format/int4.ts ((u - 8) · scale, exact). Seeded random ragged shapes (rows of a length that is not a multiple
 * of 32, nor of 8: padded words and nibbles), shards, a hot expert over several grouped blocks, the shared expert
 * in INT4 or in BF16 (Kimi K2-Thinking / K2.5 store routed experts INT4 and the shared expert BF16: a second
 * launch group), and every one of the 16 codes in every nibble position, in full and ragged tail words.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { bf16ArrayToF32, f32ArrayToBf16 } from '../../src/format/fp8.js';
import { dequantizeInt4 } from '../../src/format/int4.js';
import type { FfnWeights, Matrix } from '../../src/model/cpu-weights.js';
import { expertShards, int4StackLayout, packBf16Stack, packInt4Stack, type Bf16Matrix, type Int4Matrix } from '../../src/gpu/ops/fp8-layout.js';
import {
  createMoeScratch, moeExpertsDecode, moeExpertsPrefill,
  type MoeDecodeVariant, type MoeGeometry, type MoePrefillVariant, type MoeWeightBuffers, type MoeWideTuning,
} from '../../src/gpu/ops/moe.js';
import type { GpuContext } from '../../src/gpu/device.js';
import type { WeightBuffers } from '../../src/gpu/ops/binding.js';
import { ShapeError } from '../../src/errors.js';
import { expectClose, randn, rng, testAdapter, testGpu } from '../helpers/gpu.js';
import { checkClose, cpuExperts, harness, printMeasured, randomRoutes, readF32, runPass, upload, zeros } from './moe-mla-harness.js';

/** A BF16 scale value ~ `size` · U(0.5, 1.5) (the stored scales are BF16; the GPU gets them widened to f32). */
function bf16Scale(rand: () => number, size: number): number {
  return bf16ArrayToF32(f32ArrayToBf16(Float32Array.of(size * (0.5 + rand()))))[0]!;
}

/** A random INT4 weight: uniform codes 0..15 (padding nibbles past `cols` are 0, as a writer pads), BF16 scales. */
function randomInt4(rand: () => number, rows: number, cols: number, size = 0.01): { m: Int4Matrix; w: Float32Array } {
  const wpr = Math.ceil(cols / 8);
  const data = new Uint32Array(rows * wpr);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) data[r * wpr + (j >> 3)]! |= Math.floor(rand() * 16) << ((j & 7) * 4);
  }
  const scale = Float32Array.from({ length: rows * Math.ceil(cols / 32) }, () => bf16Scale(rand, size));
  return { m: { rows, cols, data, scale }, w: dequantizeInt4(data, scale, rows, cols) };
}

function randomBf16(rand: () => number, rows: number, cols: number, std: number): { m: Bf16Matrix; w: Float32Array } {
  const data = f32ArrayToBf16(randn(rand, rows * cols, std));
  return { m: { rows, cols, data }, w: bf16ArrayToF32(data) };
}

type Q = { gate: Int4Matrix | Bf16Matrix; up: Int4Matrix | Bf16Matrix; down: Int4Matrix | Bf16Matrix };
interface Expert {
  q: Q;
  w: FfnWeights; // exact f32 values
}

const mat = (rows: number, cols: number, data: Float32Array): Matrix => ({ rows, cols, data });

function int4Expert(rand: () => number, D: number, F: number): Expert {
  const g = randomInt4(rand, F, D);
  const u = randomInt4(rand, F, D);
  const d = randomInt4(rand, D, F);
  return { q: { gate: g.m, up: u.m, down: d.m }, w: { gate: mat(F, D, g.w), up: mat(F, D, u.w), down: mat(D, F, d.w) } };
}

function bf16Expert(rand: () => number, D: number, F: number): Expert {
  const g = randomBf16(rand, F, D, 0.05);
  const u = randomBf16(rand, F, D, 0.05);
  const d = randomBf16(rand, D, F, 0.05);
  return { q: { gate: g.m, up: u.m, down: d.m }, w: { gate: mat(F, D, g.w), up: mat(F, D, u.w), down: mat(D, F, d.w) } };
}

interface Layer {
  g: MoeGeometry;
  experts: Expert[];
  shared: Expert | null;
  /** the shared expert's format (Kimi: BF16 beside INT4 routed experts) */
  sharedFormat: 'int4' | 'bf16';
}

function layer(seed: number, g: MoeGeometry, sharedFormat: 'int4' | 'bf16' = 'int4'): Layer {
  const rand = rng(seed);
  return {
    g,
    sharedFormat,
    experts: Array.from({ length: g.experts }, () => int4Expert(rand, g.hidden, g.inter)),
    shared: g.sharedInter > 0 ? (sharedFormat === 'int4' ? int4Expert : bf16Expert)(rand, g.hidden, g.sharedInter) : null,
  };
}

function stack(gpu: GpuContext, mats: Array<Int4Matrix | Bf16Matrix>): WeightBuffers {
  if ('scale' in mats[0]!) {
    const s = packInt4Stack(mats as Int4Matrix[]);
    return { format: 'int4', codes: upload(gpu, s.codes), scales: upload(gpu, s.scales) };
  }
  return { format: 'bf16', codes: upload(gpu, packBf16Stack(mats as Bf16Matrix[]).codes) };
}

/** The layer's stacks, in shards of at most `cap` experts (0: as the binding limit allows). */
function uploadLayer(gpu: GpuContext, l: Layer, cap = 0): MoeWeightBuffers {
  const { hidden: D, inter: F, experts: E } = l.g;
  const perExpert = int4StackLayout(2, F, D).codeBytes;
  const shards = expertShards(E, perExpert, cap ? cap * perExpert : gpu.limits.maxStorageBufferBindingSize);
  return {
    shards: shards.map((s) => {
      const ex = l.experts.slice(s.first, s.first + s.count);
      return { ...s, gateUp: stack(gpu, ex.flatMap((e) => [e.q.gate, e.q.up])), down: stack(gpu, ex.map((e) => e.q.down)) };
    }),
    shared: l.shared ? { gateUp: stack(gpu, [l.shared.q.gate, l.shared.q.up]), down: stack(gpu, [l.shared.q.down]) } : null,
  };
}

async function gpuExperts(
  l: Layer, x: Float32Array, ids: Uint32Array, wts: Float32Array, residual: Float32Array,
  path: 'decode' | 'prefill', cap = 0, variant?: MoeDecodeVariant, wide?: Partial<MoeWideTuning>, prefill?: MoePrefillVariant,
): Promise<Float32Array> {
  const gpu = await testGpu();
  const h = harness(gpu);
  const T = x.length / l.g.hidden;
  const scratch = createMoeScratch(gpu, l.g, T, path === 'prefill');
  const out = upload(gpu, residual);
  const args = {
    x: upload(gpu, x), ids: upload(gpu, ids), weights: upload(gpu, wts), out, accumulate: true,
    tokens: T, geometry: l.g, w: uploadLayer(gpu, l, cap), scratch, variant, wide, prefill,
  };
  await runPass(h, (pass) => (path === 'decode' ? moeExpertsDecode : moeExpertsPrefill)(h.k, pass, h.arena, args));
  return readF32(gpu, out, T * l.g.hidden);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

// Tolerance: f32 GPU vs f64 CPU on identical weights ((u - 8) · scale is exact in f32); only f32 rounding and the
// summation order of ≤ 300-long dots and silu's exp differ (~1e-6 relative, as the FP8 expert tests):
// 2e-5 · max(1, max|ref|) leaves an order of magnitude.
const TOL = 2e-5;

/** Decode variants: thread-per-row, wide at every rows-per-thread, 'subgroup' (INT4 has none: runs wide), by expert. */
const DECODE: Array<[MoeDecodeVariant, Partial<MoeWideTuning> | undefined]> = [
  ['f32', undefined],
  ['wide', { rptGateUp: 1, rptDown: 1 }],
  ['wide', { rptGateUp: 2, rptDown: 4, wg: 32 }],
  ['wide', { rptGateUp: 4, rptDown: 2 }],
  ['subgroup', undefined],
  ['union', undefined],
];

const TINY: MoeGeometry = { hidden: 64, experts: 8, topK: 2, inter: 32, sharedInter: 32 };
const RAGGED: MoeGeometry = { hidden: 200, experts: 16, topK: 4, inter: 72, sharedInter: 144 }; // D, F not multiples of 32
const ODD: MoeGeometry = { hidden: 150, experts: 6, topK: 3, inter: 50, sharedInter: 0 }; // not multiples of 8: padded nibbles
const WIDE: MoeGeometry = { hidden: 300, experts: 5, topK: 2, inter: 260, sharedInter: 260 }; // rows not a multiple of RPT

describe(`INT4 MoE experts (${testAdapter()})`, () => {
  afterAll(() => printMeasured(`INT4 experts (${testAdapter()}), measured errors:`));

  it('debug case: tiny, one token, decode path', async () => {
    const l = layer(1, TINY);
    const rand = rng(2);
    const x = randn(rand, TINY.hidden);
    const residual = randn(rand, TINY.hidden);
    const ids = Uint32Array.from([5, 2]);
    const wts = Float32Array.from([0.7, 0.4]);
    const want = cpuExperts(l, x, ids, wts, residual);
    checkClose(await gpuExperts(l, x, ids, wts, residual, 'decode', 0, 'f32'), want, TOL, 'int4 tiny decode f32');
    checkClose(await gpuExperts(l, x, ids, wts, residual, 'decode', 0, 'wide'), want, TOL, 'int4 tiny decode wide');
  });

  it('decode path (by id), every variant: seeded ragged shapes, shards, shared expert INT4 or BF16', async () => {
    const cases: Array<[MoeGeometry, number, number, number, 'int4' | 'bf16']> = [
      [RAGGED, 3, 10, 0, 'int4'], [ODD, 2, 11, 2, 'int4'], [WIDE, 1, 12, 0, 'bf16'], [RAGGED, 2, 13, 3, 'bf16'],
    ];
    for (const [ci, [g, T, seed, cap, shf]] of cases.entries()) {
      const l = layer(seed, g, shf);
      const rand = rng(seed + 100);
      const x = randn(rand, T * g.hidden);
      const residual = randn(rand, T * g.hidden);
      const { ids, wts } = randomRoutes(rand, T, g.experts, g.topK);
      const want = cpuExperts(l, x, ids, wts, residual);
      // thread-per-row and one of the other variants per case (the 2-core test machine is slow; the exactness test
      // below runs every variant)
      for (const [variant, wide] of [DECODE[0]!, DECODE[1 + (ci % (DECODE.length - 1))]!]) {
        const got = await gpuExperts(l, x, ids, wts, residual, 'decode', cap, variant, wide);
        checkClose(got, want, TOL, `int4 decode ${variant} ${JSON.stringify(wide ?? {})} ${JSON.stringify(g)} T=${T} cap=${cap} shared ${shf}`);
      }
    }
  }, 900_000);

  it('prefill path (grouped by expert, grouped and tiled kernels): a hot expert spans several blocks, shards, shared INT4 or BF16; equals the decode path', async () => {
    const cases: Array<[MoeGeometry, number, number, number, number, 'int4' | 'bf16']> = [
      [RAGGED, 37, 20, 0, 3, 'bf16'], [ODD, 23, 21, 2, 1, 'int4'], [WIDE, 9, 22, 0, -1, 'int4'], [TINY, 50, 23, 3, 7, 'bf16'],
    ];
    for (const [g, T, seed, cap, hot, shf] of cases) {
      const l = layer(seed, g, shf);
      const rand = rng(seed + 100);
      const x = randn(rand, T * g.hidden);
      const residual = randn(rand, T * g.hidden);
      const { ids, wts } = randomRoutes(rand, T, g.experts, g.topK, hot);
      const want = cpuExperts(l, x, ids, wts, residual);
      const grouped = await gpuExperts(l, x, ids, wts, residual, 'prefill', cap, undefined, undefined, 'grouped');
      checkClose(grouped, want, TOL, `int4 prefill grouped ${JSON.stringify(g)} T=${T} cap=${cap} shared ${shf}`);
      const got = await gpuExperts(l, x, ids, wts, residual, 'prefill', cap, undefined, undefined, 'tiled');
      checkClose(got, want, TOL, `int4 prefill tiled ${JSON.stringify(g)} T=${T} cap=${cap} shared ${shf}`);
      if (T <= 9) {
        const dec = await gpuExperts(l, x, ids, wts, residual, 'decode', cap);
        expectClose(got, dec, { atol: 1e-5 * Math.max(1, maxAbs(want)), label: 'int4 prefill vs decode path' });
      }
    }
  }, 900_000);

  it('all 16 codes in every nibble position decode exactly, full and ragged tail words, every variant and both grouped-path kernels', async () => {
    // N = 136 = 4·32 + 8: the last 32-column group (and wide chunk) of a row holds one word. Tested columns: word 1
    // (columns 8..15, a full chunk) and word 16 (128..135, the ragged tail), every nibble position of each.
    // Expert 0: gate 1.0 at every tested column (u = 9, scale 1), up row f = code f % 16 at every tested column with
    //   scale s(f) = 2^-(⌊f/16⌋ mod 3), down = identity: token t one-hot at a tested column c_t gives
    //   out[d] = silu(1) · (d % 16 - 8) · s(d), read through nibble position c_t mod 8.
    // Expert 1: gate and up 1.0 at every tested column (h = silu(1) everywhere), down row d = code d % 16 with scale
    //   s(d) at one tested column chosen by d (all 8 positions × 16 codes over d < 128): the same out[d].
    // Untested nibbles of gate / up are random (x is 0 there: a mis-ordered nibble would show at c); down's are 8
    // (value 0). out[d] / out[9] (code 9, scale 1: value 1) must equal (d % 16 - 8) · s(d) up to one f32 rounding.
    const N = 136;
    const cols = [...Array.from({ length: 8 }, (_, i) => 8 + i), ...Array.from({ length: 8 }, (_, i) => 128 + i)];
    const s = (r: number): number => 2 ** -(Math.floor(r / 16) % 3);
    const rand = rng(60);
    const build = (at: (r: number, c: number) => number | null, scaleOf: (r: number) => number, fill: 'random' | 'zero'): Int4Matrix => {
      const wpr = Math.ceil(N / 8);
      const data = new Uint32Array(N * wpr);
      for (let r = 0; r < N; r++) {
        for (let c = 0; c < N; c++) {
          const u = at(r, c) ?? (fill === 'random' ? Math.floor(rand() * 16) : 8);
          data[r * wpr + (c >> 3)]! |= u << ((c & 7) * 4);
        }
      }
      return { rows: N, cols: N, data, scale: Float32Array.from({ length: N * Math.ceil(N / 32) }, (_, i) => scaleOf(Math.floor(i / Math.ceil(N / 32)))) };
    };
    const tested = new Set(cols);
    const one = (r: number, c: number): number | null => (tested.has(c) ? 9 : null);
    const ex = (gate: Int4Matrix, up: Int4Matrix, down: Int4Matrix): Expert => {
      const dq = (m: Int4Matrix): Matrix => mat(N, N, dequantizeInt4(m.data, m.scale, N, N));
      return { q: { gate, up, down }, w: { gate: dq(gate), up: dq(up), down: dq(down) } };
    };
    const downCol = (d: number): number => cols[(Math.floor(d / 16) % 8) + (d % 2) * 8]!;
    const l: Layer = {
      g: { hidden: N, experts: 2, topK: 1, inter: N, sharedInter: 0 },
      sharedFormat: 'int4',
      shared: null,
      experts: [
        ex(build(one, () => 1, 'random'), build((r, c) => (tested.has(c) ? r % 16 : null), s, 'random'), build((r, c) => (r === c ? 9 : null), () => 1, 'zero')),
        ex(build(one, () => 1, 'random'), build(one, () => 1, 'random'), build((r, c) => (c === downCol(r) ? r % 16 : null), s, 'zero')),
      ],
    };
    // 32 tokens: token t uses expert ⌊t / 16⌋, one-hot at cols[t % 16]
    const T = 32;
    const x = new Float32Array(T * N);
    for (let t = 0; t < T; t++) x[t * N + cols[t % 16]!] = 1;
    const ids = Uint32Array.from({ length: T }, (_, t) => Math.floor(t / 16));
    const wts = new Float32Array(T).fill(1);
    const zero = new Float32Array(T * N);
    const runs: Array<[string, () => Promise<Float32Array>]> = [
      ...DECODE.map(([variant, wide]): [string, () => Promise<Float32Array>] => [
        `decode ${variant} ${JSON.stringify(wide ?? {})}`, () => gpuExperts(l, x, ids, wts, zero, 'decode', 1, variant, wide),
      ]),
      ['prefill (grouped)', () => gpuExperts(l, x, ids, wts, zero, 'prefill', 1, undefined, undefined, 'grouped')],
      ['prefill (tiled)', () => gpuExperts(l, x, ids, wts, zero, 'prefill', 1, undefined, undefined, 'tiled')],
    ];
    for (const [label, run] of runs) {
      const got = await run();
      for (let t = 0; t < T; t++) {
        const unit = got[t * N + 9]!;
        expect(unit, `${label} token ${t}: silu(1)`).toBeCloseTo(1 / (1 + Math.exp(-1)), 5);
        for (let d = 0; d < N; d++) {
          const want = ((d % 16) - 8) * s(d);
          const ratio = got[t * N + d]! / unit;
          if (Math.abs(ratio - want) > 2 ** -22 * Math.abs(want)) {
            expect.fail(`${label} token ${t} (expert ${ids[t]}, column ${cols[t % 16]}): row ${d} code ${d % 16} gave ${ratio}, want ${want}`);
          }
        }
      }
    }
  });

  it('rejects INT4 stacks that are too small (scales sized by rows and 32-column groups) and mixed routed formats', async () => {
    const gpu = await testGpu();
    const h = harness(gpu);
    const l = layer(50, TINY);
    const w = uploadLayer(gpu, l, 3);
    const scratch = createMoeScratch(gpu, TINY, 2, false);
    const b = zeros(gpu, 1 << 16);
    const base = { x: b, ids: b, weights: b, out: b, accumulate: false, tokens: 2, geometry: TINY, w, scratch };
    const enc = gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    // FP8-sized scales ([⌈F/128⌉, ⌈D/128⌉] per matrix) are too few for INT4's [F, ⌈D/32⌉]
    const fewScales = { ...w, shards: w.shards.map((s) => ({ ...s, gateUp: { format: 'int4' as const, codes: b, scales: zeros(gpu, 2 * 3 * 4 * 4) } })) };
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, w: fewScales })).toThrow(/gateUp\.scales/);
    const mixed = { ...w, shards: w.shards.map((s, i) => (i === 1 ? { ...s, down: { codes: b, scales: b } } : s)) };
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, w: mixed })).toThrow(ShapeError);
    pass.end();
  });
});
