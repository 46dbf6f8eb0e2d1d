/**
 * Scans tensor data for values that are not finite: NaN / ±Infinity in float tensors, and the NaN codes of the FP8
 * formats (E4M3FN has no infinities; its only NaN codes are 0x7F and 0xFF). A valid checkpoint holds none: the
 * reference quantisers clamp to ±448 before the cast, and scales, norms, biases and embeddings are finite.
 *
 * Why scan at all: a NaN in a scale, a norm or the router bias passed silently and the two backends
 * disagreed about it (E4M3 0x7F decodes as NaN in the CPU reference, as 480 in the GPU decoder, which has no NaN
 * branch). Scanning every tensor as it is read (safetensors.ts readTensorBytes: the one door both loaders use)
 * makes a bad checkpoint the same FormatError, naming the file and the tensor, on both backends, and keeps the
 * decode loops free of checks. `webmoe inspect --verify-data` runs the same scan over every tensor of a
 * checkpoint, in bounded chunks (verifyTensor).
 *
 * Speed: 1- and 2-byte formats are tested four bytes at a time (SWAR on a Uint32Array view), so the scan costs a
 * fraction of reading the bytes; only a word that hits is looked at element by element.
 * Integer dtypes (packed INT4 in U8/I32, token ids) have no non-finite values and are not scanned.
 */
import { FormatError } from '../errors.js';
import type { Dtype, TensorInfo } from './safetensors.js';

/** The first non-finite element of a tensor's bytes: its index and what it is. */
export interface NonFiniteHit {
  index: number;
  what: string;
}

interface Scanner {
  /** Element size in bytes. */
  size: 1 | 2 | 4 | 8;
  /** The test of whole little-endian 32-bit words (firstWordHit), when there is one. */
  word?: WordTest;
  /** Is the element at byte offset `o` not finite? Then a description of it, else undefined. */
  elem: (v: DataView, o: number) => string | undefined;
}

const hex = (b: number): string => `0x${b.toString(16).padStart(2, '0')}`;
const LOW7 = 0x7f7f7f7f;
const HIGH = 0x80808080 | 0;

type WordTest = 'e4m3' | 'e5m2' | 'byte80' | 'byteFF' | 'bf16' | 'f16' | 'f32';

/**
 * Index of the first word of `w` in which some element may be non-finite, from `from`; -1 when none. One loop per
 * test (not a callback per word), so each stays monomorphic and runs at memory speed. The byte tests are SWAR:
 * with every byte of y <= 0x7F, (y + 0x7F7F7F7F) & 0x80808080 has a byte's top bit clear exactly where y's byte
 * is 0 (no carry crosses bytes); for full bytes, the classic haszero (y - 0x01010101) & ~y & 0x80808080.
 */
function firstWordHit(w: Uint32Array, test: WordTest, from: number): number {
  const n = w.length;
  switch (test) {
    case 'e4m3': // a byte with its low 7 bits all ones: 0x7F / 0xFF
      for (let k = from; k < n; k++) if ((((((w[k]! & LOW7) ^ LOW7) + LOW7) & HIGH)) !== HIGH) return k;
      return -1;
    case 'e5m2': // exponent bits 0x7C all ones
      for (let k = from; k < n; k++) if ((((((w[k]! & 0x7c7c7c7c) ^ 0x7c7c7c7c) + LOW7) & HIGH)) !== HIGH) return k;
      return -1;
    case 'byte80':
      for (let k = from; k < n; k++) {
        const y = (w[k]! ^ HIGH) >>> 0;
        if (((y - 0x01010101) & ~y & HIGH) !== 0) return k;
      }
      return -1;
    case 'byteFF':
      for (let k = from; k < n; k++) {
        const y = ~w[k]! >>> 0;
        if (((y - 0x01010101) & ~y & HIGH) !== 0) return k;
      }
      return -1;
    case 'bf16':
      for (let k = from; k < n; k++) {
        const x = w[k]!;
        if ((x & 0x7f80) === 0x7f80 || (x & 0x7f800000) === 0x7f800000) return k;
      }
      return -1;
    case 'f16':
      for (let k = from; k < n; k++) {
        const x = w[k]!;
        if ((x & 0x7c00) === 0x7c00 || (x & 0x7c000000) === 0x7c000000) return k;
      }
      return -1;
    case 'f32':
      for (let k = from; k < n; k++) if ((w[k]! & 0x7f800000) === 0x7f800000) return k;
      return -1;
  }
}

