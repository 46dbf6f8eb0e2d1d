/**
 * A checkpoint folder in the HF layout: config.json + model.safetensors (or shards listed by
 * model.safetensors.index.json), optionally tokenizer.json and generation_config.json.
 * Platform-neutral: a `CheckpointFiles` says how to read a file of the folder (Node: fs; browser: fetch / File).
 * Opening validates the config and every header against the weight table; no tensor data is read yet.
 */
import { ConfigError, FormatError } from '../errors.js';
import { asFloat32, asUint16, openSafetensors, readTensorBytes, type TensorInfo } from '../format/safetensors.js';
import type { ByteSource } from '../format/source.js';
import { bf16ArrayToF32 } from '../format/fp8.js';
import { parseConfig, type ModelConfig } from './config.js';
import { checkWeights, type CheckedTensor } from './weights.js';

/** How to reach the files of one checkpoint folder. */
export interface CheckpointFiles {
  /** The folder's name (used as model id). */
  name: string;
  /** Text of a small file, or undefined when it does not exist. */
  readText(file: string): Promise<string | undefined>;
  /** A byte source over a (large) file. */
  open(file: string): Promise<ByteSource>;
}

export interface Checkpoint {
  name: string;
  config: ModelConfig;
  /** All tensors of all shards (MTP layers included), validated. */
  tensors: Map<string, TensorInfo>;
  /** Table entries with their tensors, in load order. */
  weights: CheckedTensor[];
  /** Tensors of layers >= num_hidden_layers (MTP), present and ignored. */
  ignored: string[];
  /** Tensors nothing uses that are not MTP layers. */
  unexpected: string[];
  /** Parsed tokenizer.json, when the folder has one. */
  tokenizerJson?: unknown;
  /** Parsed generation_config.json, when present. */
  generationConfig?: Record<string, unknown>;
  /** Names of the safetensors files. */
  files: string[];
  close(): Promise<void>;
}

export async function openCheckpoint(files: CheckpointFiles): Promise<Checkpoint> {
  const configText = await files.readText('config.json');
  if (configText === undefined) throw new ConfigError(`${files.name}: no config.json in the checkpoint folder`);
  const config = parseConfig(parseJson(configText, `${files.name}/config.json`), `${files.name}/config.json`);

  const shardNames = await listShards(files);
  const sources: ByteSource[] = [];
  const tensors = new Map<string, TensorInfo>();
  try {
    for (const shard of shardNames) {
      const src = await files.open(shard);
      sources.push(src);
      const st = await openSafetensors(src);
      for (const [name, info] of st.tensors) {
        if (tensors.has(name)) throw new FormatError(`tensor appears in two shards (${tensors.get(name)!.source.name} and ${shard})`, shard, name);
        tensors.set(name, info);
      }
    }
    const { checked, ignored, unexpected } = checkWeights(config, tensors, files.name);
    const tokText = await files.readText('tokenizer.json');
    const genText = await files.readText('generation_config.json');
    return {
      name: files.name,
      config,
      tensors,
      weights: checked,
      ignored,
      unexpected,
      tokenizerJson: tokText === undefined ? undefined : parseJson(tokText, `${files.name}/tokenizer.json`),
      generationConfig: genText === undefined ? undefined : (parseJson(genText, `${files.name}/generation_config.json`) as Record<string, unknown>),
      files: shardNames,
      close: async () => {
        await Promise.all(sources.map((s) => s.close()));
      },
    };
  } catch (err) {
    await Promise.all(sources.map((s) => s.close().catch(() => {})));
    throw err;
  }
}

/** model.safetensors.index.json's weight_map names the shards; otherwise the single model.safetensors. */
async function listShards(files: CheckpointFiles): Promise<string[]> {
  const indexText = await files.readText('model.safetensors.index.json');
  if (indexText === undefined) return ['model.safetensors'];
  const file = `${files.name}/model.safetensors.index.json`;
  const index = parseJson(indexText, file) as { weight_map?: unknown };
  const map = index?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new FormatError('weight_map must be an object of tensor name -> shard file', file);
  const shards = new Set<string>();
  for (const [tensor, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard === '..') {
      throw new FormatError(`weight_map entry for '${tensor}' must be a file name in the folder, found ${JSON.stringify(shard)}`, file);
    }
    shards.add(shard);
  }
  if (shards.size === 0) throw new FormatError('weight_map is empty', file);
  return [...shards].sort();
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FormatError(`not valid JSON (${(err as Error).message})`, file);
  }
}

/** A linear weight as stored: FP8 codes with block scales, or BF16. [rows, cols] = [out, in]. */
export type LinearWeight =
  | { format: 'fp8'; rows: number; cols: number; data: Uint8Array; scale: Float32Array }
  | { format: 'bf16'; rows: number; cols: number; data: Uint16Array };

/** Reads one linear weight (and its scales) by HF name, e.g. `model.layers.0.self_attn.q_a_proj.weight`. */
export async function readLinear(ckpt: Checkpoint, name: string): Promise<LinearWeight> {
  const entry = ckpt.weights.find((w) => w.spec.name === name);
  if (!entry || entry.spec.kind !== 'linear') throw new FormatError('not a linear weight of this checkpoint', ckpt.name, name);
  const [rows, cols] = entry.spec.shape as [number, number];
  const bytes = await readTensorBytes(entry.weight);
  if (entry.scale) return { format: 'fp8', rows, cols, data: bytes, scale: asFloat32(await readTensorBytes(entry.scale)) };
  return { format: 'bf16', rows, cols, data: asUint16(bytes) };
}

/** Reads a BF16 or F32 tensor (norms, embeddings, router, bias) widened to f32. */
export async function readF32(ckpt: Checkpoint, name: string): Promise<Float32Array> {
  const t = ckpt.tensors.get(name);
  if (!t) throw new FormatError('tensor not found', ckpt.name, name);
  const bytes = await readTensorBytes(t);
  if (t.dtype === 'F32') return asFloat32(bytes);
  if (t.dtype === 'BF16') return bf16ArrayToF32(asUint16(bytes));
  throw new FormatError(`expected BF16 or F32, found ${t.dtype}`, ckpt.name, name);
}
