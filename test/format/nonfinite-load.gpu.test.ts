/**
 * A checkpoint with NaN/Inf in a scale, a norm, the router bias or an embedding, or an E4M3 NaN code in a weight,
 * is the same FormatError (same message, same tensor) on the webgpu backend as on the cpu backend (before the scan, the
 * GPU decoded 0x7F as 480 and the CPU as NaN). The scan runs as the bytes are read, before any upload.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadTextModel } from '../../src/engine/text-model.js';
import { FormatError } from '../../src/errors.js';
import { memoryFiles } from '../../src/model/checkpoint.js';
import { testGpu } from '../helpers/gpu.js';
import { CORRUPTIONS, corruptToy } from './corrupt-toy.js';

const gpuP = testGpu();
afterAll(async () => (await gpuP).destroy());

async function loadError(data: Map<string, Uint8Array>, backend: 'cpu' | 'webgpu'): Promise<unknown> {
  const gpu = backend === 'webgpu' ? await gpuP : undefined;
  return loadTextModel(memoryFiles('tiny', data), { backend, gpu }).then(
    (m) => m.close().then(() => undefined),
    (e: unknown) => e,
  );
}

describe('non-finite checkpoint data on WebGPU', () => {
  it.each(CORRUPTIONS)('$label: the same FormatError as the cpu backend', async (c) => {
    const data = await corruptToy(c);
    const gpuErr = await loadError(data, 'webgpu');
    const cpuErr = await loadError(data, 'cpu');
    expect(gpuErr).toBeInstanceOf(FormatError);
    expect((gpuErr as FormatError).tensor).toBe(c.tensor);
    expect((gpuErr as Error).message).toBe((cpuErr as Error).message);
  });
});
