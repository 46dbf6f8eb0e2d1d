/**
 * safetensors reader that validates before it trusts (docs/model.md §2.1):
 *   [0, 8)        u64 LE header length N (<= 100 MB and inside the file)
 *   [8, 8+N)      JSON header: name -> {dtype, shape, data_offsets [begin, end)} relative to the data section
 *   [8+N, EOF)    data; tensors tile it contiguously, no gaps or overlaps, and end exactly at EOF
 * Tensors are read lazily through a ByteSource; nothing is allocated from a size a header claims until the
 * header has been checked against the real file size.
 */
import { FormatError } from '../errors.js';
import type { ByteSource } from './source.js';
import { verifyTensorData } from './verify.js';

export const DTYPE_BITS = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
} as const;
export type Dtype = keyof typeof DTYPE_BITS;

export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Absolute byte offset of the tensor's first byte in its file. */
  offset: number;
  byteLength: number;
  /** The file that holds it. */
  source: ByteSource;
}

export interface SafetensorsFile {
  source: ByteSource;
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Reads and validates the header of one safetensors file. */
export async function openSafetensors(source: ByteSource): Promise<SafetensorsFile> {
  const name = source.name;
  const fileSize = await source.size();
  if (fileSize < 8) throw new FormatError(`file is ${fileSize} bytes, too short for a safetensors header`, name);
  const lenBytes = await source.read(0, 8);
  const headerLen = Number(new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLen > MAX_HEADER_BYTES) throw new FormatError(`header length ${headerLen} exceeds the 100 MB limit: corrupt file`, name);
  if (8 + headerLen > fileSize) throw new FormatError(`header length ${headerLen} runs past the end of the file (${fileSize} bytes): truncated or corrupt`, name);
  const headerBytes = await source.read(8, headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (err) {
    throw new FormatError(`header is not valid UTF-8 JSON (${(err as Error).message})`, name);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new FormatError('header must be a JSON object', name);
  // JSON.parse keeps the last of duplicate keys silently; the reference reader refuses them (docs/model.md §2.1).
  const dup = findDuplicateKey(new TextDecoder().decode(headerBytes));
  if (dup !== undefined) throw new FormatError(`duplicate key ${JSON.stringify(dup)} in the header`, name);
  const dataStart = 8 + headerLen;
  const dataLen = fileSize - dataStart;
  const metadata = parseMetadata((header as Record<string, unknown>).__metadata__, name);
  const tensors = new Map<string, TensorInfo>();
  for (const [key, raw] of Object.entries(header as Record<string, unknown>)) {
    if (key === '__metadata__') continue;
    const info = parseTensorEntry(key, raw, name);
    tensors.set(key, { name: key, dtype: info.dtype, shape: info.shape, offset: dataStart + info.begin, byteLength: info.end - info.begin, source });
  }
  checkTiling([...tensors.values()].map((t) => ({ name: t.name, begin: t.offset - dataStart, end: t.offset - dataStart + t.byteLength })), dataLen, name);
  return { source, metadata, tensors };
}

function parseMetadata(raw: unknown, file: string): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FormatError('__metadata__ must be an object of strings', file);
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw new FormatError(`__metadata__.${k} must be a string, found ${typeof v}`, file);
  }
  return raw as Record<string, string>;
}

function parseTensorEntry(key: string, raw: unknown, file: string): { dtype: Dtype; shape: number[]; begin: number; end: number } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FormatError('entry must be an object', file, key);
  const { dtype, shape, data_offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BITS, dtype)) throw new FormatError(`unknown dtype ${JSON.stringify(dtype)}`, file, key);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new FormatError(`shape ${JSON.stringify(shape)} must be a list of non-negative integers`, file, key);
  }
  if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new FormatError(`data_offsets ${JSON.stringify(data_offsets)} must be two non-negative integers`, file, key);
  }
  const [begin, end] = data_offsets as [number, number];
  if (end < begin) throw new FormatError(`data_offsets [${begin}, ${end}] end before they begin`, file, key);
  const bytes = tensorByteLength(dtype as Dtype, shape as number[]);
  if (bytes === undefined) throw new FormatError(`shape ${JSON.stringify(shape)} x ${dtype} is not a whole number of bytes (or is impossibly large)`, file, key);
  if (bytes !== end - begin) {
    throw new FormatError(`shape ${JSON.stringify(shape)} x ${dtype} needs ${bytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`, file, key);
  }
  return { dtype: dtype as Dtype, shape: shape as number[], begin, end };
}

/**
 * The first key that appears twice in one JSON object of `text` (already known to be valid JSON), at any depth.
 * A linear scan with a stack of key sets; strings are skipped with their escapes.
 */
export function findDuplicateKey(text: string): string | undefined {
  const stack: { keys: Set<string> | null; expectKey: boolean }[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return key;
        top.keys.add(key);
        top.expectKey = false;
      }
      i = j;
    } else if (ch === 0x7b /* { */) stack.push({ keys: new Set(), expectKey: true });
    else if (ch === 0x5b /* [ */) stack.push({ keys: null, expectKey: false });
    else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) stack.pop();
    else if (ch === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return undefined;
}

/** Bytes of a tensor of this dtype and shape, or undefined when not a whole, safe number of bytes. */
export function tensorByteLength(dtype: Dtype, shape: readonly number[]): number | undefined {
  const bits = numel(shape) * DTYPE_BITS[dtype];
  if (!Number.isSafeInteger(bits) || bits % 8 !== 0) return undefined;
  return bits / 8;
}

/** Tensors sorted by offset must tile [0, dataLen) exactly: no gaps, no overlaps, nothing past the end. */
function checkTiling(spans: { name: string; begin: number; end: number }[], dataLen: number, file: string): void {
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const s of spans) {
    if (s.end > dataLen) throw new FormatError(`data [${s.begin}, ${s.end}) runs past the end of the data section (${dataLen} bytes): truncated file`, file, s.name);
    if (s.begin < cursor) throw new FormatError(`data [${s.begin}, ${s.end}) overlaps the previous tensor (ends at ${cursor})`, file, s.name);
    if (s.begin > cursor) throw new FormatError(`gap of ${s.begin - cursor} bytes before this tensor's data at ${s.begin}`, file, s.name);
    cursor = s.end;
  }
  if (cursor !== dataLen) throw new FormatError(`data section is ${dataLen} bytes but tensors cover ${cursor}: trailing bytes or truncated header`, file);
}

/** The raw bytes of one tensor, in a fresh buffer (safe to view as Float32Array etc. after `alignedView`). */
export async function readTensorBytes(t: TensorInfo): Promise<Uint8Array> {
  const bytes = await t.source.read(t.offset, t.byteLength);
  verifyTensorData(t, bytes); // NaN/Inf (and E4M3 NaN codes) are a FormatError on every backend: see verify.ts
  return bytes;
}

/** Typed views over tensor bytes (the buffer from readTensorBytes starts at offset 0, so it is aligned). */
export function asFloat32(bytes: Uint8Array): Float32Array {
  const b = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}
export function asUint16(bytes: Uint8Array): Uint16Array {
  const b = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  return new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
}
export function asFloat64(bytes: Uint8Array): Float64Array {
  const b = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  return new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8);
}
export function asBigInt64(bytes: Uint8Array): BigInt64Array {
  const b = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  return new BigInt64Array(b.buffer, b.byteOffset, b.byteLength / 8);
}
