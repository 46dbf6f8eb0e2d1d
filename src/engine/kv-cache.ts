/**
 * The latent KV cache (docs/model.md §4.5): per layer ONE f32 buffer [ctx, R + Dr] whose row j is
 * [ĉ_j (R values, post kv_a_layernorm) | k_pe_j (Dr values, post RoPE)] — the row of kv_a_proj_with_mqa's output,
 * normalised and rotated. This is the fused layout the attention kernels recommend (ops/attention.ts
 * fusedCacheView): one pass over the cache serves every head. 576 floats per token per layer for K2.
 *
 * Legend: ctx context size, R kv_lora_rank, Dr qk_rope_head_dim.
 */
import { DeviceError } from '../errors.js';
import { createBuffer } from '../gpu/buffers.js';
import type { GpuContext } from '../gpu/device.js';
import { fusedCacheView, type LatentCacheView, type MlaGeometry } from '../gpu/ops/attention.js';

export class LatentKvCache {
  readonly layers: GPUBuffer[];
  /** R + Dr floats per token. */
  readonly width: number;

  constructor(gpu: GpuContext, layers: number, readonly ctx: number, readonly geometry: MlaGeometry) {
    this.width = geometry.rank + geometry.rope;
    const bytes = ctx * this.width * 4;
    const limit = gpu.limits.maxStorageBufferBindingSize;
    if (bytes > limit) {
      throw new DeviceError(
        `latent KV cache: one layer needs ${bytes} bytes for ${ctx} tokens, more than maxStorageBufferBindingSize ${limit}; lower --ctx-size to at most ${Math.floor(limit / (this.width * 4))}`,
        { limit: 'maxStorageBufferBindingSize', value: limit, required: bytes },
      );
    }
    this.layers = Array.from({ length: layers }, (_, i) => createBuffer(gpu, bytes, `kv_cache.${i}`));
  }

  view(layer: number): LatentCacheView {
    return fusedCacheView(this.layers[layer]!, this.geometry);
  }

  get bytes(): number {
    return this.layers.reduce((a, b) => a + b.size, 0);
  }

  destroy(): void {
    for (const b of this.layers) b.destroy();
  }
}
