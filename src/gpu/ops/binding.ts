/**
 * Small helpers shared by the attention and MoE launchers: buffer-or-binding arguments with size checks, the
 * GPU-side weight handles (Params are packed by name: Kernels.run, gpu/contract.ts).
 */
import { DeviceError, ShapeError } from '../../errors.js';
import type { GpuContext } from '../device.js';

/** A whole buffer or a (buffer, offset, size) range of one. */
export type Buf = GPUBuffer | GPUBufferBinding;

/** Bytes visible through a binding. */
export function bindingBytes(b: Buf): number {
  if ('buffer' in b) return b.size ?? b.buffer.size - (b.offset ?? 0);
  return b.size;
}

/**
 * Checks that `b` holds at least `bytes` bytes and fits one storage binding; ShapeError / DeviceError name
 * the kernel and the argument.
 */
export function requireBytes(gpu: GpuContext, b: Buf, bytes: number, kernel: string, arg: string): void {
  const have = bindingBytes(b);
  if (have < bytes) {
    throw new ShapeError(`${kernel}: '${arg}' has ${have} bytes, the shapes need ${bytes}`, arg, bytes, have);
  }
  const max = gpu.limits.maxStorageBufferBindingSize;
  if (have > max) {
    throw new DeviceError(`${kernel}: '${arg}' binds ${have} bytes, more than maxStorageBufferBindingSize ${max} (bind a range or split the tensor)`, {
      limit: 'maxStorageBufferBindingSize',
      value: max,
      required: have,
    });
  }
}

export function requireInt(value: number, min: number, kernel: string, arg: string, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ShapeError(`${kernel}: ${arg} = ${value} must be an integer in [${min}, ${max}]`, arg, `[${min}, ${max}]`, value);
  }
}

/**
 * The workgroup size of a kernel that combines whole subgroups (fp8_gemv_subgroup, moe_*_id_subgroup): an integer in
 * [lanes, max] and a multiple of the adapter's largest subgroup (`lanes`: subgroupMaxSize, 64 where the adapter does
 * not say). Fewer threads than a subgroup would make WG / subgroup_size zero: the GEMV's combine would sum nothing
 * and moe_down_id_subgroup's row loop would never advance (a GPU hang).
 */
export function requireSubgroupWorkgroup(gpu: GpuContext, wg: number, max: number, kernel: string, arg: string): void {
  const lanes = gpu.info.subgroupMaxSize ?? 64;
  requireInt(wg, lanes, kernel, arg, max);
  if (wg % lanes !== 0) throw new ShapeError(`${kernel}: ${arg} = ${wg} must be a multiple of the adapter's subgroup size ${lanes}`, arg, `a multiple of ${lanes}`, wg);
}

/** An FP8 matrix (or stack of matrices) on the GPU in the layout of fp8-layout.ts. */
export interface Fp8Buffers {
  format?: 'fp8';
  /** u32 words, padded rows (fp8RowStrideWords) */
  codes: Buf;
  /** f32 weight_scale_inv, [ceil(rows/128), ceil(cols/128)] per matrix */
  scales: Buf;
}

/** A BF16 matrix (or stack) on the GPU: 2 codes per u32, padded rows (bf16RowStrideWords), no scales. */
export interface Bf16Buffers {
  format: 'bf16';
  /** u32 words, padded rows (bf16RowStrideWords) */
  codes: Buf;
}

/**
 * An INT4 pack-quantized stack on the GPU (routed experts, docs/model.md §13): 8 codes per u32, padded rows
 * (int4RowStrideWords), one f32 scale per row and 32 columns.
 */
export interface Int4Buffers {
  format: 'int4';
  /** u32 words, padded rows (int4RowStrideWords) */
  codes: Buf;
  /** f32 group scales, [rows, ceil(cols/32)] per matrix */
  scales: Buf;
}

/** A weight (or stack) as the attention / MoE kernels bind it; the launchers pick the kernel by its format. */
export type WeightBuffers = Fp8Buffers | Bf16Buffers | Int4Buffers;

export function weightFormat(w: WeightBuffers): 'fp8' | 'bf16' | 'int4' {
  return w.format ?? 'fp8';
}
