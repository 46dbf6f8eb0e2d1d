/**
 * webmoe: Mixture-of-Experts inference on WebGPU. The library's public API; the CLI and the web page are thin
 * faces over it.
 */
export * from './errors.js';
export { parseConfig, type ModelConfig, type DerivedConfig, type RopeScaling } from './model/config.js';
export { weightTable, checkWeights, scaleShape, type WeightSpec } from './model/weights.js';
export { openCheckpoint, readLinear, readF32, type Checkpoint, type CheckpointFiles, type LinearWeight } from './model/checkpoint.js';
export { openSafetensors, type SafetensorsFile, type TensorInfo, type Dtype } from './format/safetensors.js';
export { blobSource, memorySource, type ByteSource } from './format/source.js';
export { E4M3_TABLE, decodeE4M3, bf16ToF32, dequantizeFp8Block } from './format/fp8.js';
export { createGpu, type GpuContext, type GpuOptions, type AdapterChoice, type AdapterDescription } from './gpu/device.js';
export { Kernels } from './gpu/kernels.js';
export type * from './engine/types.js';
