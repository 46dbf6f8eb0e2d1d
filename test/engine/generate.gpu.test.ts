/**
 * generate() on the real WebGPU engine (src/engine/session.ts), on the adapter of the vitest project
 * (lavapipe or SwiftShader):
 *   - greedy, 32 tokens, EOS ignored, from each golden fixture's prompt == the fixture's `greedy` list
 *     (the independent implementation's continuation; its margins are >= 0.02, so any f32 engine must agree);
 *   - seeded sampling is reproducible (same session and a fresh one); top-k 1 == greedy;
 *   - an AbortSignal stops within one step, the session stays usable, and closing frees every buffer once.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTextModel, type TextModel } from '../../src/engine/text-model.js';
import { generate, type GenerateRunOptions } from '../../src/engine/generate.js';
import { PIPELINE_DEPTH, type DoneEvent, type GenerationEvent, type InferenceSession } from '../../src/engine/types.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { folderFiles } from '../../src/model/node-checkpoint.js';
import { SHARED_DIR } from '../format/shared-paths.js';
import { testGpu } from '../helpers/gpu.js';

const GOLDEN = join(SHARED_DIR, 'golden');
const CASES = ['tiny', 'small', 'ragged', 'yarn'];
const golden = (c: string) => JSON.parse(readFileSync(join(GOLDEN, c, 'tokens.json'), 'utf8')) as { prompt: number[]; greedy: number[] };

/** Counts destroy() calls per GPUBuffer created from now on (instrumentation of the real device, not a mock). */
function trackBuffers(gpu: GpuContext): { destroys: Map<GPUBuffer, number>; restore(): void } {
  const device = gpu.device;
  const original = device.createBuffer.bind(device);
  const destroys = new Map<GPUBuffer, number>();
  device.createBuffer = (desc: GPUBufferDescriptor) => {
    const buf = original(desc);
    const destroy = buf.destroy.bind(buf);
    destroys.set(buf, 0);
    buf.destroy = () => {
      destroys.set(buf, (destroys.get(buf) ?? 0) + 1);
      destroy();
    };
    return buf;
  };
  return {
    destroys,
    restore: () => {
      device.createBuffer = original;
    },
  };
}

async function done(gen: AsyncGenerator<GenerationEvent>): Promise<DoneEvent> {
  for await (const ev of gen) if (ev.type === 'done') return ev;
  throw new Error('no done event');
}

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await testGpu();
});

describe.each(CASES)('golden %s on WebGPU', (c) => {
  it('greedy 32 tokens with EOS ignored == the fixture', async () => {
    const model = await loadTextModel(folderFiles(join(GOLDEN, c)), { backend: 'webgpu', gpu });
    try {
      const g = golden(c);
      const d = await done(model.generate(g.prompt, { maxTokens: 32, temperature: 0, ignoreEos: true }));
      expect(d.tokens).toEqual(g.greedy);
      expect(d.stats).toMatchObject({ promptTokens: g.prompt.length, generatedTokens: 32, finishReason: 'length' });
      expect(d.stats.gpuBytes).toBeGreaterThan(0);
      expect(d.stats.decodeTokensPerSecond).toBeGreaterThan(0);
    } finally {
      await model.close();
    }
  });
});

