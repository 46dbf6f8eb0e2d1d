/**
 * Toy checkpoints: the named toy configs and a seeded generator that writes an HF-layout checkpoint (config.json,
 * safetensors single or sharded, FP8 weights quantised with docs/model.md §3.4, and for vocab >= 259 a byte-level
 * tokenizer). Used by `webmoe make-toy`, by tests of the CPU reference and the GPU engine, and by benchmarks.
 *
 * Named configs: `tiny`, `small`, `ragged`, `yarn` are the config.json of the golden fixtures of the same name
 * (test/fixtures/golden; their weights differ); `k2-layer` is one MoE layer at Kimi K2 widths (hidden 7168,
 * 16 routed experts top-8 + 1 shared, vocab 1024) for benchmarks; `kimi-toy` is issue #13's Kimi-style toy (hidden 384,
 * 3 layers of which the first dense, 64 experts top-8 + 1 shared, YaRN factor 32 over 32 positions): the model of
 * the browser decode targets (`webmoe bench page`).
 *
 * Weights (legend: D hidden, V vocab, E experts): linear W[out, in] ~ N(0, 1/in) so every projection keeps O(1)
 * activations; embed_tokens ~ N(0, 1); lm_head and router ~ N(0, 4/D) (logits and router scores of O(1), so the
 * sigmoid scores and hence the routing vary from token to token); norm weights ~ N(1, 0.1^2);
 * e_score_correction_bias ~ U[0, 0.1) (non-negative, docs/model.md §6.2). Each tensor has its own PRNG stream seeded from
 * (seed, tensor name), so the weights do not depend on the shard count or the write order.
 * Platform-neutral; `writeToyCheckpoint` (a folder on disk) loads the Node writer lazily.
 */
import { ConfigError, InputError } from '../errors.js';
import { f32ArrayToBf16, quantizeFp8Block } from '../format/fp8.js';
import { quantizeInt4 } from '../format/int4.js';
import { CheckpointWriter, memoryFolder, planShards, type FolderSink, type TensorEntry } from '../format/writer.js';
import { parseConfig, type ModelConfig } from './config.js';
import { FP8_QUANTIZATION_CONFIG, kimiInt4QuantizationConfig } from './convert.js';
import { configFormat, storedParts, weightSpecs, type LeafFormat, type WeightSpec } from './weights.js';

type Json = Record<string, unknown>;

export const TOY_CONFIG_NAMES = ['tiny', 'small', 'ragged', 'yarn', 'k2-layer', 'kimi-toy'] as const;
export type ToyName = (typeof TOY_CONFIG_NAMES)[number];

