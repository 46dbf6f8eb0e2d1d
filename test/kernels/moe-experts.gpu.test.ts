/**
 * The experts on the GPU (decode: moe_gateup_id + moe_down_id; prefill: moe_align + moe_gateup_grouped +
 * moe_down_grouped + moe_combine) against the CPU SwiGLU of model/reference.ts on the same dequantised FP8
 * weights; ids vary across tokens; ragged D / F; expert stacks split across buffers (shards); the shared expert;
 * and router → experts end to end against reference.ts moe().
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ffn, moe as cpuMoe } from '../../src/model/reference.js';
import type { FfnWeights, Matrix } from '../../src/model/cpu-weights.js';
import { expertShards, fp8StackLayout, packFp8Stack, type Fp8Matrix } from '../../src/gpu/ops/fp8-layout.js';
import { decodeE4M3, dequantizeFp8Block } from '../../src/format/fp8.js';
import {
  createMoeScratch, moeExpertsDecode, moeExpertsPrefill, moeRouter, slotsPerToken, type MoePrefillVariant, type MoeTiledTuning,
  type MoeDecodeVariant, type MoeGeometry, type MoeWeightBuffers, type MoeWideTuning,
} from '../../src/gpu/ops/moe.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { expectClose, randInt, randn, rng, testAdapter, testGpu } from '../helpers/gpu.js';
import { checkClose, harness, printMeasured, randomFp8, readF32, runPass, toF64, upload, zeros, cpuExperts, randomRoutes } from './moe-mla-harness.js';

interface Expert {
  q: { gate: Fp8Matrix; up: Fp8Matrix; down: Fp8Matrix };
  w: FfnWeights; // dequantised
}

function expert(rand: () => number, D: number, F: number): Expert {
  const g = randomFp8(rand, F, D, 0.06);
  const u = randomFp8(rand, F, D, 0.06);
  const d = randomFp8(rand, D, F, 0.06);
  const mat = (rows: number, cols: number, data: Float32Array): Matrix => ({ rows, cols, data });
  return { q: { gate: g.m, up: u.m, down: d.m }, w: { gate: mat(F, D, g.w), up: mat(F, D, u.w), down: mat(D, F, d.w) } };
}

interface Layer {
  g: MoeGeometry;
  experts: Expert[];
  shared: Expert | null;
}

function layer(seed: number, g: MoeGeometry): Layer {
  const rand = rng(seed);
  return {
    g,
    experts: Array.from({ length: g.experts }, () => expert(rand, g.hidden, g.inter)),
    shared: g.sharedInter > 0 ? expert(rand, g.hidden, g.sharedInter) : null,
  };
}

/** Uploads the layer's experts in `shardCount`-expert shards (or as expertShards decides from a byte cap). */
function uploadLayer(gpu: GpuContext, l: Layer, maxBindingBytes?: number): MoeWeightBuffers {
  const { hidden: D, inter: F, experts: E } = l.g;
  const perExpert = 2 * fp8StackLayout(1, F, D).codeBytes + 0; // gate + up codes of one expert
  const shards = expertShards(E, perExpert, maxBindingBytes ?? gpu.limits.maxStorageBufferBindingSize);
  return {
    shards: shards.map((s) => {
      const ex = l.experts.slice(s.first, s.first + s.count);
      const gu = packFp8Stack(ex.flatMap((e) => [e.q.gate, e.q.up]));
      const dn = packFp8Stack(ex.map((e) => e.q.down));
      return {
        ...s,
        gateUp: { codes: upload(gpu, gu.codes), scales: upload(gpu, gu.scales) },
        down: { codes: upload(gpu, dn.codes), scales: upload(gpu, dn.scales) },
      };
    }),
    shared: l.shared
      ? (() => {
          const gu = packFp8Stack([l.shared.q.gate, l.shared.q.up]);
          const dn = packFp8Stack([l.shared.q.down]);
          return {
            gateUp: { codes: upload(gpu, gu.codes), scales: upload(gpu, gu.scales) },
            down: { codes: upload(gpu, dn.codes), scales: upload(gpu, dn.scales) },
          };
        })()
      : null,
  };
}

