/**
 * Every kernel (shaders/*.wgsl, each format of a kernel family, shaders/reference and shaders/bench) compiles with
 * no message on an adapter that has the features it enables.
 */
import { describe, expect, it } from 'vitest';
import { Kernels, kernelNames, requiredFeatures } from '../../src/gpu/kernels.js';
import { SHADERS } from '../../src/gpu/shaders.gen.js';
import { EXTRA_SHADERS } from '../../src/gpu/shaders-extra.gen.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';

describe(`shader compilation (${testAdapter()})`, () => {
  for (const name of kernelNames()) {
    it(`${name} compiles without messages`, async (ctx) => {
      const gpu = await testGpu();
      const missing = requiredFeatures((SHADERS[name] ?? EXTRA_SHADERS[name])!).filter((f) => !gpu.features.has(f));
      // a variant for a feature this adapter lacks is compiled in the other adapter's project
      if (missing.length) ctx.skip();
      const kernels = new Kernels(gpu);
      const messages = await kernels.compileMessages(name);
      expect(messages.map((m) => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`)).toEqual([]);
      gpu.device.pushErrorScope('validation');
      kernels.pipeline(name);
      expect(await gpu.device.popErrorScope()).toBeNull();
    });
  }
});