/** The config.json of each named toy (the golden ones verbatim; bos/eos move to 256/257 when a tokenizer is written). */
const TOY_CONFIGS: Record<ToyName, Json> = {
  tiny: {
    architectures: ['DeepseekV3ForCausalLM'], model_type: 'deepseek_v3', hidden_act: 'silu', rms_norm_eps: 1e-06,
    rope_theta: 10000.0, rope_scaling: null, attention_bias: false, attention_dropout: 0.0,
    tie_word_embeddings: false, topk_method: 'noaux_tc', scoring_func: 'sigmoid', norm_topk_prob: true, n_group: 1,
    topk_group: 1, moe_layer_freq: 1, first_k_dense_replace: 1, routed_scaling_factor: 2.5, n_shared_experts: 1,
    num_nextn_predict_layers: 0, num_key_value_heads: 2, bos_token_id: 0, eos_token_id: 1, initializer_range: 0.02,
    torch_dtype: 'bfloat16', use_cache: true, max_position_embeddings: 4096, vocab_size: 128, hidden_size: 64,
    intermediate_size: 128, moe_intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2, q_lora_rank: 32,
    kv_lora_rank: 32, qk_nope_head_dim: 16, qk_rope_head_dim: 8, v_head_dim: 16, n_routed_experts: 8,
    num_experts_per_tok: 2,
    quantization_config: {activation_scheme: 'dynamic', fmt: 'e4m3', quant_method: 'fp8', weight_block_size: [128, 128]},
  },
  small: {
    architectures: ['DeepseekV3ForCausalLM'], model_type: 'deepseek_v3', hidden_act: 'silu', rms_norm_eps: 1e-06,
    rope_theta: 10000.0, rope_scaling: null, attention_bias: false, attention_dropout: 0.0,
    tie_word_embeddings: false, topk_method: 'noaux_tc', scoring_func: 'sigmoid', norm_topk_prob: true, n_group: 8,
    topk_group: 4, moe_layer_freq: 1, first_k_dense_replace: 1, routed_scaling_factor: 2.5, n_shared_experts: 1,
    num_nextn_predict_layers: 0, num_key_value_heads: 4, bos_token_id: 0, eos_token_id: 1, initializer_range: 0.02,
    torch_dtype: 'bfloat16', use_cache: true, max_position_embeddings: 4096, vocab_size: 512, hidden_size: 256,
    intermediate_size: 512, moe_intermediate_size: 128, num_hidden_layers: 3, num_attention_heads: 4,
    q_lora_rank: 128, kv_lora_rank: 64, qk_nope_head_dim: 32, qk_rope_head_dim: 16, v_head_dim: 32,
    n_routed_experts: 32, num_experts_per_tok: 8,
    quantization_config: {activation_scheme: 'dynamic', fmt: 'e4m3', quant_method: 'fp8', weight_block_size: [128, 128]},
  },
  ragged: {
    architectures: ['DeepseekV3ForCausalLM'], model_type: 'deepseek_v3', hidden_act: 'silu', rms_norm_eps: 1e-06,
    rope_theta: 10000.0, rope_scaling: null, attention_bias: false, attention_dropout: 0.0,
    tie_word_embeddings: false, topk_method: 'noaux_tc', scoring_func: 'sigmoid', norm_topk_prob: true, n_group: 4,
    topk_group: 2, moe_layer_freq: 1, first_k_dense_replace: 1, routed_scaling_factor: 1.5, n_shared_experts: 2,
    num_nextn_predict_layers: 0, num_key_value_heads: 3, bos_token_id: 0, eos_token_id: 1, initializer_range: 0.02,
    torch_dtype: 'bfloat16', use_cache: true, max_position_embeddings: 4096, vocab_size: 300, hidden_size: 200,
    intermediate_size: 300, moe_intermediate_size: 72, num_hidden_layers: 3, num_attention_heads: 3,
    q_lora_rank: null, kv_lora_rank: 72, qk_nope_head_dim: 40, qk_rope_head_dim: 24, v_head_dim: 56,
    n_routed_experts: 16, num_experts_per_tok: 4,
    quantization_config: {activation_scheme: 'dynamic', fmt: 'e4m3', quant_method: 'fp8', weight_block_size: [128, 128]},
  },
  yarn: {
    architectures: ['DeepseekV3ForCausalLM'], model_type: 'deepseek_v3', hidden_act: 'silu', rms_norm_eps: 1e-06,
    rope_theta: 50000.0,
    rope_scaling: {type: 'yarn', factor: 4.0, original_max_position_embeddings: 64, beta_fast: 32, beta_slow: 1, mscale: 1.0, mscale_all_dim: 1.0},
    attention_bias: false, attention_dropout: 0.0, tie_word_embeddings: false, topk_method: 'noaux_tc',
    scoring_func: 'sigmoid', norm_topk_prob: true, n_group: 4, topk_group: 2, moe_layer_freq: 1,
    first_k_dense_replace: 1, routed_scaling_factor: 2.5, n_shared_experts: 1, num_nextn_predict_layers: 0,
    num_key_value_heads: 4, bos_token_id: 0, eos_token_id: 1, initializer_range: 0.02, torch_dtype: 'bfloat16',
    use_cache: true, max_position_embeddings: 256, vocab_size: 256, hidden_size: 128, intermediate_size: 256,
    moe_intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, q_lora_rank: 96, kv_lora_rank: 64,
    qk_nope_head_dim: 32, qk_rope_head_dim: 32, v_head_dim: 32, n_routed_experts: 16, num_experts_per_tok: 4,
    quantization_config: {activation_scheme: 'dynamic', fmt: 'e4m3', quant_method: 'fp8', weight_block_size: [128, 128]},
  },
  // One MoE layer at Kimi K2 widths (test/fixtures/configs/kimi-k2.json with fewer experts, one layer, small vocab).
  'k2-layer': {
    architectures: ['DeepseekV3ForCausalLM'], model_type: 'kimi_k2', vocab_size: 1024, hidden_size: 7168,
    intermediate_size: 18432, moe_intermediate_size: 2048, num_hidden_layers: 1, num_attention_heads: 64,
    num_key_value_heads: 64, q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64,
    v_head_dim: 128, n_routed_experts: 16, n_shared_experts: 1, num_experts_per_tok: 8, n_group: 1, topk_group: 1,
    first_k_dense_replace: 0, moe_layer_freq: 1, norm_topk_prob: true, routed_scaling_factor: 2.827,
    scoring_func: 'sigmoid', topk_method: 'noaux_tc', hidden_act: 'silu', rms_norm_eps: 1e-6, rope_theta: 50000.0,
    rope_scaling: {
      type: 'yarn', factor: 32.0, original_max_position_embeddings: 4096, beta_fast: 1.0, beta_slow: 1.0, mscale: 1.0,
      mscale_all_dim: 1.0,
    },
    max_position_embeddings: 131072, tie_word_embeddings: false, bos_token_id: 256, eos_token_id: 257,
    num_nextn_predict_layers: 0, attention_bias: false, torch_dtype: 'bfloat16',
    quantization_config: { quant_method: 'fp8', fmt: 'e4m3', activation_scheme: 'dynamic', weight_block_size: [128, 128] },
  },
  // Issue #13's Kimi-style toy: Kimi K2's shape rules (kimi_k2, n_group 1, scaling 2.827, YaRN with beta 1/1) at
  // toy widths; moe_intermediate 96 is not a multiple of 128 (ragged FP8 blocks), as in the issue.
  'kimi-toy': {
    architectures: ['DeepseekV3ForCausalLM'], model_type: 'kimi_k2', vocab_size: 1024, hidden_size: 384,
    intermediate_size: 768, moe_intermediate_size: 96, num_hidden_layers: 3, num_attention_heads: 4,
    num_key_value_heads: 4, q_lora_rank: 192, kv_lora_rank: 128, qk_nope_head_dim: 64, qk_rope_head_dim: 32,
    v_head_dim: 64, n_routed_experts: 64, n_shared_experts: 1, num_experts_per_tok: 8, n_group: 1, topk_group: 1,
    first_k_dense_replace: 1, moe_layer_freq: 1, norm_topk_prob: true, routed_scaling_factor: 2.827,
    scoring_func: 'sigmoid', topk_method: 'noaux_tc', hidden_act: 'silu', rms_norm_eps: 1e-6, rope_theta: 50000.0,
    rope_scaling: {
      type: 'yarn', factor: 32.0, original_max_position_embeddings: 32, beta_fast: 1.0, beta_slow: 1.0, mscale: 1.0,
      mscale_all_dim: 1.0,
    },
    max_position_embeddings: 1024, tie_word_embeddings: false, bos_token_id: 256, eos_token_id: 257,
    num_nextn_predict_layers: 0, attention_bias: false, torch_dtype: 'bfloat16',
    quantization_config: { quant_method: 'fp8', fmt: 'e4m3', activation_scheme: 'dynamic', weight_block_size: [128, 128] },
  },
};

