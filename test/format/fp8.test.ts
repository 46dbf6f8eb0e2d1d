/**
 * FP8 E4M3FN and BF16 encoders against docs/model.md §3.1/§3.2, and block (de)quantisation against §3.3/§3.4.
 */
import { describe, expect, it } from 'vitest';
import {
  bf16ArrayToF32,
  bf16ToF32,
  decodeE4M3,
  dequantizeFp8Block,
  E4M3_TABLE,
  encodeE4M3,
  encodeE4M3Array,
  f32ArrayToBf16,
  f32ToBf16,
  quantizeFp8Block,
} from '../../src/format/fp8.js';
import { InputError, ShapeError } from '../../src/errors.js';
import { Rng } from '../../src/model/toy.js';

/** Spec §3.1, written out independently: normal codes by the f32 bit construction, subnormals m * 2^-9. */
function specValue(b: number): number {
  const s = b >> 7;
  const e = (b >> 3) & 15;
  const m = b & 7;
  if (e === 15 && m === 7) return NaN;
  if (e === 0) return (s ? -1 : 1) * m * 2 ** -9;
  const f = new Float32Array(new Uint32Array([(s << 31) | ((e + 120) << 23) | (m << 20)]).buffer);
  return f[0]!;
}

const finiteCodes = [...Array(256).keys()].filter((b) => (b & 0x7f) !== 0x7f);
const encodeOne = (x: number): number => encodeE4M3Array(new Float32Array([x]))[0]!;

describe('E4M3FN decode', () => {
  it('matches the spec formula for all 256 codes', () => {
    for (let b = 0; b < 256; b++) {
      const want = specValue(b);
      if (Number.isNaN(want)) {
        expect(b === 0x7f || b === 0xff, `code ${b}`).toBe(true);
        expect(E4M3_TABLE[b]).toBeNaN();
        expect(decodeE4M3(b)).toBeNaN();
      } else {
        expect(Object.is(E4M3_TABLE[b], want), `code 0x${b.toString(16)}: ${E4M3_TABLE[b]} vs ${want}`).toBe(true);
        expect(Object.is(decodeE4M3(b), want)).toBe(true);
      }
    }
  });

  it('has the landmark values of docs/model.md §3.1', () => {
    expect(E4M3_TABLE[0x7e]).toBe(448);
    expect(E4M3_TABLE[0xfe]).toBe(-448);
    expect(E4M3_TABLE[0x08]).toBe(2 ** -6);
    expect(E4M3_TABLE[0x01]).toBe(2 ** -9);
    expect(E4M3_TABLE[0x38]).toBe(1);
    expect(E4M3_TABLE[0x40]).toBe(2);
    expect(Object.is(E4M3_TABLE[0x80], -0)).toBe(true);
    expect(E4M3_TABLE.filter((v) => !Number.isFinite(v)).length).toBe(2); // no infinities, two NaNs
  });
});

