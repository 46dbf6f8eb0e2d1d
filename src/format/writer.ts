/**
 * safetensors writer (docs/model.md §2.1, §2.2), single file or K shards with `model.safetensors.index.json`.
 * The layout (header, offsets) is computed first from names, dtypes and shapes; tensor bytes are then written
 * with positioned writes in any order and in pieces (e.g. 128-row stripes of a weight), so a multi-GB
 * checkpoint is produced with memory for one stripe. Platform-neutral: the file sink is an interface
 * (memory here, Node files in node-writer.ts).
 */
import { InputError, ShapeError } from '../errors.js';
import { DTYPE_BITS, tensorByteLength, type Dtype } from './safetensors.js';

export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
}

export interface PlacedTensor extends TensorEntry {
  /** [begin, end) relative to the data section, as in the header's data_offsets. */
  begin: number;
  end: number;
}

export interface SafetensorsLayout {
  /** u64 header length + JSON header padded with spaces to a multiple of 8. */
  header: Uint8Array;
  /** Absolute offset of the data section (= header.length). */
  dataStart: number;
  tensors: Map<string, PlacedTensor>;
  fileSize: number;
}

/**
 * Places tensors like the official writer: sorted by descending dtype alignment, then name, so that with a header
 * padded to 8 bytes every tensor starts at a multiple of its element size.
 */