/** Ids of the byte-level tokenizer's specials (ids 0..255 are the bytes). */
export const TOY_SPECIAL_TOKENS = { bos: { id: 256, content: '[BOS]' }, eos: { id: 257, content: '[EOS]' }, pad: { id: 258, content: '[PAD]' } } as const;
/** Smallest vocab that gets a tokenizer: 256 bytes + BOS, EOS, PAD. */
export const TOKENIZER_MIN_VOCAB = 259;

export function isToyName(s: string): s is ToyName {
  return (TOY_CONFIG_NAMES as readonly string[]).includes(s);
}

/**
 * The config.json that make-toy writes for a named toy or a given config object (deep copy), unchanged: the
 * named toys reproduce the golden configs exactly. When the vocab has room for the byte-level tokenizer, its
 * [BOS]/[EOS] ids go into generation_config.json, which takes precedence for generation (as in HF).
 */
export function toyConfigJson(source: ToyName | Json): Json {
  let raw: Json;
  if (typeof source === 'string') {
    if (!isToyName(source)) throw new InputError(`unknown toy config '${source}' (named configs: ${TOY_CONFIG_NAMES.join(', ')}; or give a config.json path)`, 'config');
    raw = structuredClone(TOY_CONFIGS[source]);
  } else {
    raw = structuredClone(source);
  }
  return raw;
}

