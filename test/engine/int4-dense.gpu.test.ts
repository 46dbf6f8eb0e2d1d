/**
 * A checkpoint whose DENSE linears are INT4 (compressed-tensors pack-quantized, group 32: INT4 is accepted wherever
 * it is stored, docs/model.md §13) on the GPU engine: a `small` toy written by the toy writer (model/toy.ts) with
 * Kimi's quantization_config but an ignore list of only `lm_head` and kv_b_proj, so q_a_proj, q_b_proj,
 * kv_a_proj_with_mqa, o_proj, the dense layer's MLP, the shared expert and the routed experts are all INT4
 * (quantised by format/int4.ts quantizeInt4, bit-identical to compressed-tensors), and kv_b_proj BF16. Dense INT4
 * linears run fp8_gemv_wide_int4 (decode, and prefill per token row); compared with the CPU reference on the same
 * file. A kv_b_proj stored INT4 is refused with a FormatError naming it (the attention kernels read kv_b_proj as
 * FP8 or BF16 codes), before anything is allocated.
 *
 * Tolerances: the INT4 weights decode exactly on both sides ((u − 8) · s: a 4-bit integer times a BF16 value; the
 * BF16 weights widen exactly), so the GPU differs from the f64 reference by f32 rounding and summation order only.
 * Per stage (a linear, the attention over the latent cache, the MoE combine) that is at most d · u of the summed
 * terms' magnitude, d the summation depth: fp8_gemv_wide_int4 has d ≤ 9 + ⌈cols/32⌉ ≤ 25 here (derived and checked in
 * test/kernels/int4-dense.gpu.test.ts), u = 2^-24, so ≤ 1.5e-6; ~8 dependent stages per layer x 3 layers + lm_head
 * ≈ 25 stages add up to ≤ 4e-5, and the RMSNorms re-normalise each layer's input, so the terms' magnitude stays
 * within a small factor (≤ 3 allowed) of the outputs': |gpu − ref| ≤ 1e-4 · max(1, max |ref|) per position (20x
 * tighter than the 2e-3 of the golden-fixture and BF16 comparisons; measured ~1e-6 relative, printed), same argmax. Greedy generation: identical tokens to the CPU reference session.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { createSession, type GpuSession } from '../../src/engine/session.js';
import { memoryFiles, openCheckpoint, type Checkpoint } from '../../src/model/checkpoint.js';
import { loadCpuWeights } from '../../src/model/cpu-weights.js';
import { referenceForward } from '../../src/model/reference.js';
import { makeToyCheckpointInMemory, toyLayoutJson, type ToyName } from '../../src/model/toy.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';
import { expectGreedyMatchesCpu, expectLogitsMatchReference } from '../helpers/session-checks.js';

/** A toy in memory with Kimi's INT4 quantization_config whose ignore list is `ignore` (every other linear INT4). */
async function int4Toy(name: ToyName, ignore: string[], seed: number): Promise<Checkpoint> {
  const raw = toyLayoutJson(name, { quant: 'int4' });
  (raw.quantization_config as { ignore: string[] }).ignore = ignore;
  const toy = await makeToyCheckpointInMemory(raw, { seed });
  return openCheckpoint(memoryFiles(`int4-dense-${name}`, toy.data));
}

afterAll(async () => (await testGpu()).destroy());

