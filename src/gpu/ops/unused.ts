/**
 * One 16-byte storage buffer per kernel registry, bound where a kernel's binding is unused (BF16's scales, a
 * missing shared expert, an unsplit attention's partial outputs): every format and variant keeps one binding layout.
 */
import { createBuffer } from '../buffers.js';
import type { Kernels } from '../kernels.js';

const unused = new WeakMap<Kernels, GPUBuffer>();

export function unusedBuffer(k: Kernels): GPUBuffer {
  let b = unused.get(k);
  if (!b) {
    b = createBuffer(k.gpu, 16, 'unused');
    unused.set(k, b);
  }
  return b;
}

const writable = new WeakMap<Kernels, GPUBuffer>();

/** A 16-byte buffer for an unused writable binding (unusedBuffer may be bound read-only in the same dispatch). */
export function unusedWritable(k: Kernels): GPUBuffer {
  let b = writable.get(k);
  if (!b) {
    b = createBuffer(k.gpu, 16, 'unused.rw');
    writable.set(k, b);
  }
  return b;
}
