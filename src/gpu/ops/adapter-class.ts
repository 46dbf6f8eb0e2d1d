/**
 * The adapter classes that kernel choices are keyed on (gpu/plan.ts, the kernel plan): the two
 * software Vulkan drivers this project measures on (docs/benchmarks.md) behave differently enough that a
 * kernel that wins on one can lose on the other, and neither says much about real GPUs.
 *   'llvmpipe'    Mesa lavapipe/llvmpipe (SIMD lanes of 8 on AVX2, shader-f16)
 *   'swiftshader' Google SwiftShader (subgroups of 4, no shader-f16), in Node or in Chromium
 *   'software'    another CPU adapter (treated like the closest measured one where a choice needs it)
 *   'hardware'    a GPU
 */
import type { GpuContext } from '../device.js';

export type AdapterClass = 'llvmpipe' | 'swiftshader' | 'software' | 'hardware';

// per adapter description: the launchers ask on every call (~35 times a decode step), and the regexes allocated
const classes = new WeakMap<GpuContext['info'], AdapterClass>();

export function adapterClass(gpu: GpuContext): AdapterClass {
  let c = classes.get(gpu.info);
  if (c === undefined) {
    c = classify(gpu.info);
    classes.set(gpu.info, c);
  }
  return c;
}

function classify(info: GpuContext['info']): AdapterClass {
  if (!info.software) return 'hardware';
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`;
  if (/llvmpipe|lavapipe/i.test(text)) return 'llvmpipe';
  if (/swiftshader/i.test(text)) return 'swiftshader';
  return 'software';
}
