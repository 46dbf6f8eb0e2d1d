/**
 * Buffers: creation with limit checks, uploads, readbacks, and a uniform arena (one buffer, 256-byte slots,
 * written once per submission) so a step with hundreds of dispatches does not create hundreds of buffers.
 */
import { DeviceError } from '../errors.js';
import type { GpuContext } from './device.js';

export const STORAGE = 0x0080 | 0x0008 | 0x0004; // STORAGE | COPY_DST | COPY_SRC

/** Creates a buffer, failing with a DeviceError that names it when it exceeds maxBufferSize. */
export function createBuffer(gpu: GpuContext, size: number, label: string, usage: number = STORAGE): GPUBuffer {
  const padded = Math.max(16, Math.ceil(size / 16) * 16);
  if (padded > gpu.limits.maxBufferSize) {
    throw new DeviceError(`buffer '${label}' needs ${padded} bytes but the device allows at most ${gpu.limits.maxBufferSize} (maxBufferSize)`, {
      limit: 'maxBufferSize',
      value: gpu.limits.maxBufferSize,
      required: padded,
    });
  }
  gpu.check();
  return gpu.device.createBuffer({ size: padded, usage, label });
}

/** Uploads bytes into a new storage buffer (padded to 16 bytes). */
export function uploadBuffer(gpu: GpuContext, data: ArrayBufferView, label: string, usage: number = STORAGE): GPUBuffer {
  const buf = createBuffer(gpu, data.byteLength, label, usage);
  writeBuffer(gpu, buf, 0, data);
  return buf;
}

/** queue.writeBuffer with the 4-byte size rule handled (pads a copy only when needed). */
export function writeBuffer(gpu: GpuContext, buf: GPUBuffer, offset: number, data: ArrayBufferView): void {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % 4 === 0) {
    gpu.device.queue.writeBuffer(buf, offset, bytes.buffer, bytes.byteOffset, bytes.byteLength);
  } else {
    const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
    padded.set(bytes);
    gpu.device.queue.writeBuffer(buf, offset, padded);
  }
}

/** Copies `size` bytes from `buf` at `offset` into a fresh ArrayBuffer (one submission + map). */
export async function readBuffer(gpu: GpuContext, buf: GPUBuffer, offset = 0, size = buf.size - offset): Promise<ArrayBuffer> {
  gpu.check();
  const staging = gpu.device.createBuffer({ size: Math.ceil(size / 4) * 4, usage: GPUBufferUsage_MAP_READ | 0x0008, label: 'readback' });
  const enc = gpu.device.createCommandEncoder({ label: 'readback' });
  enc.copyBufferToBuffer(buf, offset, staging, 0, Math.ceil(size / 4) * 4);
  gpu.device.queue.submit([enc.finish()]);
  try {
    await staging.mapAsync(0x0001);
  } catch (err) {
    gpu.check();
    throw new DeviceError(`readback failed: ${(err as Error).message}`, { reason: 'map' });
  }
  const out = staging.getMappedRange(0, Math.ceil(size / 4) * 4).slice(0, size);
  staging.unmap();
  staging.destroy();
  gpu.check();
  return out;
}

const GPUBufferUsage_MAP_READ = 0x0001;

/**
 * Per-dispatch parameters: each `alloc` reserves a 256-byte-aligned slot in a CPU mirror; `flush` writes the
 * used part to the GPU once. Slots are bound with offsets, so one uniform buffer serves a whole submission.
 */
export class UniformArena {
  readonly buffer: GPUBuffer;
  private readonly mirror: ArrayBuffer;
  private used = 0;
  private readonly align: number;

  constructor(private readonly gpu: GpuContext, readonly capacity = 1 << 20, label = 'uniform-arena') {
    this.align = Math.max(256, gpu.limits.minUniformBufferOffsetAlignment || 256);
    this.buffer = createBuffer(gpu, capacity, label, 0x0040 | 0x0008); // UNIFORM | COPY_DST
    this.mirror = new ArrayBuffer(capacity);
    this.view = new DataView(this.mirror);
  }

  /** Reserves a slot and fills it from 32-bit words (u32 / i32 / f32 chosen per field by the caller's view). */
  alloc(bytes: number, fill: (view: DataView) => void): GPUBufferBinding {
    const { offset, size } = this.reserve(bytes);
    fill(new DataView(this.mirror, offset, size));
    return { buffer: this.buffer, offset, size };
  }

  /**
   * As alloc, for the per-dispatch path (Kernels.run): reserves a slot and returns its offset; the caller fills it
   * through `view` (the whole mirror) and binds the arena's buffer at that offset, so a dispatch allocates no
   * view, closure or binding object.
   */
  slot(bytes: number): number {
    return this.reserve(bytes).offset;
  }

  /** The whole CPU mirror (slot() callers write their words at the slot's offset). */
  readonly view: DataView;

  private reserve(bytes: number): { offset: number; size: number } {
    const size = Math.ceil(bytes / 16) * 16;
    if (this.used + size > this.capacity) {
      throw new DeviceError(`uniform arena full (${this.capacity} bytes): too many dispatches in one submission`, { reason: 'arena' });
    }
    const offset = this.used;
    this.used = Math.ceil((offset + size) / this.align) * this.align;
    return { offset, size };
  }

  /** Writes the slots used so far to the GPU (call before submit). */
  flush(): void {
    if (this.used > 0) this.gpu.device.queue.writeBuffer(this.buffer, 0, this.mirror, 0, this.used);
  }

  reset(): void {
    this.used = 0;
  }

  /** Bytes of the arena filled since the last reset (the engine checks room before recording another chunk). */
  get usedBytes(): number {
    return this.used;
  }
}
