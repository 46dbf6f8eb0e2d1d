/**
 * webmoe: Mixture-of-Experts inference on WebGPU. The library's public API, browser-safe: nothing here imports a
 * Node built-in (a test checks it). Node-only helpers (folders on disk, the agent's tools, the HTTP server) are in
 * `webmoe/node` (src/node.ts). The CLI and the web page are thin faces over these two.
 */
export * from './errors.js';
export { parseConfig, type ModelConfig, type DerivedConfig, type RopeScaling } from './model/config.js';
export { weightTable, weightGroups, weightSpecs, configFormat, storedParts, checkWeights, scaleShape, type WeightSpec, type WeightGroup, type LeafFormat, type CheckedTensor } from './model/weights.js';
export { openCheckpoint, readLinear, readStoredLinear, leafFormat, readF32, type Checkpoint, type CheckpointFiles, type LinearWeight, type StoredLinear, type Int4Weight } from './model/checkpoint.js';
export { convertCheckpoint, CONVERT_TARGETS, type ConvertTarget } from './model/convert.js';
export { dequantizeInt4, quantizeInt4 } from './format/int4.js';
export { openSafetensors, type SafetensorsFile, type TensorInfo, type Dtype } from './format/safetensors.js';
export { blobSource, memorySource, type ByteSource } from './format/source.js';
export { E4M3_TABLE, decodeE4M3, bf16ToF32, dequantizeFp8Block } from './format/fp8.js';
export { createGpu, type GpuContext, type GpuOptions, type AdapterChoice, type AdapterDescription } from './gpu/device.js';
export { Kernels } from './gpu/kernels.js';
export type * from './engine/types.js';
export { httpSource, DEFAULT_HTTP_TIMEOUT_MS, type HttpByteSource, type HttpSourceOptions, type Validators } from './format/source.js';
export { urlFiles, fileListFiles, memoryFiles } from './model/checkpoint.js';
export { encodeSafetensors } from './format/writer.js';
export { encodeE4M3, quantizeFp8Block, f32ToBf16 } from './format/fp8.js';
export { readNpy, writeNpy } from './format/npy.js';
export { inspectConfig, inspectCheckpoint, formatInspect } from './model/inspect.js';
export { makeToyCheckpointInMemory, TOY_CONFIG_NAMES, toyConfigJson } from './model/toy.js';
export { referenceForward, ReferenceSession } from './model/reference.js';
export { loadCpuWeights } from './model/cpu-weights.js';
export { moeRoute } from './model/router.js';
export { ropeInvFreq, ropeTables } from './model/rope.js';
export { generate } from './engine/generate.js';
export { loadTextModel, textModel, type TextModel, type LoadProgress } from './engine/text-model.js';
export { ByteTokenizer, type Tokenizer } from './text/tokenizer.js';
export { loadTokenizer } from './text/load-tokenizer.js';
export { renderChat, KimiOutputParser } from './text/chat-template.js';
export { createSession, GpuSession, type SessionOptions, type Precision } from './engine/session.js';
export { OpenAIBackend } from './agent/openai-backend.js';
export { LocalBackend } from './agent/local-backend.js';
export { BackendError, collectReply } from './agent/backend.js';
export type { ChatBackend, ChatChunk, ChatMessage, ChatReply, ChatRequest, ChatToolCall, FinishReason, ToolDefinition } from './agent/backend.js';
export { createBatchSession, BatchSession, type BatchSessionOptions, type BatchRow } from './engine/batch-session.js';
export { formatOffload, subtractOffloadStats, type OffloadOptions, type OffloadStats, type LayerOffloadStats, type RoutingReplay } from './engine/expert-offload.js';
export { planOffload, streamedPerToken, type OffloadPlan } from './engine/offload-plan.js';
export { checkpointExpertSource, memoryExpertSource, loadExpertsIntoMemory, expertShape, type ExpertSource, type ExpertBytes, type ExpertShape } from './offload/expert-source.js';
export { ExpertCache, type CachePolicy } from './offload/expert-cache.js';
export { parseTrace, serializeTrace, syntheticTrace, traceStats, type RoutingTrace } from './offload/traces.js';
export { simulate as simulateOffload, type SimOptions, type SimResult } from './offload/simulate.js';
