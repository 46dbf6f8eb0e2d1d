/**
 * `webmoe convert`: rewrites a checkpoint of this architecture in another weight format, streaming.
 *   fp8           every linear block-FP8 (E4M3 + one F32 weight_scale_inv per 128x128 block, docs/model.md §3.4), the
 *                 DeepSeek-V3 / Kimi K2-Instruct layout
 *   int4-experts  routed experts INT4 pack-quantized (docs/model.md §13, bit-exact with compressed-tensors), every other
 *                 linear BF16, Kimi's quantization_config: the K2-Thinking layout
 *   bf16          every linear BF16, no quantization_config
 * Embeddings, norms, lm_head and the router stay BF16, the router bias F32. A leaf already in its target format is
 * copied byte for byte; any other is decoded to f32 (FP8 x block scale, INT4 (u - 8) x group scale, BF16 widened)
 * and re-encoded. The output is flat (a K2.5 wrapper config is unwrapped, the `language_model.` prefix dropped,
 * vision and MTP tensors left out), sharded by --shard-size with model.safetensors.index.json.
 *
 * Memory: the output layout (headers) is planned first from the weight tree; then every tensor goes through in
 * stripes of 128 rows (one FP8 block row; INT4 groups lie within a row), so the peak is one stripe of the widest
 * tensor plus one tensor's FP8 scales, never a whole tensor or model.
 *
 * Legend: rows = out, cols = in of a linear [out, in]; G INT4 group size.
 */
import { ConfigError, InputError } from '../errors.js';
import { bf16ArrayToF32, dequantizeFp8Block, f32ArrayToBf16, quantizeFp8Block } from '../format/fp8.js';
import { dequantizeInt4, f16ArrayToF32, INT4_GROUP_SIZE, int4RowWords, quantizeInt4 } from '../format/int4.js';
import { asFloat32, asUint16, type TensorInfo } from '../format/safetensors.js';
import { verifyTensorData } from '../format/verify.js';
import { CheckpointWriter, planShards, type FolderSink } from '../format/writer.js';
import { checkInt4WeightShape, openCheckpoint, type Checkpoint, type CheckpointFiles } from './checkpoint.js';
import { parseConfig, type ModelConfig } from './config.js';
import { storedParts, type CheckedTensor, type LeafFormat, type StoredTensorSpec, type WeightSpec } from './weights.js';

export const CONVERT_TARGETS = ['fp8', 'int4-experts', 'bf16'] as const;
export type ConvertTarget = (typeof CONVERT_TARGETS)[number];

type Json = Record<string, unknown>;

/** Kimi K2-Thinking's quantization_config (docs/model.md §13), verbatim but for the group size. */
export function kimiInt4QuantizationConfig(groupSize = INT4_GROUP_SIZE): Json {
  return {
    config_groups: {
      group_0: {
        input_activations: null,
        output_activations: null,
        targets: ['Linear'],
        weights: {
          actorder: null, block_structure: null, dynamic: false, group_size: groupSize, num_bits: 4, observer: 'minmax',
          observer_kwargs: {}, strategy: 'group', symmetric: true, type: 'int',
        },
      },
    },
    format: 'pack-quantized',
    ignore: ['lm_head', 're:.*self_attn.*', 're:.*shared_experts.*', 're:.*mlp\\.(gate|up|gate_up|down)_proj.*'],
    kv_cache_scheme: null,
    quant_method: 'compressed-tensors',
    quantization_status: 'compressed',
  };
}

export const FP8_QUANTIZATION_CONFIG: Json = { activation_scheme: 'dynamic', fmt: 'e4m3', quant_method: 'fp8', weight_block_size: [128, 128] };

/** The flat config.json for `target` (a K2.5 wrapper unwrapped; quantization_config replaced). */
export function convertedConfigJson(raw: Json, target: ConvertTarget): Json {
  let out: Json;
  const text = raw.text_config;
  if (typeof text === 'object' && text !== null && !Array.isArray(text) && raw.hidden_size === undefined) {
    const { text_config: _t, vision_config: _v, architectures: _a, model_type: _m, auto_map: _am, ...rest } = raw;
    void _t, void _v, void _a, void _m, void _am;
    out = { ...rest, ...structuredClone(text as Json) };
    out.model_type ??= 'kimi_k2';
  } else {
    out = structuredClone(raw);
  }
  out.architectures = ['DeepseekV3ForCausalLM'];
  delete out.quantization_config;
  if (target === 'fp8') out.quantization_config = structuredClone(FP8_QUANTIZATION_CONFIG);
  if (target === 'int4-experts') out.quantization_config = kimiInt4QuantizationConfig();
  return out;
}

