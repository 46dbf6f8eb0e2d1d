/**
 * A minimal safetensors writer (spec §2.1), for dumps such as `webmoe logits --taps`: u64 LE header length,
 * a JSON header padded with spaces to a multiple of 8 bytes, then the tensors back to back in name order.
 * The reader in safetensors.ts accepts exactly what this writes.
 */
import { FormatError } from '../errors.js';

export interface TensorToWrite {
  name: string;
  shape: readonly number[];
  /** The dtype follows the array: Float32Array → F32, Float64Array → F64, BigInt64Array → I64, Int32Array → I32. */
  data: Float32Array | Float64Array | BigInt64Array | Int32Array;
}

function dtypeOf(data: TensorToWrite['data']): string {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof BigInt64Array) return 'I64';
  return 'I32';
}

/** Serialises tensors (sorted by name) with optional string metadata. */
export function writeSafetensors(tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): Uint8Array {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of sorted) {
    if (t.name === '__metadata__' || t.name in header) throw new FormatError('duplicate or reserved tensor name', 'safetensors', t.name);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) throw new FormatError(`shape [${t.shape.join(', ')}] does not match ${t.data.length} elements`, 'safetensors', t.name);
    header[t.name] = { dtype: dtypeOf(t.data), shape: [...t.shape], data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerBytes = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20); // pad with ASCII spaces
  headerBytes.set(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of sorted) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}
