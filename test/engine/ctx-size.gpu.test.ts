/**
 * --ctx-size above max_position_embeddings: one InputError, with the same message, on both backends (issue #11:
 * the cpu backend accepted it), raised before any weight is read.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadTextModel } from '../../src/engine/text-model.js';
import { InputError } from '../../src/errors.js';
import { memoryFiles } from '../../src/model/checkpoint.js';
import { makeToyCheckpointInMemory } from '../../src/model/toy.js';
import { testGpu } from '../helpers/gpu.js';

const gpuP = testGpu();
afterAll(async () => (await gpuP).destroy());

describe('--ctx-size above the model maximum', () => {
  it('is the same InputError on webgpu and cpu', async () => {
    const toy = await makeToyCheckpointInMemory('tiny', { seed: 1 });
    const gpu = await gpuP;
    const errs = await Promise.all(
      (['webgpu', 'cpu'] as const).map((backend) =>
        loadTextModel(memoryFiles('tiny', toy.data), { backend, gpu: backend === 'webgpu' ? gpu : undefined, ctxSize: 4097 }).then(
          (m) => m.close().then(() => undefined),
          (e: unknown) => e,
        ),
      ),
    );
    for (const e of errs) {
      expect(e).toBeInstanceOf(InputError);
      expect((e as Error).message).toBe("--ctx-size 4097 exceeds the model's max_position_embeddings 4096");
    }
  });
});