/** The output format of a leaf. */
export function targetFormat(spec: WeightSpec, target: ConvertTarget): LeafFormat {
  if (spec.kind !== 'linear') return spec.kind;
  if (target === 'fp8') return 'fp8';
  if (target === 'int4-experts' && spec.role === 'routed_expert') return 'int4';
  return 'bf16';
}

export interface ConvertOptions {
  /** Target bytes per shard (default 5 GB, as HF's max_shard_size); one file when everything fits. */
  shardBytes?: number;
  /** After each piece written: bytes of tensor data done / total, and the tensor. */
  onProgress?: (done: number, total: number, tensor: string) => void;
}

export interface ConvertInfo {
  config: ModelConfig;
  /** Every file written, config.json first. */
  files: string[];
  tensorBytes: number;
  /** Leaves copied unchanged / re-encoded. */
  copied: number;
  converted: number;
}

/** Small files carried over unchanged when the input has them. */
const SIDE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'tiktoken.model', 'chat_template.jinja'];

/** Opens `input`, converts it to `target` into `folder`. */
export async function convertCheckpoint(input: CheckpointFiles, target: ConvertTarget, folder: FolderSink, opts: ConvertOptions = {}): Promise<ConvertInfo> {
  if (!(CONVERT_TARGETS as readonly string[]).includes(target)) throw new InputError(`--to must be one of ${CONVERT_TARGETS.join(', ')}, got '${target}'`, 'to');
  const ckpt = await openCheckpoint(input);
  try {
    const rawText = (await input.readText('config.json'))!;
    const outJson = convertedConfigJson(JSON.parse(rawText) as Json, target);
    const config = parseConfig(outJson, `converted config (${target})`);
    const info = await convertWeights(ckpt, config, target, folder, opts);
    await folder.writeText('config.json', JSON.stringify(outJson, null, 2) + '\n');
    for (const f of SIDE_FILES) {
      const text = await input.readText(f);
      if (text !== undefined) {
        await folder.writeText(f, text);
        info.files.push(f);
      }
    }
    return info;
  } finally {
    await ckpt.close();
  }
}

/** Plans the output from the weight tree, then streams every leaf through. */
async function convertWeights(ckpt: Checkpoint, config: ModelConfig, target: ConvertTarget, folder: FolderSink, opts: ConvertOptions): Promise<ConvertInfo> {
  const leaves = ckpt.weights.map((t) => ({ t, format: targetFormat(t.spec, target) }));
  for (const { t, format } of leaves) {
    if (format === 'int4' && t.spec.shape[1]! % config.derived.int4GroupSize !== 0) {
      throw new ConfigError(`cannot make '${t.spec.name}' INT4: its ${t.spec.shape[1]} input columns are not a multiple of the group size ${config.derived.int4GroupSize} (docs/model.md §13)`, undefined, t.spec.shape, ckpt.name);
    }
  }
  const entries: StoredTensorSpec[] = leaves.flatMap(({ t, format }) => storedParts(config, t.spec, format));
  const total = entries.reduce((a, e) => a + e.shape.reduce((x, y) => x * y, 1) * bytesPer(e.dtype), 0);
  const shardBytes = opts.shardBytes ?? 5e9;
  if (!(shardBytes > 0)) throw new InputError(`shard size must be positive, got ${shardBytes}`, 'shard-size');
  const k = Math.max(1, Math.min(entries.length, Math.ceil(total / shardBytes)));
  const plan = planShards(entries, k, { format: 'pt', generator: `webmoe convert --to ${target}` });
  const writer = await CheckpointWriter.create(plan, folder);
  let done = 0;
  const write = async (name: string, bytes: Uint8Array): Promise<void> => {
    await writer.write(name, bytes);
    done += bytes.length;
    opts.onProgress?.(done, total, name);
  };
  let copied = 0;
  let converted = 0;
  for (const { t, format } of leaves) {
    // INT4 is copied only when its scales are already BF16 groups of the output's size (else re-quantised)
    if (format === t.format && (format !== 'int4' || (t.scale!.dtype === 'BF16' && ckpt.config.derived.int4GroupSize === config.derived.int4GroupSize))) {
      await copyLeaf(t, config, write);
      copied++;
    } else {
      await convertLeaf(ckpt, t, config, format, write);
      converted++;
    }
  }
  await writer.close();
  const files = ['config.json', ...plan.files.map((f) => f.file), ...(plan.index ? ['model.safetensors.index.json'] : [])];
  return { config, files, tensorBytes: total, copied, converted };
}

function bytesPer(dtype: string): number {
  return dtype === 'F8_E4M3' ? 1 : dtype === 'BF16' || dtype === 'F16' ? 2 : dtype === 'I64' ? 8 : 4;
}

type Write = (name: string, bytes: Uint8Array) => Promise<void>;

/** Largest piece a raw copy reads at once. */
const COPY_CHUNK = 64 * 2 ** 20;