export function layoutSafetensors(entries: readonly TensorEntry[], metadata: Record<string, string> = { format: 'pt' }): SafetensorsLayout {
  const seen = new Set<string>();
  for (const e of entries) {
    if (e.name === '__metadata__') throw new InputError(`'__metadata__' cannot be a tensor name`);
    if (seen.has(e.name)) throw new InputError(`tensor '${e.name}' is listed twice`);
    seen.add(e.name);
  }
  const sorted = [...entries].sort((a, b) => DTYPE_BITS[b.dtype] - DTYPE_BITS[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const tensors = new Map<string, PlacedTensor>();
  const json: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) json.__metadata__ = metadata;
  let cursor = 0;
  for (const e of sorted) {
    const n = tensorByteLength(e.dtype, e.shape);
    if (n === undefined || e.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw new ShapeError(`tensor '${e.name}': shape [${e.shape.join(', ')}] x ${e.dtype} is not a whole number of bytes`, e.name, e.shape);
    }
    const placed = { name: e.name, dtype: e.dtype, shape: [...e.shape], begin: cursor, end: cursor + n };
    tensors.set(e.name, placed);
    json[e.name] = { dtype: e.dtype, shape: placed.shape, data_offsets: [placed.begin, placed.end] };
    cursor += n;
  }
  const text = JSON.stringify(json);
  const utf8 = new TextEncoder();
  let body = utf8.encode(text);
  const pad = (8 - (body.length % 8)) % 8;
  if (pad) body = utf8.encode(text + ' '.repeat(pad));
  const header = new Uint8Array(8 + body.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(body.length), true);
  header.set(body, 8);
  return { header, dataStart: header.length, tensors, fileSize: header.length + cursor };
}

/** One in-memory safetensors file (tests, small files). */
export function encodeSafetensors(tensors: readonly (TensorEntry & { data: Uint8Array })[], metadata?: Record<string, string>): Uint8Array {
  const layout = layoutSafetensors(tensors, metadata);
  const out = new Uint8Array(layout.fileSize);
  out.set(layout.header, 0);
  for (const t of tensors) {
    const p = layout.tensors.get(t.name)!;
    if (t.data.length !== p.end - p.begin) {
      throw new ShapeError(`tensor '${t.name}': ${t.data.length} bytes given, shape [${t.shape.join(', ')}] x ${t.dtype} needs ${p.end - p.begin}`, t.name);
    }
    out.set(t.data, layout.dataStart + p.begin);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Files and shards

/** A file open for positioned writes. */
export interface RandomAccessSink {
  writeAt(offset: number, bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Where a checkpoint folder is written. */
export interface FolderSink {
  /** Creates (or replaces) a file of exactly `size` bytes for positioned writes. */
  create(file: string, size: number): Promise<RandomAccessSink>;
  writeText(file: string, text: string): Promise<void>;
}

/** A folder in memory: `files` maps file name to bytes (text files UTF-8 encoded). */
export function memoryFolder(): FolderSink & { files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  return {
    files,
    async create(file, size) {
      const buf = new Uint8Array(size);
      files.set(file, buf);
      return {
        async writeAt(offset, bytes) {
          if (offset < 0 || offset + bytes.length > size) throw new InputError(`write of ${bytes.length} bytes at ${offset} is outside ${file} (${size} bytes)`);
          buf.set(bytes, offset);
        },
        close: async () => {},
      };
    },
    async writeText(file, text) {
      files.set(file, new TextEncoder().encode(text));
    },
  };
}

export interface ShardPlan {
  /** The safetensors files in order, with their layouts. */
  files: { file: string; layout: SafetensorsLayout }[];
  /** Tensor name -> file. */
  shardOf: Map<string, string>;
  /** model.safetensors.index.json when there is more than one file. */
  index?: { metadata: { total_size: number }; weight_map: Record<string, string> };
}

/**
 * HF shard file names: model-00001-of-00004.safetensors. `totalDigits` pads the total wider (Kimi K2-Thinking /
 * K2.5 write model-00001-of-000062.safetensors: a reader must never parse counts out of names, docs/model.md §2.2).
 */
export function shardFileName(i: number, k: number, totalDigits = 5): string {
  const w = Math.max(5, String(k).length);
  return `model-${String(i + 1).padStart(w, '0')}-of-${String(k).padStart(Math.max(w, totalDigits), '0')}.safetensors`;
}

/**
 * Splits tensors, in the given order, into `k` files of about equal bytes (a tensor goes to the shard where its
 * first byte falls, so a weight's scale, listed after it, can land in the next shard, as in real checkpoints).
 * k = 1 gives the single `model.safetensors` and no index.
 */
export function planShards(entries: readonly TensorEntry[], k = 1, metadata?: Record<string, string>, totalDigits?: number): ShardPlan {
  if (!Number.isSafeInteger(k) || k < 1) throw new InputError(`shard count must be a positive integer, got ${k}`, 'shards');
  if (k > 1 && k > entries.length) throw new InputError(`cannot split ${entries.length} tensors into ${k} non-empty shards`, 'shards');
  const sizes = entries.map((e) => {
    const n = tensorByteLength(e.dtype, e.shape);
    if (n === undefined) throw new ShapeError(`tensor '${e.name}': shape [${e.shape.join(', ')}] x ${e.dtype} is not a whole number of bytes`, e.name);
    return n;
  });
  const total = sizes.reduce((a, b) => a + b, 0);
  const groups: TensorEntry[][] = Array.from({ length: k }, () => []);
  let start = 0;
  let prev = 0;
  entries.forEach((e, i) => {
    const ideal = total > 0 ? Math.floor((start * k) / total) : Math.floor((i * k) / entries.length);
    // non-decreasing, at most one shard further per tensor, and enough tensors left to fill the remaining shards
    const lo = Math.max(prev, k - (entries.length - i));
    const hi = Math.min(i === 0 ? 0 : prev + 1, k - 1);
    const s = Math.min(Math.max(ideal, lo), hi);
    groups[s]!.push(e);
    prev = s;
    start += sizes[i]!;
  });
  const shardOf = new Map<string, string>();
  const files = groups.map((g, i) => {
    const file = k === 1 ? 'model.safetensors' : shardFileName(i, k, totalDigits);
    for (const e of g) shardOf.set(e.name, file);
    return { file, layout: layoutSafetensors(g, metadata) };
  });
  if (k === 1) return { files, shardOf };
  const weight_map: Record<string, string> = {};
  for (const e of [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) weight_map[e.name] = shardOf.get(e.name)!;
  return { files, shardOf, index: { metadata: { total_size: total }, weight_map } };
}

/**
 * Writes the tensors of a ShardPlan. Each tensor's bytes come through `write(name, bytes)` calls in order (one
 * call with the whole tensor, or several consecutive pieces); `close` checks that every tensor was completed
 * and writes the index.
 */
export class CheckpointWriter {
  private readonly written = new Map<string, number>();
  private constructor(
    private readonly plan: ShardPlan,
    private readonly sinks: Map<string, RandomAccessSink>,
    private readonly folder: FolderSink,
  ) {}

  static async create(plan: ShardPlan, folder: FolderSink): Promise<CheckpointWriter> {
    const sinks = new Map<string, RandomAccessSink>();
    try {
      for (const { file, layout } of plan.files) {
        const sink = await folder.create(file, layout.fileSize);
        sinks.set(file, sink);
        await sink.writeAt(0, layout.header);
      }
    } catch (err) {
      await Promise.all([...sinks.values()].map((s) => s.close().catch(() => {})));
      throw err;
    }
    return new CheckpointWriter(plan, sinks, folder);
  }

  /** Appends `bytes` to tensor `name` (pieces must come in order). */
  async write(name: string, bytes: Uint8Array): Promise<void> {
    const file = this.plan.shardOf.get(name);
    if (file === undefined) throw new InputError(`tensor '${name}' is not in the plan`);
    const { layout } = this.plan.files.find((f) => f.file === file)!;
    const t = layout.tensors.get(name)!;
    const done = this.written.get(name) ?? 0;
    if (done + bytes.length > t.end - t.begin) {
      throw new ShapeError(`tensor '${name}': ${done + bytes.length} bytes written, shape [${t.shape.join(', ')}] x ${t.dtype} holds ${t.end - t.begin}`, name);
    }
    await this.sinks.get(file)!.writeAt(layout.dataStart + t.begin + done, bytes);
    this.written.set(name, done + bytes.length);
  }

  /** Tensor byte counts still missing (empty when complete). */
  missing(): string[] {
    const out: string[] = [];
    for (const { layout } of this.plan.files) {
      for (const t of layout.tensors.values()) if ((this.written.get(t.name) ?? 0) !== t.end - t.begin) out.push(t.name);
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.sinks.values()].map((s) => s.close()));
    const missing = this.missing();
    if (missing.length) throw new InputError(`checkpoint incomplete: ${missing.length} tensors not fully written (first: '${missing[0]}')`);
    if (this.plan.index) await this.folder.writeText('model.safetensors.index.json', JSON.stringify(this.plan.index, null, 2) + '\n');
  }
}