/** Weight formats make-toy can write over a config's own quantization_config. */
export const TOY_QUANTS = ['fp8', 'bf16', 'int4'] as const;
export type ToyQuant = (typeof TOY_QUANTS)[number];

/** How make-toy reshapes a config: its linear format, and the Kimi K2.5 wrapper layout. */
export interface ToyLayout {
  /** 'fp8': block FP8 (DeepSeek / K2-Instruct); 'bf16': no quantization_config; 'int4': Kimi's compressed-tensors
   * config, routed experts INT4 and every other linear BF16 (K2-Thinking). Default: the config's own. */
  quant?: ToyQuant;
  /** Kimi K2.5 layout: the config under text_config, tensors prefixed `language_model.`, a few vision_tower.* /
   * mm_projector.* tensors, six-digit shard totals (docs/model.md §13). */
  k25?: boolean;
}

/** The config.json make-toy writes for `source` in `layout`. */
export function toyLayoutJson(source: ToyName | Json, layout: ToyLayout = {}): Json {
  const raw = toyConfigJson(source);
  if (layout.quant !== undefined) {
    if (!(TOY_QUANTS as readonly string[]).includes(layout.quant)) throw new InputError(`--quant must be one of ${TOY_QUANTS.join(', ')}, got '${layout.quant}'`, 'quant');
    delete raw.quantization_config;
    if (layout.quant === 'fp8') raw.quantization_config = structuredClone(FP8_QUANTIZATION_CONFIG);
    if (layout.quant === 'int4') raw.quantization_config = kimiInt4QuantizationConfig();
  }
  if (!layout.k25) return raw;
  const { architectures: _a, ...text } = raw;
  void _a;
  return {
    architectures: ['KimiK25ForConditionalGeneration'],
    model_type: 'kimi_k25',
    text_config: { ...text, architectures: ['DeepseekV3ForCausalLM'], model_type: 'kimi_k2' },
    vision_config: { model_type: 'moonvit', hidden_size: 16, patch_size: 4, num_hidden_layers: 1 },
    tie_word_embeddings: false,
  };
}

/** Small stand-ins for the K2.5 vision tower and projector (listed and ignored by the loader). */
function visionTensors(D: number): TensorEntry[] {
  return [
    { name: 'vision_tower.patch_embed.proj.weight', dtype: 'BF16', shape: [16, 48] },
    { name: 'vision_tower.encoder.blocks.0.norm0.weight', dtype: 'BF16', shape: [16] },
    { name: 'mm_projector.proj.0.weight', dtype: 'BF16', shape: [D, 16] },
  ];
}

/** The parsed config of a named toy (or config object), as make-toy would write it. */
export function toyConfig(source: ToyName | Json, layout: ToyLayout = {}): ModelConfig {
  return parseConfig(toyLayoutJson(source, layout), typeof source === 'string' ? `toy config '${source}'` : 'config.json');
}

export interface ToyOptions extends ToyLayout {
  /** PRNG seed (default 0). */
  seed?: number;
  /** Number of safetensors shards (default 1: a single model.safetensors). */
  shards?: number;
  /** Called after each tensor (or 128-row stripe) is written. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface ToyCheckpointInfo {
  config: ModelConfig;
  /** Every file written, config.json first. */
  files: string[];
  /** Bytes of tensor data. */
  tensorBytes: number;
  hasTokenizer: boolean;
}