describe('sampling and cancellation on WebGPU (golden small)', () => {
  const g = golden('small');
  let model: TextModel;
  beforeAll(async () => {
    model = await loadTextModel(folderFiles(join(GOLDEN, 'small')), { backend: 'webgpu', gpu });
  });
  afterAll(async () => {
    await model?.close();
  });

  it('seeded sampling is reproducible, in the same session and in a fresh one; other seeds differ', async () => {
    const opts = { maxTokens: 24, temperature: 1, topP: 0.95, ignoreEos: true };
    const a = (await done(model.generate(g.prompt, { ...opts, seed: 11 }))).tokens;
    expect((await done(model.generate(g.prompt, { ...opts, seed: 11 }))).tokens).toEqual(a);
    expect((await done(model.generate(g.prompt, { ...opts, seed: 12 }))).tokens).not.toEqual(a);
    const fresh = await loadTextModel(folderFiles(join(GOLDEN, 'small')), { backend: 'webgpu', gpu });
    try {
      expect((await done(fresh.generate(g.prompt, { ...opts, seed: 11 }))).tokens).toEqual(a);
    } finally {
      await fresh.close();
    }
  });

  it('top-k 1 equals greedy at temperature 1.3, whatever the seed', async () => {
    for (const seed of [1, 2]) {
      const d = await done(model.generate(g.prompt, { maxTokens: 16, temperature: 1.3, topK: 1, seed, ignoreEos: true }));
      expect(d.tokens).toEqual(g.greedy.slice(0, 16));
    }
  });

  it('an abort between steps submits nothing more; an abort during a step stops after it', async () => {
    const session = model.session;
    const decode = session.decode.bind(session);
    const decodeNext = session.decodeNext!.bind(session);
    let decodes = 0;
    session.decode = (t, s) => (decodes++, decode(t, s));
    session.decodeNext = (s) => (decodes++, decodeNext(s));
    try {
      // (a) aborted by the consumer right after token 3: nothing submitted after it beyond the steps already
      // running ahead (PIPELINE_DEPTH), which are dropped and rewound out of the cache
      const ac = new AbortController();
      let d: DoneEvent | undefined;
      for await (const ev of model.generate(g.prompt, { maxTokens: 32, temperature: 0, ignoreEos: true, signal: ac.signal })) {
        if (ev.type === 'token' && ev.index === 3) ac.abort();
        if (ev.type === 'done') d = ev;
      }
      expect(d!.stats.finishReason).toBe('abort');
      expect(d!.tokens).toEqual(g.greedy.slice(0, 4));
      expect(decodes).toBe(3 + PIPELINE_DEPTH);
      expect(session.position).toBe(g.prompt.length + 3);

      // (b) aborted while a decode is in flight: that step completes, its token is dropped, nothing follows
      decodes = 0;
      const ac2 = new AbortController();
      let tokensAtAbort = -1;
      const events: GenerationEvent[] = [];
      for await (const ev of model.generate(g.prompt, { maxTokens: 32, temperature: 0, ignoreEos: true, signal: ac2.signal })) {
        events.push(ev);
        if (ev.type === 'token' && ev.index === 1) {
          // fires while the next decode step is running on the GPU
          setTimeout(() => {
            tokensAtAbort = events.filter((e) => e.type === 'token').length;
            ac2.abort();
          }, 0);
        }
      }
      const d2 = events.at(-1) as DoneEvent;
      expect(d2.stats.finishReason).toBe('abort');
      expect(d2.tokens.length).toBeLessThanOrEqual(tokensAtAbort + 1);
      expect(decodes).toBeLessThanOrEqual(d2.tokens.length + PIPELINE_DEPTH);
      expect(session.position).toBe(g.prompt.length + d2.tokens.length); // the step whose token the abort dropped stays
      expect(d2.tokens).toEqual(g.greedy.slice(0, d2.tokens.length));
    } finally {
      session.decode = decode;
      session.decodeNext = decodeNext;
    }
    // the session is still usable after an abort
    expect((await done(model.generate(g.prompt, { maxTokens: 4, temperature: 0, ignoreEos: true }))).tokens).toEqual(g.greedy.slice(0, 4));
  });

  it('pipelined decode (decodeNext) gives the tokens of one step at a time; a stop rewinds the steps submitted ahead', async () => {
    const session = model.session;
    // the same session seen without decodeNext: generate() runs one host-fed step at a time
    const plain: InferenceSession = {
      get contextSize() { return session.contextSize; },
      get position() { return session.position; },
      get vocabSize() { return session.vocabSize; },
      reset: () => session.reset(),
      prefill: (t, s) => session.prefill(t, s),
      decode: (t, s) => session.decode(t, s),
      forwardLogits: (t) => session.forwardLogits(t),
      gpuBytes: () => session.gpuBytes(),
      dispose: () => session.dispose(),
    };
    const run = async (sess: InferenceSession, opts: GenerateRunOptions) => {
      const d = await done(generate(sess, model.tokenizer, g.prompt, { eosTokenIds: [], ...opts }));
      return { tokens: d.tokens, text: d.text, reason: d.stats.finishReason, position: session.position };
    };
    for (const opts of [{ maxTokens: 20, temperature: 0 }, { maxTokens: 20, temperature: 1, topP: 0.9, seed: 5 }]) {
      const piped = await run(session, opts);
      expect(piped).toEqual(await run(plain, opts));
      expect(piped.tokens).toHaveLength(20);
      expect(piped.position).toBe(g.prompt.length + 19); // the limit is known in advance: no step wasted
    }
    // a stop token at index 6: the two steps already submitted after it are dropped
    const at = g.greedy.findIndex((t, i) => i >= 6 && g.greedy.indexOf(t) === i);
    const stop = await run(session, { maxTokens: 32, temperature: 0, stopTokens: [g.greedy[at]!] });
    expect(stop).toEqual(await run(plain, { maxTokens: 32, temperature: 0, stopTokens: [g.greedy[at]!] }));
    expect(stop).toMatchObject({ tokens: g.greedy.slice(0, at), reason: 'stop', position: g.prompt.length + at });
  });

  it('closing after an abort frees every buffer exactly once, and closing again frees nothing', async () => {
    const track = trackBuffers(gpu);
    try {
      const m = await loadTextModel(folderFiles(join(GOLDEN, 'tiny')), { backend: 'webgpu', gpu });
      const ac = new AbortController();
      for await (const ev of m.generate(golden('tiny').prompt, { maxTokens: 8, temperature: 0, signal: ac.signal })) if (ev.type === 'token') ac.abort();
      await m.close();
      await m.close();
      m.session.dispose();
      const counts = [...track.destroys.values()];
      expect(counts.length).toBeGreaterThan(0);
      expect(counts.filter((n) => n > 1)).toEqual([]);
      // everything the session made is freed (readback buffers included)
      expect(counts.filter((n) => n === 0)).toEqual([]);
    } finally {
      track.restore();
    }
  });
});
