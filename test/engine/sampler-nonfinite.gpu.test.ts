/**
 * The GPU sampler never lets its sentinel out as a token:
 *   - a temperature below GREEDY_BELOW_TEMPERATURE (1e-40, inside the documented range) samples greedily, in the
 *     kernel and through generate() on a real session (it used to return 0xFFFFFFFF: "token id 4294967295 is
 *     outside the vocabulary");
 *   - NaN / +Infinity logits, or no finite logit, make the kernel write NO_TOKEN, and the session turns that into a
 *     NumericError (a checkpoint whose finite weights overflow f32 in the forward pass), as sampler.ts does on the CPU.
 * Exact token ids: these are selections, not arithmetic.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { NO_TOKEN, argmax, sampleToken } from '../../src/engine/sampler.js';
import { loadTextModel } from '../../src/engine/text-model.js';
import type { DoneEvent, GenerationEvent, StepSampling } from '../../src/engine/types.js';
import { NumericError } from '../../src/errors.js';
import { sampleToken as gpuSample } from '../../src/gpu/ops/sample.js';
import { memoryFiles } from '../../src/model/checkpoint.js';
import { makeToyCheckpointInMemory } from '../../src/model/toy.js';
import { memorySource } from '../../src/format/source.js';
import { openSafetensors } from '../../src/format/safetensors.js';
import { randn, rng, testGpu } from '../helpers/gpu.js';
import { f32Buffer, readU32, record, u32Buffer } from '../kernels/ops-harness.js';

const gpuP = testGpu();
afterAll(async () => (await gpuP).destroy());

async function lastDone(gen: AsyncGenerator<GenerationEvent>): Promise<DoneEvent> {
  for await (const ev of gen) if (ev.type === 'done') return ev;
  throw new Error('no done event');
}

describe('sample.wgsl with tiny temperatures and non-finite logits', () => {
  it('temperature 1e-40 / 1e-31 is greedy; NaN, +Infinity and all -Infinity give NO_TOKEN; -Infinity alone is a zero weight', async () => {
    const gpu = await gpuP;
    const r = rng(11);
    const base = randn(r, 300, 2);
    const withNaN = base.slice();
    withNaN[17] = NaN;
    const withInf = base.slice();
    withInf[299] = Infinity;
    const withNegInf = base.slice();
    withNegInf[5] = -Infinity;
    const allNegInf = new Float32Array(40).fill(-Infinity);
    const s = (temperature: number, o: Partial<StepSampling> = {}): StepSampling => ({ temperature, topK: 0, topP: 1, uniform: 0.7, ...o });
    const cases: Array<{ logits: Float32Array; s: StepSampling; want: number }> = [
      { logits: base, s: s(1e-40), want: argmax(base) },
      { logits: base, s: s(1e-31), want: argmax(base) },
      { logits: base, s: s(1e-40, { topK: 5, topP: 0.5 }), want: argmax(base) },
      { logits: withNaN, s: s(1), want: NO_TOKEN },
      { logits: withNaN, s: s(0), want: NO_TOKEN },
      { logits: withInf, s: s(0.8, { topK: 10 }), want: NO_TOKEN },
      { logits: withInf, s: s(0), want: NO_TOKEN },
      { logits: allNegInf, s: s(1), want: NO_TOKEN },
      { logits: allNegInf, s: s(0), want: NO_TOKEN },
      { logits: withNegInf, s: s(1), want: sampleToken(withNegInf, s(1)) },
    ];
    const out = u32Buffer(gpu, new Uint32Array(cases.length));
    const probs = f32Buffer(gpu, 300);
    const bufs = cases.map((c) => f32Buffer(gpu, c.logits));
    await record(gpu, (rec) => cases.forEach((c, i) => gpuSample(rec.k, rec.pass, rec.arena, { logits: bufs[i]!, vocab: c.logits.length, out, outIndex: i, probs, ...c.s })));
    expect(Array.from(await readU32(gpu, out, cases.length))).toEqual(cases.map((c) => c.want));
    // the CPU rule agrees: the same cases are NumericErrors there
    for (const c of cases.filter((x) => x.want === NO_TOKEN)) expect(() => sampleToken(c.logits, c.s)).toThrow(NumericError);
  });
});

describe('a GPU session', () => {
  it('generates greedily at temperature 1e-40, exactly as at temperature 0', async () => {
    const gpu = await gpuP;
    const toy = await makeToyCheckpointInMemory('tiny', { seed: 4 });
    const model = await loadTextModel(memoryFiles('tiny', toy.data), { backend: 'webgpu', gpu });
    try {
      const greedy = await lastDone(model.generate([1, 2, 3], { maxTokens: 6, temperature: 0, ignoreEos: true }));
      const tiny = await lastDone(model.generate([1, 2, 3], { maxTokens: 6, temperature: 1e-40, ignoreEos: true, seed: 9 }));
      expect(tiny.tokens).toEqual(greedy.tokens);
    } finally {
      await model.close();
    }
  });

  it('reports logits that overflow f32 as a NumericError, not as token 4294967295', async () => {
    const gpu = await gpuP;
    const toy = await makeToyCheckpointInMemory('tiny', { seed: 4 });
    // finite weights (they pass the load-time scan) whose product overflows f32: the final norm's gains at 3e38
    const bytes = toy.data.get('model.safetensors')!;
    const st = await openSafetensors(memorySource(bytes, 'model.safetensors'));
    const t = st.tensors.get('model.norm.weight')!;
    const view = new DataView(bytes.buffer, bytes.byteOffset + t.offset, t.byteLength);
    if (t.dtype === 'F32') for (let i = 0; i < t.byteLength; i += 4) view.setFloat32(i, 3e38, true);
    else for (let i = 0; i < t.byteLength; i += 2) view.setUint16(i, 0x7f61, true); // BF16 ~3.0e38
    const model = await loadTextModel(memoryFiles('tiny', toy.data), { backend: 'webgpu', gpu });
    try {
      for (const temperature of [0, 1]) {
        const err = await lastDone(model.generate([1, 2, 3], { maxTokens: 2, temperature, seed: 1 })).catch((e: unknown) => e);
        expect(err, `temperature ${temperature}`).toBeInstanceOf(NumericError);
        expect((err as Error).message).toMatch(/not finite.*inspect --verify-data/);
      }
    } finally {
      await model.close();
    }
  });
});
