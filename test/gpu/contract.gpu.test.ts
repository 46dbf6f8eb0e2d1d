/**
 * The kernel contract (src/gpu/contract.ts) as a specification:
 *   - every kernel's layout parsed from its WGSL agrees with the bind-group layout the device reflects for its
 *     pipeline: a bind group built from the parsed bindings (a storage buffer for each storage binding, a uniform
 *     one for the Params) validates without error, for every kernel the adapter can compile;
 *   - Kernels.run refuses a missing, extra or mistyped binding or param with a KernelContractError naming it, and
 *     packs the Params by name in the struct's order.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { KernelContractError } from '../../src/errors.js';
import { createBuffer, readBuffer, UniformArena } from '../../src/gpu/buffers.js';
import { parseContract } from '../../src/gpu/contract.js';
import { kernelNames, Kernels } from '../../src/gpu/kernels.js';
import '../../src/gpu/shaders-extra.gen.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';

afterAll(async () => (await testGpu()).destroy());

describe(`kernel contracts (${testAdapter()})`, () => {
  // SwiftShader compiles slowly (seconds per kernel with large workgroup arrays): the layouts are the device's
  // reflection of the same WGSL, so one adapter checks them; SwiftShader runs the Kernels.run checks below
  it.skipIf(testAdapter() === 'swiftshader')('every kernel: the parsed bindings build a valid bind group for its pipeline', async () => {
    const gpu = await testGpu();
    const k = new Kernels(gpu);
    const failures: string[] = [];
    let checked = 0;
    for (const name of kernelNames()) {
      if (!k.available(name)) continue;
      const c = k.contract(name);
      const dev = gpu.device;
      dev.pushErrorScope('validation');
      const pipe = k.pipeline(name);
      const entries = c.bindings.map((b) => ({
        binding: b.index,
        resource: { buffer: dev.createBuffer({ size: 4096, usage: b.kind === 'uniform' ? 0x0040 : 0x0080 }) },
      }));
      dev.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries });
      const err = await dev.popErrorScope();
      if (err) failures.push(`${name}: ${err.message.slice(0, 300)}`);
      checked++;
    }
    console.log(`[${testAdapter()}] ${checked} kernels' parsed layouts agree with the device's`);
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThan(40);
  });

  it('the parser reads bindings, Params fields and overrides; comments do not count', () => {
    const c = parseContract('t', `
      // @group(0) @binding(5) var<storage, read> ghost: array<f32>;
      override WG: u32 = 64u;
      struct Params { n: u32, scale: f32, _pad: u32, }
      @group(0) @binding(1) var<storage, read_write> y: array<f32>;
      @group(0) @binding(0) var<storage, read> x: array<f32>;
      @group(0) @binding(2) var<uniform> p: Params;`);
    expect(c.bindings).toEqual([{ index: 0, name: 'x', kind: 'read' }, { index: 1, name: 'y', kind: 'read_write' }, { index: 2, name: 'p', kind: 'uniform' }]);
    expect(c.params).toEqual([{ name: 'n', type: 'u32' }, { name: 'scale', type: 'f32' }, { name: '_pad', type: 'u32' }]);
    expect(c.overrides).toEqual([{ name: 'WG', type: 'u32' }]);
    expect(() => parseContract('gap', '@group(0) @binding(1) var<storage, read> x: array<f32>;')).toThrow(KernelContractError);
  });

  it('Kernels.run: missing, extra and mistyped arguments are KernelContractErrors; params packed by name', async () => {
    const gpu = await testGpu();
    const k = new Kernels(gpu);
    const arena = new UniformArena(gpu, 1 << 16, 'test');
    const x = createBuffer(gpu, 64, 'x');
    const y = createBuffer(gpu, 64, 'y');
    const enc = gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    const fail = (f: () => void): KernelContractError => {
      try {
        f();
      } catch (e) {
        return e as KernelContractError;
      }
      throw new Error('expected a KernelContractError');
    };
    const add = k.contract('add');
    expect(add.bindings.map((b) => b.name)).toEqual(['y', 'x', 'params']);
    expect(add.params!.map((f) => f.name)).toEqual(['n', 'yOffset', 'xOffset', '_pad']);
    const bind = { y, x };
    const params = { n: 4, yOffset: 2, xOffset: 8 };
    let e = fail(() => k.run(pass, arena, 'add', { bind: { y }, params, grid: [1] } as never));
    expect(e).toBeInstanceOf(KernelContractError);
    expect(e.field).toBe('x');
    e = fail(() => k.run(pass, arena, 'add', { bind: { ...bind, bogus: x }, params, grid: [1] }));
    expect(e.message).toMatch(/'bogus' is not a binding of this kernel/);
    e = fail(() => k.run(pass, arena, 'add', { bind, params: { ...params, n: -1 }, grid: [1] }));
    expect(e.message).toMatch(/param 'n' is u32, got -1/);
    e = fail(() => k.run(pass, arena, 'add', { bind, params: { ...params, n: 1.5 }, grid: [1] }));
    expect(e.field).toBe('n');
    e = fail(() => k.run(pass, arena, 'add', { bind, params: { ...params, extra: 1 }, grid: [1] }));
    expect(e.message).toMatch(/'extra' is not a Params field/);
    e = fail(() => k.run(pass, arena, 'add', { bind, params: { n: 4, xOffset: 8 }, grid: [1] }));
    expect(e.message).toMatch(/param 'yOffset' \(u32\) is missing/);
    // packed by name: y[2 .. 5] += x[8 .. 11]; the padding field left out is written 0
    gpu.device.queue.writeBuffer(x, 0, Float32Array.from({ length: 16 }, (_, i) => i + 1));
    gpu.device.queue.writeBuffer(y, 0, new Float32Array(16));
    k.run(pass, arena, 'add', { constants: { WG: 64 }, bind, params, grid: [1] });
    pass.end();
    arena.flush();
    gpu.device.queue.submit([enc.finish()]);
    const got = new Float32Array(await readBuffer(gpu, y, 0, 64));
    expect([...got]).toEqual([0, 0, 9, 10, 11, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
});
