/**
 * INT4 pack-quantized (docs/model.md §13) against an independent transcription of its rules, written here without
 * src/format/int4.ts: codes and scales bit-identical on random tensors (every one of the 16 codes seen in every
 * one of the 8 nibble positions), the packing order (first element in the lowest nibble), dequantisation
 * `(u - 8) * scale` (not a two's-complement nibble), the epsilon clamp of an all-zero group, and the refusal of
 * a row length that is not a multiple of the group size. The golden int4 fixture decodes by the same formula.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { dequantizeInt4, quantizeInt4 } from '../../src/format/int4.js';
import { asUint16, openSafetensors, readTensorBytes } from '../../src/format/safetensors.js';
import { memorySource } from '../../src/format/source.js';
import { Rng } from '../../src/model/toy.js';
import { golden } from './shared-paths.js';

// --- an independent transcription of docs/model.md §13 (DataView-based bf16, f64 arithmetic with explicit roundings) ---
const dv = new DataView(new ArrayBuffer(4));
/** x (a number) -> f32 -> bf16 (RNE on the 16 dropped bits), as the f32 value of the bf16. */
function bf16(x: number): number {
  dv.setFloat32(0, x);
  const b = dv.getUint32(0);
  const lower = b & 0xffff;
  let upper = b >>> 16;
  if (lower > 0x8000 || (lower === 0x8000 && (upper & 1) === 1)) upper += 1;
  dv.setUint32(0, (upper << 16) >>> 0);
  return dv.getFloat32(0);
}
function bf16Bits(v: number): number {
  dv.setFloat32(0, v);
  return dv.getUint32(0) >>> 16;
}
function rhe(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}
/** Codes q in -8..7 and bf16 scale bits per the four rules. */
function referenceQuantize(w: Float32Array, rows: number, cols: number, G = 32): { q: Int8Array; scaleBits: Uint16Array } {
  const q = new Int8Array(rows * cols);
  const scaleBits = new Uint16Array(rows * (cols / G));
  for (let i = 0; i < rows; i++) {
    for (let g = 0; g < cols / G; g++) {
      const vals: number[] = [];
      for (let j = 0; j < G; j++) vals.push(bf16(w[i * cols + g * G + j]!)); // rule 1: BF16 first
      const amax = Math.max(Math.abs(Math.min(...vals, 0)), Math.max(...vals, 0));
      let s = bf16(Math.fround(amax / 7.5)); // rule 2
      if (s < 2 ** -23) s = 2 ** -23;
      scaleBits[i * (cols / G) + g] = bf16Bits(s);
      for (let j = 0; j < G; j++) q[i * cols + g * G + j] = rhe(Math.min(7, Math.max(-8, bf16(Math.fround(vals[j]! / s))))); // rule 3
    }
  }
  return { q, scaleBits };
}

function nibble(packed: Uint32Array, cols: number, i: number, j: number): number {
  return (packed[i * Math.ceil(cols / 8) + (j >> 3)]! >>> (4 * (j % 8))) & 15;
}