/** Generates a toy checkpoint into a FolderSink (memory, disk, ...). */
export async function generateToyCheckpoint(source: ToyName | Json, folder: FolderSink, opts: ToyOptions = {}): Promise<ToyCheckpointInfo> {
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new InputError(`seed must be an integer, got ${seed}`, 'seed');
  const raw = toyLayoutJson(source, opts);
  const config = parseConfig(raw, typeof source === 'string' ? `toy config '${source}'` : 'config.json');
  const prefix = config.derived.tensorPrefix;
  const leaves = [...weightSpecs(config)].map((spec) => ({ spec, format: configFormat(config, spec) }));
  for (const { spec, format } of leaves) {
    if (format === 'int4' && spec.shape[1]! % config.derived.int4GroupSize !== 0) {
      throw new ConfigError(`INT4 needs rows of whole groups: '${spec.name}' has ${spec.shape[1]} input columns, not a multiple of ${config.derived.int4GroupSize} (docs/model.md §13)`, 'quantization_config', spec.shape);
    }
  }
  const stored: TensorEntry[] = leaves.flatMap(({ spec, format }) => storedParts(config, spec, format)).map((t) => ({ name: prefix + t.name, dtype: t.dtype, shape: t.shape }));
  const vision = opts.k25 ? visionTensors(config.hidden_size) : [];
  const plan = planShards([...stored, ...vision], opts.shards ?? 1, { format: 'pt', generator: 'webmoe make-toy', seed: String(seed) }, opts.k25 ? 6 : undefined);
  const total = plan.files.reduce((a, f) => a + f.layout.fileSize - f.layout.dataStart, 0);
  let done = 0;
  const writer = await CheckpointWriter.create(plan, folder);
  const write = async (name: string, bytes: Uint8Array): Promise<void> => {
    await writer.write(prefix + name, bytes);
    done += bytes.length;
    opts.onProgress?.(done, total);
  };
  for (const { spec, format } of leaves) await writeToyTensor(config, spec, format, seed, write);
  for (const v of vision) {
    const values = new Rng(seed, v.name).fillNormal(new Float32Array(v.shape.reduce((a, b) => a * b, 1)), 0, 0.02);
    await writer.write(v.name, bytesOf(f32ArrayToBf16(values)));
  }
  await writer.close();

  const files = ['config.json', ...plan.files.map((f) => f.file)];
  await folder.writeText('config.json', JSON.stringify(raw, null, 2) + '\n');
  if (plan.index) files.push('model.safetensors.index.json');
  const hasTokenizer = config.vocab_size >= TOKENIZER_MIN_VOCAB;
  if (hasTokenizer) {
    await folder.writeText('tokenizer.json', JSON.stringify(byteLevelTokenizerJson(config.vocab_size), null, 2) + '\n');
    await folder.writeText('tokenizer_config.json', JSON.stringify(byteLevelTokenizerConfig(config.max_position_embeddings), null, 2) + '\n');
    const gen = { bos_token_id: TOY_SPECIAL_TOKENS.bos.id, eos_token_id: TOY_SPECIAL_TOKENS.eos.id, pad_token_id: TOY_SPECIAL_TOKENS.pad.id };
    await folder.writeText('generation_config.json', JSON.stringify(gen, null, 2) + '\n');
    files.push('tokenizer.json', 'tokenizer_config.json', 'generation_config.json');
  }
  return { config, files, tensorBytes: total, hasTokenizer };
}

/** A toy checkpoint in memory: file name -> bytes (see `memoryFiles` in checkpoint.ts to open it). */
export async function makeToyCheckpointInMemory(source: ToyName | Json, opts: ToyOptions = {}): Promise<ToyCheckpointInfo & { data: Map<string, Uint8Array> }> {
  const folder = memoryFolder();
  const info = await generateToyCheckpoint(source, folder, opts);
  return { ...info, data: folder.files };
}

/**
 * Writes a toy checkpoint folder to disk (Node), replacing the checkpoint files already there (config, shards,
 * index, tokenizer; nothing else). `source`: a toy name or a config.json object.
 */
export async function writeToyCheckpoint(source: ToyName | Json, dir: string, opts: ToyOptions = {}): Promise<ToyCheckpointInfo> {
  // lazy: keeps this module free of Node imports for the browser build
  const { nodeFolder, removeCheckpointFiles } = (await import(/* @vite-ignore */ '../format/node-writer.js')) as typeof import('../format/node-writer.js');
  toyConfig(source, opts); // a bad config fails before anything is removed
  await removeCheckpointFiles(dir);
  return generateToyCheckpoint(source, await nodeFolder(dir), opts);
}

