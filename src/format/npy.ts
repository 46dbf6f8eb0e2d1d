/**
 * NumPy `.npy` files (format versions 1.0, 2.0 and 3.0), for float32 / float64 / int64 arrays in C order:
 *   [0, 6)        magic "\x93NUMPY"
 *   [6, 8)        major, minor version
 *   [8, 10|12)    header length: u16 LE (v1) or u32 LE (v2, v3)
 *   header        Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (T, V), } padded with
 *                 spaces and ending in '\n' so that the data starts at a multiple of 64 bytes
 *   data          little-endian elements, exactly prod(shape) of them
 * https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 * The reader checks everything before it allocates, and fails with FormatError naming the file.
 */
import { FormatError } from '../errors.js';

export type NpyDtype = 'f4' | 'f8' | 'i8';

export type NpyArray =
  | { dtype: 'f4'; shape: number[]; data: Float32Array }
  | { dtype: 'f8'; shape: number[]; data: Float64Array }
  | { dtype: 'i8'; shape: number[]; data: BigInt64Array };

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const ITEM_BYTES: Record<NpyDtype, number> = { f4: 4, f8: 8, i8: 8 };

/** Parses a `.npy` file. `file` names it in error messages. */
export function readNpy(bytes: Uint8Array, file = 'npy'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new FormatError('not a .npy file (bad magic)', file);
  const major = bytes[6]!;
  if (major < 1 || major > 3) throw new FormatError(`unsupported .npy version ${major}.${bytes[7]}`, file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenBytes) throw new FormatError('truncated header length', file);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = 8 + lenBytes + headerLen;
  if (dataStart > bytes.length) throw new FormatError(`header of ${headerLen} bytes runs past the end of the file (${bytes.length} bytes)`, file);
  const decoder = new TextDecoder(major === 3 ? 'utf-8' : 'latin1', { fatal: major === 3 });
  const header = parseHeader(decoder.decode(bytes.subarray(8 + lenBytes, dataStart)), file);
  const count = header.shape.reduce((a, b) => a * b, 1);
  const need = count * ITEM_BYTES[header.dtype];
  if (bytes.length - dataStart !== need) {
    throw new FormatError(`shape (${header.shape.join(', ')}) of ${header.dtype} needs ${need} data bytes, file has ${bytes.length - dataStart}`, file);
  }
  // copy into a fresh, aligned buffer: the data offset need not be a multiple of 8 in a foreign file (and a
  // Node Buffer's slice() would share memory, so copy explicitly)
  const copy = new Uint8Array(need);
  copy.set(bytes.subarray(dataStart, dataStart + need));
  const data = copy.buffer;
  switch (header.dtype) {
    case 'f4':
      return { dtype: 'f4', shape: header.shape, data: new Float32Array(data) };
    case 'f8':
      return { dtype: 'f8', shape: header.shape, data: new Float64Array(data) };
    case 'i8':
      return { dtype: 'i8', shape: header.shape, data: new BigInt64Array(data) };
  }
}

/** Parses the header dict; accepts exactly the three keys numpy writes, in any order. */
function parseHeader(text: string, file: string): { dtype: NpyDtype; shape: number[] } {
  const m = /^\s*\{(.*)\}\s*$/s.exec(text);
  if (!m) throw new FormatError(`header is not a dict literal: ${JSON.stringify(text.slice(0, 80))}`, file);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(m[1]!)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(m[1]!)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(m[1]!)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new FormatError(`header must have 'descr', 'fortran_order' and 'shape': ${JSON.stringify(text.trim())}`, file);
  }
  const dtype = ({ '<f4': 'f4', '<f8': 'f8', '<i8': 'i8' } as Record<string, NpyDtype>)[descr];
  if (dtype === undefined) throw new FormatError(`dtype '${descr}' is not supported (only little-endian <f4, <f8, <i8)`, file);
  if (fortran !== 'False') throw new FormatError('fortran_order arrays are not supported (save with C order)', file);
  const parts = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const shape = parts.map((s) => (/^\d+$/.test(s) ? Number(s) : NaN));
  if (shape.some((d) => !Number.isSafeInteger(d))) throw new FormatError(`shape (${shapeText}) must be non-negative integers`, file);
  if (!Number.isSafeInteger(shape.reduce((a, b) => a * b, 1) * 8)) throw new FormatError(`shape (${shapeText}) is too large`, file);
  return { dtype, shape };
}

/** Serialises an array as a version 1.0 `.npy` file (version 2.0 if the header would not fit in 64 KiB). */
export function writeNpy(data: Float32Array | Float64Array | BigInt64Array, shape: readonly number[]): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || count !== data.length) {
    throw new FormatError(`shape (${shape.join(', ')}) does not match ${data.length} elements`, 'npy');
  }
  const descr = data instanceof Float32Array ? '<f4' : data instanceof Float64Array ? '<f8' : '<i8';
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const major = dict.length + 11 < 65536 ? 1 : 2;
  const prefix = major === 1 ? 10 : 12;
  dict = dict.padEnd(Math.ceil((prefix + dict.length + 1) / 64) * 64 - prefix - 1, ' ') + '\n';
  const out = new Uint8Array(prefix + dict.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, dict.length, true);
  else view.setUint32(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) out[prefix + i] = dict.charCodeAt(i);
  // typed arrays are little-endian on every platform Node and browsers run on
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), prefix + dict.length);
  return out;
}