describe('E4M3FN encode', () => {
  it('encodes every finite code back to itself (both encoders)', () => {
    for (const b of finiteCodes) {
      expect(encodeE4M3(E4M3_TABLE[b]!), `code 0x${b.toString(16)}`).toBe(b);
      expect(encodeOne(E4M3_TABLE[b]!), `code 0x${b.toString(16)} (array)`).toBe(b);
    }
  });

  it('rounds ties to the even code, and off-ties to the nearest', () => {
    for (const sign of [0, 0x80]) {
      for (let c = 0; c < 0x7e; c++) {
        const lo = E4M3_TABLE[sign | c]!;
        const hi = E4M3_TABLE[sign | (c + 1)]!;
        const mid = (lo + hi) / 2; // exact in f32: the values have 4 significant bits
        const even = c % 2 === 0 ? c : c + 1;
        expect(encodeE4M3(mid), `tie between 0x${c.toString(16)} and 0x${(c + 1).toString(16)}`).toBe(sign | even);
        expect(encodeOne(mid)).toBe(sign | even);
        const nudge = (hi - lo) / 64; // towards hi (negative for negative codes)
        expect(encodeE4M3(mid + nudge)).toBe(sign | (c + 1));
        expect(encodeOne(mid + nudge)).toBe(sign | (c + 1));
        expect(encodeE4M3(mid - nudge)).toBe(sign | c);
        expect(encodeOne(mid - nudge)).toBe(sign | c);
      }
    }
  });

  it('saturates at ±448 and maps NaN to 0x7F', () => {
    for (const x of [448, 448.5, 463.9, 464, 480, 1e6, 3.4e38, Infinity]) {
      expect(encodeE4M3(x), String(x)).toBe(0x7e);
      expect(encodeE4M3(-x)).toBe(0xfe);
      expect(encodeOne(x)).toBe(0x7e);
      expect(encodeOne(-x)).toBe(0xfe);
    }
    expect(encodeE4M3(NaN)).toBe(0x7f);
    expect(encodeOne(NaN) & 0x7f).toBe(0x7f);
  });

  it('handles subnormals and underflow', () => {
    expect(encodeE4M3(2 ** -10)).toBe(0); // half the smallest subnormal: tie to even 0
    expect(encodeE4M3(2 ** -10 * 1.001)).toBe(1);
    expect(encodeE4M3(3 * 2 ** -10)).toBe(2); // tie between 1 and 2 -> 2
    expect(encodeE4M3(-1e-30)).toBe(0x80);
    expect(encodeE4M3(-0)).toBe(0x80);
    expect(encodeOne(1e-40)).toBe(0); // f32 subnormal input
    expect(encodeE4M3(15.5 * 2 ** -10)).toBe(0x08); // rounds up into the smallest normal
  });

  it('is the nearest code (ties even) for random f32 values, and both encoders agree', () => {
    const rng = new Rng(7, 'fp8-random');
    const xs = new Float32Array(20000);
    for (let i = 0; i < xs.length; i++) xs[i] = (rng.uniform() - 0.5) * 2 ** (rng.uniform() * 24 - 14);
    const codes = encodeE4M3Array(xs);
    const positive = finiteCodes.filter((b) => b < 0x80);
    const bad: string[] = [];
    for (let i = 0; i < xs.length && bad.length < 10; i++) {
      const x = xs[i]!;
      if (codes[i] !== encodeE4M3(x)) bad.push(`x = ${x}: array ${codes[i]} vs scalar ${encodeE4M3(x)}`);
      if (Math.abs(x) >= 448) continue;
      let best = 0;
      let bestErr = Infinity;
      for (const b of positive) {
        const err = Math.abs(E4M3_TABLE[b]! - Math.abs(x));
        if (err < bestErr || (err === bestErr && (b & 1) === 0)) [best, bestErr] = [b, err];
      }
      if (Math.abs(E4M3_TABLE[codes[i]!]!) !== E4M3_TABLE[best]) bad.push(`x = ${x}: code ${codes[i]} vs nearest ${best}`);
    }
    expect(bad).toEqual([]);
  });
});

describe('BF16', () => {
  it('round-trips every non-NaN bf16 pattern', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const wide = bf16ArrayToF32(all);
    const back = f32ArrayToBf16(wide);
    const bad: number[] = [];
    for (let u = 0; u < 65536 && bad.length < 10; u++) {
      if (Number.isNaN(wide[u]!)) {
        if (!Number.isNaN(bf16ToF32(back[u]!))) bad.push(u);
      } else if (back[u] !== u || f32ToBf16(wide[u]!) !== u || !Object.is(bf16ToF32(u), wide[u])) bad.push(u);
    }
    expect(bad).toEqual([]);
  });

  it('rounds to nearest even and overflows to inf like a torch cast', () => {
    const f = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0]!;
    expect(f32ToBf16(f(0x3f808000))).toBe(0x3f80); // tie, even stays
    expect(f32ToBf16(f(0x3f818000))).toBe(0x3f82); // tie, odd rounds up
    expect(f32ToBf16(f(0x3f808001))).toBe(0x3f81);
    expect(f32ToBf16(f(0xbf808001))).toBe(0xbf81);
    expect(f32ToBf16(f(0x7f7fffff))).toBe(0x7f80); // f32 max -> +inf
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(bf16ToF32(f32ToBf16(NaN))).toBeNaN();
  });
});