async function gpuExperts(
  l: Layer, x: Float32Array, ids: Uint32Array, wts: Float32Array, residual: Float32Array,
  path: 'decode' | 'prefill', maxBindingBytes?: number, variant?: MoeDecodeVariant, wide?: Partial<MoeWideTuning>,
  prefill?: { variant: MoePrefillVariant; tiled?: Partial<MoeTiledTuning> },
): Promise<Float32Array> {
  const gpu = await testGpu();
  const h = harness(gpu);
  const T = x.length / l.g.hidden;
  const w = uploadLayer(gpu, l, maxBindingBytes);
  const scratch = createMoeScratch(gpu, l.g, T, path === 'prefill');
  const out = upload(gpu, residual);
  const args = {
    x: upload(gpu, x), ids: upload(gpu, ids), weights: upload(gpu, wts), out, accumulate: true,
    tokens: T, geometry: l.g, w, scratch, variant, wide, prefill: prefill?.variant, tiled: prefill?.tiled,
  };
  await runPass(h, (pass) => (path === 'decode' ? moeExpertsDecode : moeExpertsPrefill)(h.k, pass, h.arena, args));
  return readF32(gpu, out, T * l.g.hidden);
}

/** The by-expert decode path run in token waves (tokenRange per wave), as expert offloading does. */
async function gpuExpertsWaves(
  l: Layer, x: Float32Array, ids: Uint32Array, wts: Float32Array, residual: Float32Array, maxBindingBytes: number | undefined, waves: Array<[number, number]>,
): Promise<Float32Array> {
  const gpu = await testGpu();
  const h = harness(gpu);
  const T = x.length / l.g.hidden;
  const args = {
    x: upload(gpu, x), ids: upload(gpu, ids), weights: upload(gpu, wts), out: upload(gpu, residual), accumulate: true,
    tokens: T, geometry: l.g, w: uploadLayer(gpu, l, maxBindingBytes), scratch: createMoeScratch(gpu, l.g, T, false), variant: 'union' as const,
  };
  await runPass(h, (pass) => { for (const [t0, count] of waves) moeExpertsDecode(h.k, pass, h.arena, { ...args, tokenRange: { t0, count } }); });
  return readF32(gpu, args.out, T * l.g.hidden);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

// Tolerance: f32 GPU vs f64 CPU on identical dequantised weights; D, F ≤ 300-long f32 dots, silu via exp:
// ~1e-6 relative; 2e-5 · max|ref| leaves an order of magnitude.
const TOL = 2e-5;

/** The decode kernels this adapter runs: f32, wide and by expert always, the subgroup variants where the feature exists. */
async function decodeVariants(): Promise<MoeDecodeVariant[]> {
  const gpu = await testGpu();
  return gpu.features.has('subgroups') ? ['f32', 'wide', 'union', 'subgroup'] : ['f32', 'wide', 'union'];
}

/** moe_*_id_wide settings tested beside the default: every rows-per-thread, both decoders. */
const WIDE_SWEEP: Array<Partial<MoeWideTuning>> = [
  { rptGateUp: 1, rptDown: 1, f16bits: true },
  { rptGateUp: 2, rptDown: 2, f16bits: true, wg: 32 },
  { rptGateUp: 4, rptDown: 4, f16bits: true },
  { rptGateUp: 4, rptDown: 1, f16bits: false },
  { rptGateUp: 1, rptDown: 4, f16bits: false, wg: 16 },
];

/** moe_*_tiled settings tested: every pair-quad count and rows per invocation, small and default workgroups. */
const TILED_SWEEP: Array<Partial<MoeTiledTuning>> = [{ tq: 1, rt: 4, wg: 16 }, {}, { tq: 2, rt: 8, wg: 32 }];

const TINY: MoeGeometry = { hidden: 64, experts: 8, topK: 2, inter: 32, sharedInter: 32 };
const RAGGED: MoeGeometry = { hidden: 200, experts: 16, topK: 4, inter: 72, sharedInter: 144 }; // golden `ragged`
const ODD: MoeGeometry = { hidden: 150, experts: 6, topK: 3, inter: 50, sharedInter: 0 }; // rows not u32-aligned, no shared
const WIDE: MoeGeometry = { hidden: 300, experts: 5, topK: 2, inter: 260, sharedInter: 260 }; // F crosses two 128-row blocks

describe(`moe experts (${testAdapter()})`, () => {
  afterAll(() => printMeasured(`moe experts (${testAdapter()}), measured errors:`));

  it('debug case: tiny, one token, decode path', async () => {
    const l = layer(1, TINY);
    const rand = rng(2);
    const x = randn(rand, TINY.hidden);
    const residual = randn(rand, TINY.hidden);
    const ids = Uint32Array.from([5, 2]);
    const wts = Float32Array.from([0.7, 0.4]);
    const want = cpuExperts(l, x, ids, wts, residual);
    const got = await gpuExperts(l, x, ids, wts, residual, 'decode');
    checkClose(got, want, TOL, 'tiny decode');
  });

  it('decode path (small T), ids vary across tokens, ragged shapes, with and without shards', async () => {
    for (const [g, T, seed, cap] of [[RAGGED, 3, 10, 0], [ODD, 2, 11, 0], [WIDE, 1, 12, 0], [RAGGED, 2, 13, 3]] as const) {
      const l = layer(seed, g);
      const rand = rng(seed + 100);
      const x = randn(rand, T * g.hidden);
      const residual = randn(rand, T * g.hidden);
      const { ids, wts } = randomRoutes(rand, T, g.experts, g.topK);
      const want = cpuExperts(l, x, ids, wts, residual);
      // cap > 0: binding cap of `cap` experts' gate_up codes ⇒ ⌈E / cap⌉ shards, one dispatch pair each
      const maxBinding = cap ? cap * 2 * fp8StackLayout(1, g.inter, g.hidden).codeBytes : undefined;
      for (const variant of await decodeVariants()) {
        const got = await gpuExperts(l, x, ids, wts, residual, 'decode', maxBinding, variant);
        checkClose(got, want, TOL, `decode ${variant} ${JSON.stringify(g)} T=${T} cap=${cap}`);
      }
    }
  });

  // rows not a multiple of RPT (F 50, 130, 260), D with a ragged last vec4 word right after a full 128-column
  // block (136: the tail is the only word of block 1), Fmax > F (masked h), shards of 1-3 experts
  const EDGE: MoeGeometry = { hidden: 136, experts: 5, topK: 3, inter: 130, sharedInter: 70 };
  /** The wide kernels' cases (three tests over them: each its own time budget on a loaded machine). */
  function wideCases() {
    return ([[RAGGED, 3, 30, 0], [ODD, 2, 31, 2], [WIDE, 1, 32, 0], [EDGE, 2, 33, 1], [EDGE, 1, 34, 3]] as const).map(([g, T, seed, cap]) => {
      const l = layer(seed, g);
      const rand = rng(seed + 100);
      const x = randn(rand, T * g.hidden);
      const residual = randn(rand, T * g.hidden);
      const { ids, wts } = randomRoutes(rand, T, g.experts, g.topK);
      const maxBinding = cap ? cap * 2 * fp8StackLayout(1, g.inter, g.hidden).codeBytes : undefined;
      const run = (variant: MoeDecodeVariant, wide?: Partial<MoeWideTuning>) => gpuExperts(l, x, ids, wts, residual, 'decode', maxBinding, variant, wide);
      return { l, x, ids, wts, residual, run, name: `${JSON.stringify(g)} T=${T} cap=${cap}` };
    });
  }

  it('wide kernels (every rows-per-thread, both decoders, workgroup sizes): ragged shapes, shards, shared expert', async () => {
    for (const c of wideCases()) {
      const want = cpuExperts(c.l, c.x, c.ids, c.wts, c.residual);
      for (const wide of WIDE_SWEEP) checkClose(await c.run('wide', wide), want, TOL, `decode wide ${JSON.stringify(wide)} ${c.name}`);
    }
  });

  it('the by-expert kernels with the wide kernels\' constants give their bits (batched rows equal solo decode steps)', async () => {
    // each setting of the sweep on one of the cases (the by-expert pipelines compile slowly on lavapipe: 25 pairs
    // took 150 s with a cold shader cache); the engine's constants on every shape: the 'by expert (union)' test
    for (const [i, c] of wideCases().entries()) {
      for (const wide of [WIDE_SWEEP[i % WIDE_SWEEP.length]!]) {
        const byId = await c.run('wide', wide);
        const byExpert = await c.run('union', wide);
        expect(new Uint32Array(byExpert.buffer), `union = wide ${JSON.stringify(wide)} ${c.name}`).toEqual(new Uint32Array(byId.buffer));
      }
    }
  }, 600_000);

  it('activations staged in workgroup memory (the default), one slot row at a time, or read from the storage buffer: the same bits', async () => {
    for (const c of wideCases()) {
      const staged = await c.run('wide');
      for (const xs of [false, 'slot'] as const) {
        const other = await c.run('wide', { xs });
        expect(new Uint32Array(other.buffer), `xs ${xs} = staged ${c.name}`).toEqual(new Uint32Array(staged.buffer));
      }
    }
  });

  it('by expert (union): hot experts in groups of 4 and a remainder, shards, token waves; a token alone, and the by-id wide kernels, give its bits', async () => {
    // T = 9 tokens; ids drawn from few experts so that one expert serves 5-9 tokens (groups of 4, 4, 1), others 1-3
    for (const [g, seed, cap] of [[RAGGED, 40, 0], [ODD, 41, 2], [WIDE, 42, 1]] as const) {
      const T = 9;
      const l = layer(seed, g);
      const rand = rng(seed + 100);
      const x = randn(rand, T * g.hidden);
      const residual = randn(rand, T * g.hidden);
      const ids = new Uint32Array(T * g.topK);
      const wts = new Float32Array(T * g.topK);
      for (let t = 0; t < T; t++) {
        // slot 0 always expert 1 (hot), the rest distinct from it and each other
        const pick = [1, ...Array.from({ length: g.experts }, (_, e) => e).filter((e) => e !== 1).sort(() => rand() - 0.5)].slice(0, g.topK);
        for (let k = 0; k < g.topK; k++) {
          ids[t * g.topK + k] = pick[k]!;
          wts[t * g.topK + k] = 0.2 + rand();
        }
      }
      const want = cpuExperts(l, x, ids, wts, residual);
      const maxBinding = cap ? cap * 2 * fp8StackLayout(1, g.inter, g.hidden).codeBytes : undefined;
      const got = await gpuExperts(l, x, ids, wts, residual, 'decode', maxBinding, 'union');
      checkClose(got, want, TOL, `union ${JSON.stringify(g)} T=${T} cap=${cap}`);
      // the by-id wide kernels (the one-token decode path, same default constants) give the same bits
      const byId = await gpuExperts(l, x, ids, wts, residual, 'decode', maxBinding, 'wide');
      expect(new Uint32Array(got.buffer)).toEqual(new Uint32Array(byId.buffer));
      // batch invariance: token t run alone (its x, ids, weights, residual) gives bit-identical outputs
      const D = g.hidden;
      for (const t of [0, 4, 8]) {
        const one = await gpuExperts(l, x.slice(t * D, (t + 1) * D), ids.slice(t * g.topK, (t + 1) * g.topK), wts.slice(t * g.topK, (t + 1) * g.topK),
          residual.slice(t * D, (t + 1) * D), 'decode', maxBinding, 'union');
        expect(new Uint32Array(one.buffer)).toEqual(new Uint32Array(got.slice(t * D, (t + 1) * D).buffer));
      }
      // token waves (expert offloading): tokens 0..4 then 5..8 give the same bits as one launch
      const waves = await gpuExpertsWaves(l, x, ids, wts, residual, maxBinding, [[0, 5], [5, 4]]);
      expect(new Uint32Array(waves.buffer)).toEqual(new Uint32Array(got.buffer));
    }
  });

  it('every E4M3 code decodes exactly in every decode variant (up and down rows, one-hot x in a ragged tail, sharded)', async () => {
    // D = F = 264 (ragged last word); x = one-hot at column c = 260 (in the tail word of block 2).
    // Expert 0: gate rows 1.0 at c (g = 1 for every row), up row f = code f at c, down = identity (0x38 = 1.0 at
    //   f = d): out[d] = silu(1) · code(d) · scale(row block of d).
    // Expert 1: gate and up 1.0 at c (h = silu(1) everywhere), down row d = code d at column 0 only:
    //   out[d] = silu(1) · code(d) · scale(row block of d).
    // The code matrices' block scales are 2^-rowBlock, the others' 1. The GPU's silu(1) cancels in out[d] / out[0x38], which must equal
    // code(d) · 2^-rowBlock(d) up to one f32 rounding: any decode error (subnormals 0x01-0x07 / 0x81-0x87
    // included) is orders of magnitude larger. NaN codes 0x7F / 0xFF are left out (0).
    const N = 264;
    const c = 260;
    const code = (i: number): number => (i < 256 && (i & 0x7f) !== 0x7f ? i : 0);
    /** scaled: block scales 2^-rowBlock (the matrices holding the codes), else 1 */
    const mk = (at: (r: number, col: number) => number, scaled = false): Fp8Matrix => {
      const data = new Uint8Array(N * N);
      for (let r = 0; r < N; r++) for (let col = 0; col < N; col++) data[r * N + col] = at(r, col);
      const scale = new Float32Array(9);
      for (let rb = 0; rb < 3; rb++) for (let cb = 0; cb < 3; cb++) scale[rb * 3 + cb] = scaled ? 2 ** -rb : 1;
      return { rows: N, cols: N, data, scale };
    };
    const ONE = 0x38;
    const ex = (gate: Fp8Matrix, up: Fp8Matrix, down: Fp8Matrix): Expert => {
      const dq = (m: Fp8Matrix): Matrix => ({ rows: N, cols: N, data: dequantizeFp8Block(m.data, m.scale, N, N) });
      return { q: { gate, up, down }, w: { gate: dq(gate), up: dq(up), down: dq(down) } };
    };
    const gateOne = mk((_r, col) => (col === c ? ONE : 0));
    const g: MoeGeometry = { hidden: N, experts: 2, topK: 1, inter: N, sharedInter: 0 };
    const l: Layer = {
      g,
      experts: [
        ex(gateOne, mk((r, col) => (col === c ? code(r) : 0), true), mk((r, col) => (r === col ? ONE : 0))),
        ex(gateOne, gateOne, mk((r, col) => (col === 0 ? code(r) : 0), true)),
      ],
      shared: null,
    };
    const x = new Float32Array(N);
    x[c] = 1;
    const zero = new Float32Array(N);
    const cap = 2 * fp8StackLayout(1, N, N).codeBytes; // one expert per shard
    const variants: Array<[MoeDecodeVariant, Partial<MoeWideTuning> | undefined]> = [
      ...(await decodeVariants()).map((v): [MoeDecodeVariant, undefined] => [v, undefined]),
      ...WIDE_SWEEP.map((w): [MoeDecodeVariant, Partial<MoeWideTuning>] => ['wide', w]),
    ];
    // the decode variants, and both kernels of the grouped (prefill) path on the same single token
    const runs: Array<[string, (ids: Uint32Array) => Promise<Float32Array>]> = [
      ...variants.map(([variant, wide]): [string, (ids: Uint32Array) => Promise<Float32Array>] => [
        `${variant} ${JSON.stringify(wide)}`, (ids) => gpuExperts(l, x, ids, Float32Array.from([1]), zero, 'decode', cap, variant, wide),
      ]),
      ...(['grouped', 'tiled'] as const).map((v): [string, (ids: Uint32Array) => Promise<Float32Array>] => [
        `prefill ${v}`, (ids) => gpuExperts(l, x, ids, Float32Array.from([1]), zero, 'prefill', cap, undefined, undefined, { variant: v }),
      ]),
    ];
    for (const e of [0, 1]) {
      for (const [label, run] of runs) {
        const got = await run(Uint32Array.from([e]));
        const unit = got[ONE]!;
        expect(unit, 'silu(1)').toBeCloseTo(1 / (1 + Math.exp(-1)), 5);
        for (let d = 0; d < N; d++) {
          const want = decodeE4M3(code(d)) * 2 ** -Math.floor(d / 128);
          const ratio = got[d]! / unit;
          if (Math.abs(ratio - want) > 2 ** -22 * Math.abs(want)) {
            expect.fail(`expert ${e} ${label}: code 0x${code(d).toString(16)} (row ${d}) gave ${ratio}, want ${want}`);
          }
        }
      }
    }
  });

  it('prefill path: grouped by expert (a hot expert spans several blocks), shards, ragged shapes; grouped and tiled kernels', async () => {
    for (const [g, T, seed, cap, hot] of [[RAGGED, 37, 20, 0, 3], [ODD, 23, 21, 2, 1], [WIDE, 9, 22, 0, -1], [TINY, 50, 23, 3, 7]] as const) {
      const l = layer(seed, g);
      const rand = rng(seed + 100);
      const x = randn(rand, T * g.hidden);
      const residual = randn(rand, T * g.hidden);
      const { ids, wts } = randomRoutes(rand, T, g.experts, g.topK, hot);
      const want = cpuExperts(l, x, ids, wts, residual);
      const maxBinding = cap ? cap * 2 * fp8StackLayout(1, g.inter, g.hidden).codeBytes : undefined;
      // the tiled kernels at every pair-quad count and two workgroup sizes (rows past the width, parts past a block's pairs)
      for (const tiled of TILED_SWEEP) {
        const got = await gpuExperts(l, x, ids, wts, residual, 'prefill', maxBinding, undefined, undefined, { variant: 'tiled', tiled });
        checkClose(got, want, TOL, `tiled ${JSON.stringify(tiled)} ${JSON.stringify(g)} T=${T} cap=${cap}`);
      }
      const got = await gpuExperts(l, x, ids, wts, residual, 'prefill', maxBinding, undefined, undefined, { variant: 'grouped' });
      checkClose(got, want, TOL, `grouped ${JSON.stringify(g)} T=${T} cap=${cap}`);
      // the two paths compute the same sums in a different order
      if (T <= 9) {
        const dec = await gpuExperts(l, x, ids, wts, residual, 'decode', maxBinding);
        expectClose(got, dec, { atol: 1e-5 * Math.max(1, maxAbs(want)), label: 'prefill vs decode path' });
      }
    }
  });

  it('router → experts on the GPU equals reference.ts moe() (ids never leave the GPU)', async () => {
    const g = RAGGED;
    const l = layer(40, g);
    const rand = rng(41);
    const T = 6;
    const x = randn(rand, T * g.hidden);
    const gate: Matrix = { rows: g.experts, cols: g.hidden, data: randn(rand, g.experts * g.hidden, 0.1) };
    const bias = Float32Array.from({ length: g.experts }, () => 0.1 * rand());
    const rc = { n_routed_experts: g.experts, num_experts_per_tok: g.topK, n_group: 4, topk_group: 2, norm_topk_prob: true, routed_scaling_factor: 2.827 };
    const want = cpuMoe(toF64(x), { router: gate, bias, experts: l.experts.map((e) => e.w), shared: l.shared!.w }, rc);
    // logits as bf16_gemv produces them (f32), computed here in f64 and rounded
    const logits = new Float32Array(T * g.experts);
    for (let t = 0; t < T; t++) {
      for (let e = 0; e < g.experts; e++) {
        let acc = 0;
        for (let i = 0; i < g.hidden; i++) acc += x[t * g.hidden + i]! * gate.data[e * g.hidden + i]!;
        logits[t * g.experts + e] = acc;
      }
    }
    const gpu = await testGpu();
    const h = harness(gpu);
    const w = uploadLayer(gpu, l);
    const ids = zeros(gpu, T * g.topK * 4);
    const weights = zeros(gpu, T * g.topK * 4);
    const out = zeros(gpu, T * g.hidden * 4);
    const xb = upload(gpu, x);
    for (const path of ['decode', 'prefill'] as const) {
      const scratch = createMoeScratch(gpu, g, T, path === 'prefill');
      await runPass(h, (pass) => {
        moeRouter(h.k, pass, h.arena, {
          logits: upload(gpu, logits), bias: upload(gpu, bias), ids, weights, tokens: T, experts: g.experts, topK: g.topK,
          groups: rc.n_group, topkGroups: rc.topk_group, normTopkProb: true, scaling: rc.routed_scaling_factor,
        });
        (path === 'decode' ? moeExpertsDecode : moeExpertsPrefill)(h.k, pass, h.arena, {
          x: xb, ids, weights, out, accumulate: false, tokens: T, geometry: g, w, scratch,
        });
      });
      const gotIds = new Uint32Array(await (await import('../../src/gpu/buffers.js')).readBuffer(gpu, ids, 0, T * g.topK * 4));
      expect([...gotIds], 'ids').toEqual([...want.ids]);
      const got = await readF32(gpu, out, T * g.hidden);
      checkClose(got, want.out, TOL, `router + experts (${path})`);
    }
    expect(slotsPerToken(g)).toBe(5);
  });
});

describe(`moe launchers reject bad shapes (${testAdapter()})`, () => {
  it('shards that do not cover the experts, missing shared weights, too many tokens, tiled and subgroup constants out of range', async () => {
    const { ShapeError } = await import('../../src/errors.js');
    const gpu = await testGpu();
    const h = harness(gpu);
    const l = layer(50, TINY);
    const w = uploadLayer(gpu, l);
    const scratch = createMoeScratch(gpu, TINY, 2, false);
    const b = zeros(gpu, 1 << 16);
    const base = { x: b, ids: b, weights: b, out: b, accumulate: false, tokens: 2, geometry: TINY, w, scratch };
    const enc = gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, w: { ...w, shards: w.shards.map((s) => ({ ...s, count: s.count - 1 })) } })).toThrow(ShapeError);
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, w: { ...w, shared: null } })).toThrow(/shared/);
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, tokens: 3 })).toThrow(ShapeError);
    expect(() => moeExpertsPrefill(h.k, pass, h.arena, base)).toThrow(/grouped/);
    // the tiled grouped kernels' constants: pair quads 1, 2 or 4 (a block's 16 pairs in whole parts), 4 or 8 rows
    const grouped = { ...base, scratch: createMoeScratch(gpu, TINY, 2, true) };
    expect(() => moeExpertsPrefill(h.k, pass, h.arena, { ...grouped, prefill: 'tiled', tiled: { tq: 3 } })).toThrow(/tq must be 1, 2 or 4/);
    expect(() => moeExpertsPrefill(h.k, pass, h.arena, { ...grouped, prefill: 'tiled', tiled: { rt: 6 } })).toThrow(/rt must be 4 or 8/);
    expect(() => moeExpertsPrefill(h.k, pass, h.arena, { ...grouped, prefill: 'tiled', tiled: { wg: 0 } })).toThrow(ShapeError);
    // the subgroup kernels' constants: whole subgroups per workgroup (fewer threads than a subgroup would leave
    // moe_down_id_subgroup's row loop without a step), at least one row per workgroup; refused on any adapter
    for (const subgroup of [{ wg: 7 }, { wg: 2048 }, { wg: Number.NaN }]) {
      expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, variant: 'subgroup', subgroup })).toThrow(/subgroup\.wg = .* must be/);
    }
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, variant: 'subgroup', subgroup: { rpwDown: 0 } })).toThrow(/subgroup\.rpwDown = 0/);
    expect(() => moeExpertsDecode(h.k, pass, h.arena, { ...base, variant: 'subgroup', subgroup: { rpwGateUp: 1.5 } })).toThrow(ShapeError);
    pass.end();
  });
});
