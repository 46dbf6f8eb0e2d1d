/**
 * Sizes of the activation rows the CPU-adapter kernels stage in workgroup memory (XS in fp8_gemv_wide.wgsl and
 * moe_gateup_id_wide.wgsl): whole 16-column chunks per row, and the override that sizes the kernel's `xs` array.
 * Why staging pays (docs/kernels.md §3.4): on lavapipe a storage-buffer load at a workgroup-uniform address inside a
 * loop is a per-lane gather with a bounds check, and those loads bound the wide kernels.
 */
import type { Kernels } from '../kernels.js';

/** vec4s of `rows` staged rows of `cols` columns: whole 16-column chunks per row (a chunk never crosses rows). */
export function stagedRowVec4(cols: number, rows = 1): number {
  return rows * Math.ceil(cols / 16) * 4;
}

/**
 * The `xs` capacity (vec4s) a kernel is built with to stage `need` vec4s beside `reservedBytes` of its other
 * workgroup arrays, or 0 where they do not fit the device's workgroup memory: a power of two at least need + 4 (an
 * 8-column chunk's reader loads four vec4s and uses two; fewer pipelines, one per size class, not per column count),
 * never past the memory left.
 */
export function stagedCapacity(k: Kernels, need: number, reservedBytes: number): number {
  const cap = Math.floor((k.gpu.limits.maxComputeWorkgroupStorageSize - reservedBytes - 16) / 16);
  if (need + 4 > cap) return 0;
  return Math.min(cap, 2 ** Math.ceil(Math.log2(need + 4)));
}