describe('block quantisation (docs/model.md §3.4) and dequantisation (§3.3)', () => {
  const shapes: [number, number][] = [[1, 1], [128, 128], [200, 300], [129, 127], [576, 256], [3, 517], [0, 5]];

  it('keeps every element within half an E4M3 step of the scaled value', () => {
    for (const [rows, cols] of shapes) {
      const rng = new Rng(rows * 1000 + cols, 'quant');
      const w = rng.fillNormal(new Float32Array(rows * cols), 0, 0.05);
      if (w.length > 3) w[2] = 0; // a zero, and a tiny value that lands in the subnormals
      if (w.length > 4) w[3] = 1e-7;
      const q = quantizeFp8Block(w, rows, cols);
      const sRows = Math.ceil(rows / 128);
      const sCols = Math.ceil(cols / 128);
      expect(q.scale.length).toBe(sRows * sCols);
      expect(q.data.length).toBe(rows * cols);
      const deq = dequantizeFp8Block(q.data, q.scale, rows, cols);
      for (let bi = 0; bi < sRows; bi++) {
        for (let bj = 0; bj < sCols; bj++) {
          let amax = 0;
          for (let i = bi * 128; i < Math.min(rows, bi * 128 + 128); i++) for (let j = bj * 128; j < Math.min(cols, bj * 128 + 128); j++) amax = Math.max(amax, Math.abs(w[i * cols + j]!));
          expect(q.scale[bi * sCols + bj]).toBe(amax === 0 ? 1 : Math.fround(amax / 448));
        }
      }
      const bad: string[] = [];
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols && bad.length < 10; j++) {
          const s = q.scale[Math.floor(i / 128) * sCols + Math.floor(j / 128)]!;
          const x = w[i * cols + j]!;
          // relative 2^-4 (half ulp of a 3-bit mantissa) in the normal range, 2^-10 * s in the subnormals
          const bound = Math.max(Math.abs(x) * 2 ** -4, s * 2 ** -10) * (1 + 1e-6);
          const err = Math.abs(deq[i * cols + j]! - x);
          if (!(err <= bound) || (q.data[i * cols + j]! & 0x7f) === 0x7f) bad.push(`[${i}, ${j}] of [${rows}, ${cols}]: ${x} -> ${deq[i * cols + j]}`);
        }
      }
      expect(bad).toEqual([]);
    }
  });

  it('gives scale 1 and zero codes for an all-zero block, and is independent per 128-row stripe', () => {
    const rows = 300;
    const cols = 140;
    const w = new Rng(3, 'stripe').fillNormal(new Float32Array(rows * cols));
    w.fill(0, 0, 128 * cols); // the first block row is zero
    const whole = quantizeFp8Block(w, rows, cols);
    expect([...whole.scale.subarray(0, 2)]).toEqual([1, 1]);
    expect(whole.data.subarray(0, 128 * cols).every((b) => b === 0)).toBe(true);
    for (let r0 = 0; r0 < rows; r0 += 128) {
      const n = Math.min(128, rows - r0);
      const part = quantizeFp8Block(w.subarray(r0 * cols, (r0 + n) * cols), n, cols);
      expect(part.data).toEqual(whole.data.subarray(r0 * cols, (r0 + n) * cols));
      expect(part.scale).toEqual(whole.scale.subarray((r0 / 128) * 2, (r0 / 128) * 2 + 2));
    }
  });

  it('dequantises with one f32 multiply per element, ragged blocks included', () => {
    const q = new Uint8Array([0x38, 0x40, 0xb8, 0x01, 0x7e, 0x00]); // [2, 3]: 1, 2, -1 / 2^-9, 448, 0
    const deq = dequantizeFp8Block(q, new Float32Array([0.5]), 2, 3);
    expect([...deq]).toEqual([0.5, 1, -0.5, 2 ** -10, 224, 0]);
  });

  it('refuses bad shapes and non-finite weights with typed errors', () => {
    expect(() => quantizeFp8Block(new Float32Array(5), 2, 3)).toThrow(ShapeError);
    expect(() => quantizeFp8Block(new Float32Array([1, NaN]), 1, 2)).toThrow(InputError);
    expect(() => dequantizeFp8Block(new Uint8Array(6), new Float32Array(2), 2, 3)).toThrow(ShapeError);
  });
});
