/**
 * A checkpoint folder in the HF layout: config.json + model.safetensors (or shards listed by
 * model.safetensors.index.json), optionally tokenizer.json and generation_config.json.
 * Platform-neutral: a `CheckpointFiles` says how to read a file of the folder (Node: fs; browser: fetch / File).
 * Opening validates the config and every header against the weight table; no tensor data is read yet.
 */
import { ConfigError, FormatError, ShapeError } from '../errors.js';
import { asBigInt64, asFloat32, asUint16, openSafetensors, readTensorBytes, type TensorInfo } from '../format/safetensors.js';
import { blobSource, fetchText, httpSource, memorySource, type ByteSource, type FetchFn, type HttpSourceOptions } from '../format/source.js';
import { bf16ArrayToF32 } from '../format/fp8.js';
import { f16ArrayToF32 } from '../format/int4.js';
import { parseConfig, type ModelConfig } from './config.js';
import { checkWeights, leafKey, type CheckedTensor, type LeafFormat, type WeightPosition } from './weights.js';

/** How to reach the files of one checkpoint folder. */
export interface CheckpointFiles {
  /** The folder's name (used as model id). */
  name: string;
  /** Text of a small file, or undefined when it does not exist. */
  readText(file: string): Promise<string | undefined>;
  /** A byte source over a (large) file. */
  open(file: string): Promise<ByteSource>;
}

/** Files held in memory (tests, generated checkpoints, the browser). */
export function memoryFiles(name: string, files: Map<string, Uint8Array> | Record<string, Uint8Array>): CheckpointFiles {
  const map = files instanceof Map ? files : new Map(Object.entries(files));
  return {
    name,
    async readText(file) {
      const bytes = map.get(file);
      return bytes === undefined ? undefined : decodeUtf8(bytes, `${name}/${file}`);
    },
    async open(file) {
      const bytes = map.get(file);
      if (bytes === undefined) throw new FormatError('file not found in the checkpoint', `${name}/${file}`);
      return memorySource(bytes, `${name}/${file}`);
    },
  };
}

/**
 * A checkpoint folder behind a URL (browser or Node fetch): small files with plain GETs (404 = absent; see fetchText), the
 * safetensors files through HTTP Range requests. Opening it tries model.safetensors.index.json, then
 * model.safetensors (openCheckpoint).
 */
