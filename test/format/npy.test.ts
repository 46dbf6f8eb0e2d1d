/** The .npy reader and writer: round trips, a file written by NumPy, and every malformed input a typed error. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { readNpy, writeNpy } from '../../src/format/npy.js';
import { GOLDEN_DIR } from '../model/reference-fixtures.js';

/** Builds a .npy by hand: version, header text (padded to 64 with a newline), raw data bytes. */
function npy(header: string, data: Uint8Array, major = 1): Uint8Array {
  const prefix = major === 1 ? 10 : 12;
  const padded = header.padEnd(Math.ceil((prefix + header.length + 1) / 64) * 64 - prefix - 1, ' ') + '\n';
  const out = new Uint8Array(prefix + padded.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const v = new DataView(out.buffer);
  if (major === 1) v.setUint16(8, padded.length, true);
  else v.setUint32(8, padded.length, true);
  out.set(new TextEncoder().encode(padded), prefix);
  out.set(data, prefix + padded.length);
  return out;
}

const f4 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);

describe('writeNpy / readNpy', () => {
  it.each([
    ['f4', Float32Array.from([1.5, -2, 3.25, 0, 1e-30, -7]), [2, 3]],
    ['f8', Float64Array.from([Math.PI, -1e300, 0.1]), [3]],
    ['i8', BigInt64Array.from([1n, -2n, 9007199254740993n, 0n]), [2, 1, 2]],
    ['f4', new Float32Array(0), [0, 5]],
    ['f8', Float64Array.from([42]), []],
  ] as const)('round trips %s (case %#)', (dtype, data, shape) => {
    const bytes = writeNpy(data, shape as unknown as number[]);
    expect((bytes.length - data.byteLength) % 64).toBe(0); // data starts on a 64-byte boundary
    const back = readNpy(bytes);
    expect(back.dtype).toBe(dtype);
    expect(back.shape).toEqual(shape);
    expect(Array.from(back.data as ArrayLike<unknown>)).toEqual(Array.from(data as ArrayLike<unknown>));
  });

  it('writes the header NumPy writes', () => {
    const header = (b: Uint8Array) => new TextDecoder().decode(b.subarray(10, 10 + (b[8]! | (b[9]! << 8))));
    expect(header(writeNpy(new Float32Array(6), [2, 3]))).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\), \} +\n$/);
    expect(header(writeNpy(new Float32Array(4), [4]))).toContain("'shape': (4,), }");
  });

  it('reads a version 2.0 file and a header with keys in another order', () => {
    const a = readNpy(npy("{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}", f4([1, 2]), 2));
    expect(a.shape).toEqual([2]);
    expect(Array.from(a.data as Float32Array)).toEqual([1, 2]);
  });

  it('reads from a Node Buffer that is a slice of a larger pool', () => {
    const bytes = writeNpy(Float32Array.from([1, 2, 3]), [3]);
    const pool = Buffer.alloc(bytes.length + 13);
    pool.set(bytes, 13);
    expect(Array.from(readNpy(pool.subarray(13)).data as Float32Array)).toEqual([1, 2, 3]);
  });

  it.skipIf(!GOLDEN_DIR || !existsSync(join(GOLDEN_DIR ?? '', 'tiny/logits.npy')))('reads NumPy-written golden logits', () => {
    const a = readNpy(readFileSync(join(GOLDEN_DIR!, 'tiny/logits.npy')), 'tiny/logits.npy');
    expect(a.dtype).toBe('f4');
    expect(a.shape).toEqual([12, 128]);
    expect((a.data as Float32Array).every(Number.isFinite)).toBe(true);
  });

  it.skipIf(!GOLDEN_DIR || !existsSync(join(GOLDEN_DIR ?? '', 'tiny/logits.npy')))('writes byte for byte what NumPy wrote', () => {
    const file = new Uint8Array(readFileSync(join(GOLDEN_DIR!, 'tiny/logits.npy')));
    const a = readNpy(file);
    expect(writeNpy(a.data, a.shape)).toEqual(file);
  });

  it('refuses a shape that does not match the data', () => {
    expect(() => writeNpy(new Float32Array(5), [2, 3])).toThrow(FormatError);
  });
});

describe('readNpy rejects malformed files with FormatError', () => {
  const good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const cases: [string, Uint8Array, RegExp][] = [
    ['bad magic', new TextEncoder().encode('NOTNUMPY0000'), /bad magic/],
    ['empty', new Uint8Array(0), /bad magic/],
    ['version 4', npy(good, f4([1, 2]), 4), /unsupported .npy version/],
    ['big-endian', npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", f4([1, 2])), /dtype '>f4'/],
    ['float16', npy("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", new Uint8Array(4)), /dtype '<f2'/],
    ['fortran order', npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", f4([1, 2])), /fortran_order/],
    ['missing shape', npy("{'descr': '<f4', 'fortran_order': False, }", f4([1, 2])), /must have/],
    ['bad shape', npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }", f4([1, 2])), /non-negative integers/],
    ['not a dict', npy("['descr', '<f4']", f4([1, 2])), /not a dict/],
    ['truncated data', npy(good, f4([1])), /needs 8 data bytes, file has 4/],
    ['trailing data', npy(good, f4([1, 2, 3])), /needs 8 data bytes, file has 12/],
    ['header past the end', npy(good, f4([1, 2])).subarray(0, 40), /runs past the end/],
    ['huge shape', npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", new Uint8Array(0)), /too large/],
  ];
  it.each(cases)('%s', (_name, bytes, message) => {
    let err: unknown;
    try {
      readNpy(bytes, 'x.npy');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).file).toBe('x.npy');
    expect((err as Error).message).toMatch(message);
  });
});