describe('INT4 pack-quantized (docs/model.md §13)', () => {
  it('codes and scales are bit-identical to the spec rules on random tensors, all 16 codes in all 8 nibble positions', () => {
    const seen = new Set<string>();
    for (const [seed, rows, cols, std] of [[1, 64, 256, 1], [2, 33, 96, 0.02], [3, 128, 64, 300], [4, 7, 32, 1e-30]] as const) {
      const rng = new Rng(seed, 'int4');
      const w = rng.fillNormal(new Float32Array(rows * cols), 0, std);
      if (seed === 1) for (let k = 0; k < 200; k++) w[(k * 37) % w.length] = -w[(k * 37) % w.length]! * 1.7; // heavier tails
      const ours = quantizeInt4(w, rows, cols);
      const ref = referenceQuantize(w, rows, cols);
      expect(Array.from(ours.scale)).toEqual(Array.from(ref.scaleBits));
      let mismatches = 0;
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols; j++) {
          const u = nibble(ours.packed, cols, i, j);
          if (u !== ref.q[i * cols + j]! + 8 && mismatches++ < 10) expect.fail(`seed ${seed}: code at [${i}, ${j}] is u=${u}, spec gives q=${ref.q[i * cols + j]}`);
          seen.add(`${j % 8}:${u}`);
        }
      }
      expect(mismatches).toBe(0);
    }
    // a crafted row adds the rarest code (u = 0: q = -8 needs w / scale <= -7.5) in every position
    const crafted = new Float32Array(8 * 32);
    for (let p = 0; p < 8; p++) {
      for (let j = 0; j < 32; j++) crafted[p * 32 + j] = j === p ? -7.5 : ((j % 15) - 7) * 0.5;
    }
    const c = quantizeInt4(crafted, 8, 32);
    for (let p = 0; p < 8; p++) {
      expect(nibble(c.packed, 32, p, p)).toBe(0);
      seen.add(`${p}:0`);
    }
    for (let pos = 0; pos < 8; pos++) for (let u = 0; u < 16; u++) expect(seen.has(`${pos}:${u}`), `code ${u} in nibble ${pos}`).toBe(true);
  });

  it('packs the first element into the lowest nibble, stores u = q + 8, and decodes (u - 8) * scale exactly', () => {
    // scale 1 (amax 7.5): row = -7.5 (q -8, tie to even), -7 .. 7, then zeros
    const row = new Float32Array(32);
    row[0] = -7.5;
    for (let k = 1; k < 16; k++) row[k] = k - 8;
    const q = quantizeInt4(row, 1, 32);
    expect(q.scale[0]).toBe(0x3f80); // bf16 1.0
    expect(q.packed[0]).toBe(0x76543210 >>> 0); // u = 0, 1, ..., 7 from the lowest nibble up
    expect(q.packed[1]).toBe(0xfedcba98 >>> 0);
    expect(q.packed[2]).toBe(0x88888888 >>> 0); // zeros: u = 8
    const w = dequantizeInt4(q.packed, new Float32Array([1]), 1, 32);
    expect(Array.from(w.subarray(0, 16))).toEqual([-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7]);
    // not a two's-complement nibble: u = 15 is +7, u = 0 is -8
    expect(Array.from(dequantizeInt4(new Uint32Array([0xf0]), new Float32Array([0.5]), 1, 2))).toEqual([-4, 3.5]);
  });

  it('an all-zero group gets the f32 epsilon as scale and code 8; a ragged last word decodes only its columns', () => {
    const q = quantizeInt4(new Float32Array(64), 2, 32);
    expect(Array.from(new Set(q.scale))).toEqual([bf16Bits(2 ** -23)]);
    expect(Array.from(new Set(q.packed))).toEqual([0x88888888]);
    // cols = 12: two words per row, the second half-used; groups of 32 -> one scale per row
    const w = dequantizeInt4(new Uint32Array([0x89abcdef, 0x00007654, 0x88888888, 0x00008888]), new Float32Array([2, 3]), 2, 12);
    expect(Array.from(w.subarray(0, 12))).toEqual([14, 12, 10, 8, 6, 4, 2, 0, -8, -6, -4, -2]);
    expect(Array.from(w.subarray(12))).toEqual(new Array(12).fill(0));
  });

  it('refuses a row length that is not a multiple of the group size', () => {
    expect(() => quantizeInt4(new Float32Array(40), 1, 40)).toThrow(InputError);
    expect(() => quantizeInt4(new Float32Array(40), 1, 40)).toThrow(/not a multiple of the group size 32/);
  });

  it('the golden int4 fixture decodes by (u - 8) * scale', async () => {
    const st = await openSafetensors(memorySource(new Uint8Array(readFileSync(`${golden('int4')}/model.safetensors`))));
    const m = 'model.layers.1.mlp.experts.3.down_proj';
    const packed = st.tensors.get(`${m}.weight_packed`)!;
    const scale = st.tensors.get(`${m}.weight_scale`)!;
    const [rows, words] = packed.shape as [number, number];
    const cols = words * 8;
    const pb = await readTensorBytes(packed);
    const p = new Uint32Array(pb.slice().buffer);
    const s = asUint16(await readTensorBytes(scale));
    const sf = new Float32Array(s.length);
    for (let k = 0; k < s.length; k++) {
      dv.setUint32(0, s[k]! << 16);
      sf[k] = dv.getFloat32(0);
    }
    const ours = dequantizeInt4(p, sf, rows, cols);
    const codes = new Set<number>();
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        const u = nibble(p, cols, i, j);
        codes.add(u);
        expect(ours[i * cols + j]).toBe((u - 8) * sf[i * (cols / 32) + Math.floor(j / 32)]!);
      }
    }
    expect(codes.size).toBeGreaterThanOrEqual(15);
  });
});