export function urlFiles(baseUrl: string, fetchFn: FetchFn = (u, init) => fetch(u, init), opts: HttpSourceOptions = {}): CheckpointFiles {
  const base = baseUrl.endsWith('/') ? baseUrl : baseUrl + '/';
  const urlOf = (file: string): string => base + file.split('/').map(encodeURIComponent).join('/');
  const name = decodeURIComponent(base.replace(/[?#].*$/, '').replace(/\/+$/, '').split('/').pop() || 'model');
  return {
    name,
    async readText(file) {
      // 404, or an HTML page / non-JSON answer (a dev server's SPA fallback) is absent; for config.json, an error
      const r = await fetchText(urlOf(file), fetchFn, { ...opts, maxBytes: MAX_TEXT_FILE_BYTES, required: file === 'config.json' });
      return r.found ? decodeUtf8(r.bytes, urlOf(file)) : undefined;
    },
    open: async (file) => httpSource(urlOf(file), fetchFn, opts),
  };
}

/**
 * A folder picked in the browser (`<input type=file webkitdirectory>` or drag and drop): files are matched by
 * name; when names repeat in subfolders, the one nearest the top wins.
 */
export function fileListFiles(files: readonly File[]): CheckpointFiles {
  const byName = new Map<string, { file: File; depth: number }>();
  let folder: string | undefined;
  for (const f of files) {
    const rel = (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
    const parts = rel.split('/').filter(Boolean);
    folder ??= parts.length > 1 ? parts[0] : undefined;
    const prev = byName.get(f.name);
    if (!prev || parts.length < prev.depth) byName.set(f.name, { file: f, depth: parts.length });
  }
  const name = folder ?? 'model';
  return {
    name,
    async readText(file) {
      const f = byName.get(file)?.file;
      if (!f) return undefined;
      if (f.size > MAX_TEXT_FILE_BYTES) throw new FormatError(`${f.size} bytes is too large for a text file`, `${name}/${file}`);
      return decodeUtf8(new Uint8Array(await f.arrayBuffer()), `${name}/${file}`);
    },
    async open(file) {
      const f = byName.get(file)?.file;
      if (!f) throw new FormatError('file not found in the picked folder', `${name}/${file}`);
      return blobSource(f, `${name}/${file}`);
    },
  };
}

/** config.json, tokenizer.json, the index: none is anywhere near this in real checkpoints. */
const MAX_TEXT_FILE_BYTES = 256 * 2 ** 20;

function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FormatError('not valid UTF-8 text', file);
  }
}

export interface Checkpoint {
  name: string;
  config: ModelConfig;
  /**
   * All tensors of all shards (MTP layers included), validated, keyed by logical name: a Kimi K2.5 checkpoint's
   * `language_model.` prefix is stripped (TensorInfo.name keeps the stored name); its vision tensors keep theirs.
   */
  tensors: Map<string, TensorInfo>;
  /** The weight tree's leaves with their tensors and stored formats, in load order. */
  weights: CheckedTensor[];
  /** Tensors of layers >= num_hidden_layers (MTP) and a K2.5 checkpoint's vision_tower.* / mm_projector.*: present and ignored. */
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

  const { shards: shardNames, weightMap } = await listShards(files);
  const sources: ByteSource[] = [];
  const tensors = new Map<string, TensorInfo>();
  const shardOf = new Map<string, string>();
  try {
    for (const shard of shardNames) {
      const src = await files.open(shard);
      sources.push(src);
      const st = await openSafetensors(src);
      for (const [name, info] of st.tensors) {
        if (shardOf.has(name)) throw new FormatError(`tensor appears in two shards (${shardOf.get(name)} and ${shard})`, `${files.name}/${shard}`, name);
        const listed = weightMap?.get(name);
        if (listed !== undefined && listed !== shard) {
          throw new FormatError(`model.safetensors.index.json puts this tensor in ${listed}, but it is in ${shard}`, `${files.name}/${shard}`, name);
        }
        const key = logicalTensorName(name, config);
        if (tensors.has(key)) throw new FormatError(`tensor is stored twice, as '${tensors.get(key)!.name}' and '${name}'`, `${files.name}/${shard}`, name);
        tensors.set(key, info);
        shardOf.set(name, shard);
      }
    }
    for (const [name, shard] of weightMap ?? []) {
      if (!shardOf.has(name)) throw new FormatError(`model.safetensors.index.json lists this tensor in ${shard}, which does not hold it`, `${files.name}/${shard}`, name);
    }
    const { checked, ignored: mtp, unexpected: extra } = checkWeights(config, tensors, files.name);
    const isVision = (n: string): boolean => config.derived.tensorPrefix !== '' && /^(vision_tower|mm_projector)\./.test(n);
    const ignored = [...mtp, ...extra.filter(isVision)];
    const unexpected = extra.filter((n) => !isVision(n));
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

/** The key of a stored tensor: its name without the K2.5 `language_model.` prefix (docs/model.md §13). */
export function logicalTensorName(stored: string, c: ModelConfig): string {
  const p = c.derived.tensorPrefix;
  return p && stored.startsWith(p) ? stored.slice(p.length) : stored;
}

/** model.safetensors.index.json's weight_map names the shards; otherwise the single model.safetensors. */
async function listShards(files: CheckpointFiles): Promise<{ shards: string[]; weightMap?: Map<string, string> }> {
  const indexText = await files.readText('model.safetensors.index.json');
  if (indexText === undefined) return { shards: ['model.safetensors'] };
  const file = `${files.name}/model.safetensors.index.json`;
  const index = parseJson(indexText, file) as { weight_map?: unknown };
  const map = index?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new FormatError('weight_map must be an object of tensor name -> shard file', file);
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard === '' || shard.includes('/') || shard.includes('\\') || shard === '.' || shard === '..') {
      throw new FormatError(`weight_map entry for '${tensor}' must be a file name in the folder, found ${JSON.stringify(shard)}`, file);
    }
    weightMap.set(tensor, shard);
  }
  if (weightMap.size === 0) throw new FormatError('weight_map is empty', file);
  return { shards: [...new Set(weightMap.values())].sort(), weightMap };
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FormatError(`not valid JSON (${(err as Error).message})`, file);
  }
}

/** Table entries by name, per checkpoint (Kimi K2 has ~70k linear weights: no linear search per read). */
const weightIndex = new WeakMap<Checkpoint, Map<string, CheckedTensor>>();
/** Table entries by position (weights.ts leafKey), per checkpoint. */
const positionIndex = new WeakMap<Checkpoint, Map<string, CheckedTensor>>();

/** A linear weight as stored: FP8 codes with block scales, or BF16. [rows, cols] = [out, in]. */
export type LinearWeight =
  | { format: 'fp8'; rows: number; cols: number; data: Uint8Array; scale: Float32Array }
  | { format: 'bf16'; rows: number; cols: number; data: Uint16Array };

/**
 * An INT4 pack-quantized weight as stored (docs/model.md §13, format/int4.ts): `data` [rows, ⌈cols/8⌉] words, nibble
 * j mod 8 of word j / 8 holds u = q + 8; `scale` [rows, ⌈cols/groupSize⌉] as f32 (widened exactly from the
 * stored BF16/F16/F32), `scaleBf16` the stored BF16 bits when the checkpoint stores BF16 (as Kimi does).
 */
export interface Int4Weight {
  format: 'int4';
  rows: number;
  cols: number;
  groupSize: number;
  data: Uint32Array;
  scale: Float32Array;
  scaleBf16?: Uint16Array;
}

/** Any stored linear weight. */
export type StoredLinear = LinearWeight | Int4Weight;

/** The tree leaf of a name (logical HF name), or a FormatError. */
export function leafOf(ckpt: Checkpoint, name: string): CheckedTensor {
  let byName = weightIndex.get(ckpt);
  if (!byName) weightIndex.set(ckpt, (byName = new Map(ckpt.weights.map((w) => [w.spec.name, w]))));
  const entry = byName.get(name);
  if (!entry) throw new FormatError('not a weight of this checkpoint', ckpt.name, name);
  return entry;
}

/**
 * The checked leaf at a position of the tree (role, layer, expert, slot; e.g. `{ role: 'routed_expert', layer: 3,
 * expert: 7, slot: 'up' }`), or a FormatError: how code outside the loaders' tree walk finds a leaf without
 * spelling its name.
 */
export function leafAt(ckpt: Checkpoint, pos: WeightPosition): CheckedTensor {
  let byPos = positionIndex.get(ckpt);
  if (!byPos) positionIndex.set(ckpt, (byPos = new Map(ckpt.weights.map((w) => [leafKey(w.spec), w]))));
  const entry = byPos.get(leafKey(pos));
  if (!entry) throw new FormatError(`no ${pos.role} leaf '${pos.slot}' at layer ${pos.layer}${pos.expert === undefined ? '' : `, expert ${pos.expert}`} in this checkpoint`, ckpt.name);
  return entry;
}

/** The stored format of a leaf by logical HF name ('fp8' | 'bf16' | 'int4' | 'f32'). */
export function leafFormat(ckpt: Checkpoint, name: string): LeafFormat {
  return leafOf(ckpt, name).format;
}

/**
 * The one stored format of several leaves that go into one GPU stack (a layer's routed experts, the shared
 * expert's gate + up): a FormatError naming the first leaf that differs.
 */
export function stackFormat(ckpt: Checkpoint, names: readonly string[]): LeafFormat {
  return oneFormat(ckpt.name, names.map((n) => leafOf(ckpt, n)));
}

/** stackFormat of checked leaves: the format of the first, a FormatError naming the first leaf that differs. */
export function oneFormat(file: string, leaves: readonly CheckedTensor[]): LeafFormat {
  const first = leaves[0]!;
  for (const l of leaves) {
    if (l.format !== first.format) {
      throw new FormatError(`is stored ${l.format.toUpperCase()} but '${first.spec.name}' of the same stack is ${first.format.toUpperCase()}: a stack needs one format`, file, l.spec.name);
    }
  }
  return first.format;
}

/** The stored format of layer `layer`'s routed experts (all of them: a FormatError if they differ). */
export function expertFormat(ckpt: Checkpoint, layer: number): LeafFormat {
  const leaves: CheckedTensor[] = [];
  for (let expert = 0; expert < ckpt.config.n_routed_experts; expert++) {
    for (const slot of ['gate', 'up', 'down'] as const) leaves.push(leafAt(ckpt, { role: 'routed_expert', layer, expert, slot }));
  }
  return oneFormat(ckpt.name, leaves);
}

/**
 * Reads one linear weight (and its scales) by HF name, e.g. `model.layers.0.self_attn.q_a_proj.weight`: FP8 or
 * BF16 as stored, for callers that take only those two. An INT4 leaf is a FormatError here naming the tensor; the
 * readers of every format (the GPU upload, which runs INT4 dense linears through fp8_gemv_wide_int4, the CPU
 * reference, the expert stacks) use readStoredLinear.
 */
export async function readLinear(ckpt: Checkpoint, name: string): Promise<LinearWeight> {
  const w = await readStoredLinear(ckpt, name);
  if (w.format === 'int4') throw new FormatError('is stored INT4 (pack-quantized); this reader takes FP8 or BF16 only (readStoredLinear reads every format)', ckpt.name, name);
  return w;
}

/**
 * Reads one linear leaf as stored: FP8 + block scales, BF16, or INT4 + group scales (weight_shape checked). The leaf
 * by HF name, or as checked (a tree walk's leaf, or leafAt's).
 */
export async function readStoredLinear(ckpt: Checkpoint, leaf: string | CheckedTensor): Promise<StoredLinear> {
  const entry = typeof leaf === 'string' ? leafOf(ckpt, leaf) : leaf;
  if (entry.spec.kind !== 'linear') throw new FormatError('not a linear weight of this checkpoint', ckpt.name, entry.spec.name);
  const [rows, cols] = entry.spec.shape as [number, number];
  if (entry.format === 'int4') return readInt4(ckpt, entry, rows, cols);
  const bytes = await readTensorBytes(entry.weight);
  if (entry.format === 'fp8') return { format: 'fp8', rows, cols, data: bytes, scale: asFloat32(await readTensorBytes(entry.scale!)) };
  return { format: 'bf16', rows, cols, data: asUint16(bytes) };
}

async function readInt4(ckpt: Checkpoint, entry: CheckedTensor, rows: number, cols: number): Promise<Int4Weight> {
  const q = ckpt.config.quantization_config;
  const groupSize = q?.quant_method === 'compressed-tensors' ? q.group_size : 32;
  await checkInt4WeightShape(entry);
  const pb = await readTensorBytes(entry.weight);
  const words = pb.byteOffset % 4 === 0 ? pb : pb.slice();
  const data = new Uint32Array(words.buffer, words.byteOffset, words.byteLength / 4);
  const scaleT = entry.scale!;
  const bytes = await readTensorBytes(scaleT);
  if (scaleT.dtype === 'BF16') {
    const scaleBf16 = asUint16(bytes);
    return { format: 'int4', rows, cols, groupSize, data, scale: bf16ArrayToF32(scaleBf16), scaleBf16 };
  }
  const scale = scaleT.dtype === 'F32' ? asFloat32(bytes) : f16ArrayToF32(asUint16(bytes));
  return { format: 'int4', rows, cols, groupSize, data, scale };
}

/** An INT4 leaf's `weight_shape` (I32 or I64 [2]) must hold the config's [out, in]: a ShapeError naming it otherwise. */
export async function checkInt4WeightShape(entry: CheckedTensor): Promise<void> {
  const shapeT = entry.shape!;
  const [rows, cols] = entry.spec.shape as [number, number];
  const sb = await readTensorBytes(shapeT);
  const stored = shapeT.dtype === 'I64' ? Array.from(asBigInt64(sb), Number) : Array.from(new Int32Array(sb.slice().buffer));
  if (stored[0] !== rows || stored[1] !== cols) {
    throw new ShapeError(`tensor '${shapeT.name}' (${shapeT.source.name}): holds [${stored.join(', ')}], but the config needs [${rows}, ${cols}]`, shapeT.name, [rows, cols], stored);
  }
}


/** Reads a BF16 or F32 tensor (norms, embeddings, router, bias) widened to f32: by name, or a checked leaf's weight. */
export async function readF32(ckpt: Checkpoint, tensor: string | CheckedTensor): Promise<Float32Array> {
  const name = typeof tensor === 'string' ? tensor : tensor.spec.name;
  const t = typeof tensor === 'string' ? ckpt.tensors.get(name) : tensor.weight;
  if (!t) throw new FormatError('tensor not found', ckpt.name, name);
  const bytes = await readTensorBytes(t);
  if (t.dtype === 'F32') return asFloat32(bytes);
  if (t.dtype === 'BF16') return bf16ArrayToF32(asUint16(bytes));
  throw new FormatError(`expected BF16 or F32, found ${t.dtype}`, ckpt.name, name);
}