const SCANNERS: Partial<Record<Dtype, Scanner>> = {
  F8_E4M3: {
    size: 1,
    word: 'e4m3',
    elem: (v, o) => ((v.getUint8(o) & 0x7f) === 0x7f ? `E4M3 NaN code ${hex(v.getUint8(o))}` : undefined),
  },
  F8_E5M2: {
    size: 1,
    word: 'e5m2',
    elem: (v, o) => ((v.getUint8(o) & 0x7c) === 0x7c ? `E5M2 Inf/NaN code ${hex(v.getUint8(o))}` : undefined),
  },
  F8_E4M3FNUZ: { size: 1, word: 'byte80', elem: (v, o) => (v.getUint8(o) === 0x80 ? 'FNUZ NaN code 0x80' : undefined) },
  F8_E5M2FNUZ: { size: 1, word: 'byte80', elem: (v, o) => (v.getUint8(o) === 0x80 ? 'FNUZ NaN code 0x80' : undefined) },
  F8_E8M0: { size: 1, word: 'byteFF', elem: (v, o) => (v.getUint8(o) === 0xff ? 'E8M0 NaN code 0xff' : undefined) },
  BF16: {
    size: 2,
    word: 'bf16',
    elem: (v, o) => {
      const u = v.getUint16(o, true);
      return (u & 0x7f80) === 0x7f80 ? (u & 0x7f ? 'NaN' : u & 0x8000 ? '-Infinity' : 'Infinity') : undefined;
    },
  },
  F16: {
    size: 2,
    word: 'f16',
    elem: (v, o) => {
      const u = v.getUint16(o, true);
      return (u & 0x7c00) === 0x7c00 ? (u & 0x3ff ? 'NaN' : u & 0x8000 ? '-Infinity' : 'Infinity') : undefined;
    },
  },
  F32: {
    size: 4,
    word: 'f32',
    elem: (v, o) => {
      const x = v.getFloat32(o, true);
      return Number.isFinite(x) ? undefined : String(x);
    },
  },
  F64: {
    size: 8,
    elem: (v, o) => {
      const x = v.getFloat64(o, true);
      return Number.isFinite(x) ? undefined : String(x);
    },
  },
};

/** True when `dtype` can hold non-finite values (the scan does something). */
export function scansDtype(dtype: Dtype): boolean {
  return SCANNERS[dtype] !== undefined;
}

/**
 * The first non-finite element of `bytes` (a tensor's data, or a chunk of it starting at element `firstIndex`),
 * or undefined. Integer dtypes: always undefined.
 */
export function findNonFinite(dtype: Dtype, bytes: Uint8Array, firstIndex = 0): NonFiniteHit | undefined {
  const s = SCANNERS[dtype];
  if (!s) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Math.floor(bytes.byteLength / s.size);
  const at = (from: number, to: number): NonFiniteHit | undefined => {
    for (let i = from; i < to; i++) {
      const what = s.elem(view, i * s.size);
      if (what !== undefined) return { index: firstIndex + i, what };
    }
    return undefined;
  };
  // fast path: whole aligned 32-bit words; a word that hits is resolved element by element
  if (s.word && s.size <= 4 && bytes.byteOffset % 4 === 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.byteLength / 4));
    const per = 4 / s.size;
    for (let k = firstWordHit(words, s.word, 0); k >= 0; k = firstWordHit(words, s.word, k + 1)) {
      const hit = at(k * per, k * per + per);
      if (hit) return hit;
    }
    return at(words.length * per, n);
  }
  return at(0, n);
}

function nonFiniteError(t: Pick<TensorInfo, 'name' | 'dtype'> & { source: { name: string } }, hit: NonFiniteHit): FormatError {
  const fix =
    t.dtype === 'F8_E4M3'
      ? 'a valid E4M3 checkpoint holds no NaN codes (quantisers clamp to ±448 first): the file is corrupt or was exported without clamping; re-export or re-download it'
      : 'a valid checkpoint holds only finite values here: the file is corrupt or was exported from a model that had diverged; re-export or re-download it';
  return new FormatError(`element ${hit.index} is ${hit.what} (${t.dtype}): ${fix}`, t.source.name, t.name);
}

/** Throws a FormatError naming the file and the tensor when `bytes` (all of t's data) holds a non-finite value. */
export function verifyTensorData(t: Pick<TensorInfo, 'name' | 'dtype'> & { source: { name: string } }, bytes: Uint8Array): void {
  const hit = findNonFinite(t.dtype, bytes);
  if (hit) throw nonFiniteError(t, hit);
}

/** Reads `t` in chunks of at most `chunkBytes` and scans each (bounded memory for multi-GiB tensors). */
export async function verifyTensor(t: TensorInfo, chunkBytes = 64 << 20): Promise<void> {
  const s = SCANNERS[t.dtype];
  if (!s) return;
  const step = Math.max(s.size, chunkBytes - (chunkBytes % 8));
  for (let off = 0; off < t.byteLength; off += step) {
    const bytes = await t.source.read(t.offset + off, Math.min(step, t.byteLength - off));
    const hit = findNonFinite(t.dtype, bytes, off / s.size);
    if (hit) throw nonFiniteError(t, hit);
  }
}