describe(`GPU engine on a checkpoint with INT4 dense linears (${testAdapter()})`, () => {
  let ckpt: Checkpoint;
  let s: GpuSession;
  let prompt: number[];
  let V: number;
  beforeAll(async () => {
    ckpt = await int4Toy('small', ['lm_head', 're:.*kv_b_proj.*'], 9);
    V = ckpt.config.vocab_size;
    prompt = Array.from({ length: 12 }, (_, i) => (i * 53 + 7) % V); // 12 tokens: prefill runs the INT4 GEMV per token row
    s = await createSession(await testGpu(), ckpt, { ctxSize: 64 });
  });
  afterAll(async () => {
    s?.dispose();
    await ckpt?.close();
  });

  it('stores and uploads the dense linears INT4 (kv_b_proj BF16), the shared and routed experts INT4', () => {
    const stored = (n: string) => ckpt.weights.find((w) => w.spec.name === n)!.format;
    expect(stored('model.layers.0.self_attn.o_proj.weight')).toBe('int4');
    expect(stored('model.layers.0.mlp.down_proj.weight')).toBe('int4');
    expect(stored('model.layers.1.self_attn.kv_b_proj.weight')).toBe('bf16');
    const w = s.model.weights;
    const dense = w.layers[0]!;
    const moe = w.layers[1]!;
    // q_a and kv_a are stacked into one INT4 matrix (weights-gpu.ts StackedLatentProj: INT4 stacks without padding)
    for (const l of [dense, moe]) {
      expect(l.qA).toBeNull();
      expect(l.kvA).toBeNull();
      expect(l.qkvA!.kvRow).toBe(ckpt.config.q_lora_rank);
      expect(l.qkvA!.w.rows).toBe(ckpt.config.q_lora_rank! + ckpt.config.derived.kvAWidth);
    }
    for (const l of [dense.qkvA!.w, dense.qB!, dense.o, dense.mlp!.gate, dense.mlp!.up, dense.mlp!.down, moe.qkvA!.w, moe.qB!, moe.o]) {
      expect(l.format, l.name).toBe('int4');
      expect(l.scales, l.name).not.toBeNull();
      // group scales widened to f32 [rows, ⌈cols/32⌉] (createBuffer pads to 16 bytes)
      expect(l.scales!.size, l.name).toBe(Math.ceil((l.rows * Math.ceil(l.cols / 32) * 4) / 16) * 16);
    }
    expect(dense.kvB.format).toBe('bf16');
    expect(moe.moe!.experts.shared!.gateUp.format).toBe('int4');
    expect(moe.moe!.experts.shards[0]!.gateUp.format).toBe('int4');
    expect(w.lmHead.format).toBe('bf16');
  });

  it('logits match the CPU reference within 1e-4 · max(1, max|ref|) at every position, same argmax', async () => {
    await expectLogitsMatchReference(s, ckpt, prompt, 1e-4, `[${testAdapter()}] INT4 dense linears (small)`);
  });

  it('greedy generation equals the CPU reference greedy; a decode step is one submission', async () => {
    await expectGreedyMatchesCpu(s, ckpt, prompt, 6);
  });
});

describe(`GPU engine refuses an INT4 kv_b_proj (${testAdapter()})`, () => {
  it('a FormatError naming the tensor, before any GPU buffer is made; the CPU reference reads it', async () => {
    const ckpt = await int4Toy('tiny', ['lm_head'], 3);
    try {
      expect(ckpt.weights.find((w) => w.spec.name === 'model.layers.0.self_attn.kv_b_proj.weight')!.format).toBe('int4');
      const gpu = await testGpu();
      const made = { n: 0 };
      const create = gpu.device.createBuffer.bind(gpu.device);
      (gpu.device as { createBuffer: GPUDevice['createBuffer'] }).createBuffer = (d) => {
        if (d.label?.startsWith('model.')) made.n++;
        return create(d);
      };
      let err: unknown;
      try {
        await createSession(gpu, ckpt, { ctxSize: 16 });
      } catch (e) {
        err = e;
      } finally {
        (gpu.device as { createBuffer: GPUDevice['createBuffer'] }).createBuffer = create;
      }
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(/model\.layers\.0\.self_attn\.kv_b_proj\.weight.*INT4.*FP8 or BF16/);
      expect(made.n).toBe(0);
      const logits = referenceForward(await loadCpuWeights(ckpt), [1, 2, 3]);
      expect(logits.every(Number.isFinite)).toBe(true);
    } finally {
      await ckpt.close();
    }
  });
});
