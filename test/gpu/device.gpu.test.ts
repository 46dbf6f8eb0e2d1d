import { afterAll, describe, expect, it } from 'vitest';
import { createGpu } from '../../src/gpu/device.js';
import { runFillSequence } from '../../src/gpu/doctor.js';
import { DeviceError } from '../../src/errors.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';

describe(`device (${testAdapter()})`, () => {
  afterAll(async () => (await testGpu()).destroy());

  it('reports the adapter, its real limits and the optional features it has', async () => {
    const gpu = await testGpu();
    expect(gpu.info.software).toBe(true);
    expect(gpu.info.driver).toBe(testAdapter());
    // the device gets the adapter's limits, not the WebGPU defaults (256 MiB maxBufferSize)
    expect(gpu.limits.maxStorageBufferBindingSize).toBe(gpu.adapter.limits.maxStorageBufferBindingSize);
    expect(gpu.limits.maxBufferSize).toBe(gpu.adapter.limits.maxBufferSize);
    expect(gpu.device.limits.maxComputeWorkgroupStorageSize).toBe(gpu.adapter.limits.maxComputeWorkgroupStorageSize);
    for (const f of gpu.features) expect(gpu.device.features.has(f)).toBe(true);
    if (testAdapter() === 'lavapipe') {
      expect(gpu.features.has('shader-f16')).toBe(true);
      expect(gpu.limits.maxStorageBufferBindingSize).toBe(128 * 1024 * 1024);
    } else {
      expect(gpu.features.has('shader-f16')).toBe(false);
      expect(gpu.limits.maxStorageBufferBindingSize).toBe(1024 * 1024 * 1024);
    }
  });

  it('runs a WGSL kernel and returns the expected numbers', async () => {
    const gpu = await testGpu();
    expect(await runFillSequence(gpu, 1237, 0.25, -7)).toBe(0);
  });

  it('gives a typed error for a limit larger than the adapter offers', async () => {
    const gpu = await testGpu();
    const tooBig = gpu.adapter.limits.maxStorageBufferBindingSize * 2;
    const err = await createGpu({ adapter: testAdapter(), requiredLimits: { maxStorageBufferBindingSize: tooBig } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceError);
    expect((err as DeviceError).details).toMatchObject({ limit: 'maxStorageBufferBindingSize', required: tooBig });
    expect((err as Error).message).toMatch(/maxStorageBufferBindingSize/);
  });

  it('turns a destroyed device into a typed error on the next check', async () => {
    const gpu = await createGpu({ adapter: testAdapter() });
    gpu.destroy();
    expect(() => gpu.check()).toThrow(DeviceError);
    await expect(runFillSequence(gpu, 8)).rejects.toBeInstanceOf(DeviceError);
  });

  it('can leave out shader-f16 to test the f32 path', async () => {
    const gpu = await createGpu({ adapter: testAdapter(), disableFeatures: ['shader-f16'] });
    expect(gpu.features.has('shader-f16')).toBe(false);
    gpu.destroy();
  });
});