/** Bytes [o, o + n) of a tensor's data, scanned for NaN/Inf (FP8 NaN codes) like every loader read (format/verify.ts). */
async function readPart(t: TensorInfo, o: number, n: number): Promise<Uint8Array> {
  const bytes = await t.source.read(t.offset + o, n);
  verifyTensorData(t, bytes);
  return bytes;
}

async function copyTensor(src: TensorInfo, name: string, write: Write): Promise<void> {
  for (let o = 0; o < src.byteLength; o += COPY_CHUNK) await write(name, await readPart(src, o, Math.min(COPY_CHUNK, src.byteLength - o)));
}

/** Same format in and out: the stored bytes, part by part (an INT4 weight_shape is rewritten as I32). */
async function copyLeaf(t: CheckedTensor, config: ModelConfig, write: Write): Promise<void> {
  const parts = storedParts(config, t.spec, t.format);
  await copyTensor(t.weight, parts[0]!.name, write);
  if (t.format === 'int4') {
    await copyTensor(t.scale!, parts[1]!.name, write);
    await checkInt4WeightShape(t);
    await write(parts[2]!.name, bytesOf(new Int32Array(t.spec.shape)));
  } else if (t.scale) {
    await copyTensor(t.scale, parts[1]!.name, write);
  }
}

/** Decodes a leaf in 128-row stripes and re-encodes it as `format`. */
async function convertLeaf(ckpt: Checkpoint, t: CheckedTensor, config: ModelConfig, format: LeafFormat, write: Write): Promise<void> {
  const [rows, cols] = t.spec.shape as [number, number];
  const parts = storedParts(config, t.spec, format);
  const name = parts[0]!.name;
  if (t.format === 'int4') await checkInt4WeightShape(t);
  const block = 128;
  const scales = format === 'fp8' ? new Float32Array(Math.ceil(rows / block) * Math.ceil(cols / block)) : null;
  for (let r0 = 0; r0 < rows; r0 += block) {
    const n = Math.min(block, rows - r0);
    const w = await readRowsF32(ckpt, t, r0, n);
    if (format === 'fp8') {
      const q = quantizeFp8Block(w, n, cols, block);
      scales!.set(q.scale, (r0 / block) * q.scale.length);
      await write(name, q.data);
    } else if (format === 'int4') {
      const q = quantizeInt4(w, n, cols, config.derived.int4GroupSize);
      await write(name, bytesOf(q.packed));
      await write(parts[1]!.name, bytesOf(q.scale));
    } else {
      await write(name, bytesOf(f32ArrayToBf16(w)));
    }
  }
  if (scales) await write(parts[1]!.name, bytesOf(scales));
  if (format === 'int4') await write(parts[2]!.name, bytesOf(new Int32Array([rows, cols])));
}

/** Rows r0 .. r0+n-1 of a leaf as f32 (n <= 128, r0 a multiple of 128: one FP8 block row). */
export async function readRowsF32(ckpt: Checkpoint, t: CheckedTensor, r0: number, n: number): Promise<Float32Array> {
  const cols = t.spec.shape.length === 2 ? t.spec.shape[1]! : t.spec.shape[0]!;
  const w = t.weight;
  if (t.format === 'bf16') return bf16ArrayToF32(asUint16(await readPart(w, r0 * cols * 2, n * cols * 2)));
  if (t.format === 'f32') return asFloat32(await readPart(w, r0 * cols * 4, n * cols * 4));
  if (t.format === 'fp8') {
    const block = ckpt.config.derived.blockSize;
    const sCols = Math.ceil(cols / block[1]);
    const codes = await readPart(w, r0 * cols, n * cols);
    const scale = asFloat32(await readPart(t.scale!, Math.floor(r0 / block[0]) * sCols * 4, sCols * 4));
    return dequantizeFp8Block(codes, scale, n, cols, block[0]);
  }
  const G = ckpt.config.derived.int4GroupSize;
  const pw = int4RowWords(cols);
  const pb = await readPart(w, r0 * pw * 4, n * pw * 4);
  const words = new Uint32Array(pb.slice().buffer);
  return dequantizeInt4(words, await readScaleRows(t, r0, n), n, cols, G);
}

/** INT4 group scales of rows r0 .. r0+n-1 as f32 (BF16, F16 or F32 as stored). */
async function readScaleRows(t: CheckedTensor, r0: number, n: number): Promise<Float32Array> {
  const s = t.scale!;
  const sw = s.shape[1]!;
  const size = s.dtype === 'F32' ? 4 : 2;
  const bytes = await readPart(s, r0 * sw * size, n * sw * size);
  if (s.dtype === 'F32') return asFloat32(bytes);
  return s.dtype === 'BF16' ? bf16ArrayToF32(asUint16(bytes)) : f16ArrayToF32(asUint16(bytes));
}

function bytesOf(a: Float32Array | Uint16Array | Uint32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