// ---------------------------------------------------------------------------------------------------------------
// Weights

/** Little-endian bytes of a typed array (every platform JS runs on is little-endian, as safetensors is). */
function bytesOf(a: Float32Array | Uint16Array | Uint32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * How one leaf is initialised, by its role and shape (never its name): a normal (mean, std) or a uniform [lo, hi).
 * Every 1-D BF16 leaf (the norms) is N(1, 0.1^2).
 */
function initFor(config: ModelConfig, spec: WeightSpec): { dist: 'normal'; mean: number; std: number } | { dist: 'uniform'; lo: number; hi: number } {
  const D = config.hidden_size;
  if (spec.role === 'router_bias') return { dist: 'uniform', lo: 0, hi: 0.1 };
  if (spec.role === 'embed') return { dist: 'normal', mean: 0, std: 1 };
  if (spec.role === 'lm_head' || spec.role === 'router') return { dist: 'normal', mean: 0, std: 2 / Math.sqrt(D) };
  if (spec.kind === 'linear') return { dist: 'normal', mean: 0, std: 1 / Math.sqrt(spec.shape[1]!) };
  if (spec.kind === 'bf16' && spec.shape.length === 1) return { dist: 'normal', mean: 1, std: 0.1 };
  throw new ConfigError(`no initialiser for the ${spec.role} leaf '${spec.name}'`);
}

async function writeToyTensor(config: ModelConfig, spec: WeightSpec, format: LeafFormat, seed: number, write: (name: string, bytes: Uint8Array) => Promise<void>): Promise<void> {
  const rng = new Rng(seed, spec.name);
  const init = initFor(config, spec);
  const fill = (out: Float32Array): Float32Array => (init.dist === 'normal' ? rng.fillNormal(out, init.mean, init.std) : rng.fillUniform(out, init.lo, init.hi));
  if (spec.kind !== 'linear') {
    const values = fill(new Float32Array(spec.shape.reduce((a, b) => a * b, 1)));
    await write(spec.name, spec.kind === 'f32' ? bytesOf(values) : bytesOf(f32ArrayToBf16(values)));
    return;
  }
  // linear [rows, cols]: 128-row stripes (one block row of scales each), so memory stays O(128 * cols)
  const [rows, cols] = spec.shape as [number, number];
  const block = config.derived.blockSize[0];
  if (format === 'int4') {
    // INT4 (docs/model.md §13): the same normal draws, quantised as compressed-tensors does, row stripes in order
    const [packed, scale, shape] = storedParts(config, spec, 'int4').map((t) => t.name) as [string, string, string];
    const stripe = new Float32Array(Math.min(block, rows) * cols);
    for (let r0 = 0; r0 < rows; r0 += block) {
      const n = Math.min(block, rows - r0);
      const q = quantizeInt4(fill(stripe.subarray(0, n * cols)), n, cols, config.derived.int4GroupSize);
      await write(packed, bytesOf(q.packed));
      await write(scale, bytesOf(q.scale));
    }
    await write(shape, bytesOf(new Int32Array([rows, cols])));
    return;
  }
  const fp8 = format === 'fp8';
  const scales = fp8 ? new Float32Array(Math.ceil(rows / block) * Math.ceil(cols / config.derived.blockSize[1])) : undefined;
  const stripe = new Float32Array(Math.min(block, rows) * cols);
  for (let r0 = 0; r0 < rows; r0 += block) {
    const n = Math.min(block, rows - r0);
    const part = fill(stripe.subarray(0, n * cols));
    if (scales) {
      const q = quantizeFp8Block(part, n, cols, block);
      scales.set(q.scale, (r0 / block) * q.scale.length);
      await write(spec.name, q.data);
    } else {
      await write(spec.name, bytesOf(f32ArrayToBf16(part)));
    }
  }
  if (scales) await write(spec.name + '_scale_inv', bytesOf(scales));
}

/**
 * xoshiro128** seeded by splitmix32 from (seed, FNV-1a of the tensor name); normals by Marsaglia's polar method
 * (the spare of each pair is kept, so the stream does not depend on how a tensor is cut into stripes). The fill
 * loops keep the state in locals: generating ~10^9 weights (k2-layer) is the hot path of make-toy.
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | undefined;

  constructor(seed: number, stream = '') {
    let h = 0x811c9dc5;
    for (let i = 0; i < stream.length; i++) h = Math.imul(h ^ stream.charCodeAt(i), 0x01000193);
    let x = (h ^ Math.imul(seed | 0, 0x9e3779b9) ^ Math.floor(seed / 2 ** 32)) >>> 0;
    const splitmix = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix();
    this.s1 = splitmix();
    this.s2 = splitmix();
    this.s3 = splitmix();
  }

  /** A uniform 32-bit integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in (0, 1). */
  uniform(): number {
    return (this.nextU32() + 0.5) / 4294967296;
  }

  normal(): number {
    const out = new Float32Array(1);
    this.fillNormal(out);
    return out[0]!;
  }

  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    let [s0, s1, s2, s3] = [this.s0, this.s1, this.s2, this.s3];
    let i = 0;
    if (this.spare !== undefined && out.length > 0) {
      out[i++] = mean + std * this.spare;
      this.spare = undefined;
    }
    while (i < out.length) {
      let u: number;
      let v: number;
      let r2: number;
      do {
        // two xoshiro128** steps, mapped to (-1, 1)
        let w = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
        let t = s1 << 9;
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
        u = (w + 0.5) / 2147483648 - 1;
        w = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
        t = s1 << 9;
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = (s3 << 11) | (s3 >>> 21);
        v = (w + 0.5) / 2147483648 - 1;
        r2 = u * u + v * v;
      } while (r2 >= 1 || r2 === 0);
      const m = Math.sqrt((-2 * Math.log(r2)) / r2);
      out[i++] = mean + std * u * m;
      if (i < out.length) out[i++] = mean + std * v * m;
      else this.spare = v * m;
    }
    [this.s0, this.s1, this.s2, this.s3] = [s0, s1, s2, s3];
    return out;
  }

  fillUniform(out: Float32Array, lo = 0, hi = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

// ---------------------------------------------------------------------------------------------------------------
// Byte-level tokenizer

/** GPT-2's byte -> printable character map (the ByteLevel pre-tokenizer's alphabet). */
export function byteLevelAlphabet(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = new Array<string>(256);
  for (const b of keep) out[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (out[b] === undefined) out[b] = String.fromCharCode(256 + n++);
  return out;
}

/**
 * tokenizer.json (HF tokenizers format) for a byte-level vocabulary: token id b (0..255) is byte b (ByteLevel
 * alphabet, BPE without merges), then [BOS], [EOS], [PAD] at 256..258, and `<|reserved_{id}|>` specials up to
 * vocab_size so that every id the model can emit decodes.
 */
export function byteLevelTokenizerJson(vocabSize: number): Json {
  if (vocabSize < TOKENIZER_MIN_VOCAB) throw new InputError(`a byte-level tokenizer needs vocab_size >= ${TOKENIZER_MIN_VOCAB}, got ${vocabSize}`, 'vocab_size');
  const alphabet = byteLevelAlphabet();
  const vocab: Record<string, number> = {};
  alphabet.forEach((ch, b) => (vocab[ch] = b));
  const special = (id: number, content: string): Json => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const added = [TOY_SPECIAL_TOKENS.bos, TOY_SPECIAL_TOKENS.eos, TOY_SPECIAL_TOKENS.pad].map((t) => special(t.id, t.content));
  for (let id = TOKENIZER_MIN_VOCAB; id < vocabSize; id++) added.push(special(id, `<|reserved_${id}|>`));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/** tokenizer_config.json to go with it (no BOS added on encode, as Kimi's chat format emits none). */
export function byteLevelTokenizerConfig(maxLength: number): Json {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: TOY_SPECIAL_TOKENS.bos.content,
    eos_token: TOY_SPECIAL_TOKENS.eos.content,
    pad_token: TOY_SPECIAL_TOKENS.pad.content,
    add_bos_token: false,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: maxLength,
  };
}
