/** The reference's small building blocks on values computed by hand, its input errors, and its imports. */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ContextOverflowError, InputError, ShapeError } from '../../src/errors.js';
import type { Matrix } from '../../src/model/cpu-weights.js';
import {
  checkTokens, embed, linear, matVec, ReferenceSession, rmsNorm, silu, softmaxInPlace, swiglu,
} from '../../src/model/reference.js';
import { GOLDEN_DIR, loadGolden } from './reference-fixtures.js';

const mat = (rows: number, cols: number, values: number[]): Matrix => ({ rows, cols, data: Float32Array.from(values) });

describe('building blocks', () => {
  it('linear = x @ W^T per row, matVec writes at offsets', () => {
    const W = mat(2, 3, [1, 2, 3, -1, 0, 0.5]);
    expect(Array.from(linear(Float64Array.from([1, 1, 1, 2, 0, -2]), W))).toEqual([6, -0.5, -4, -3]);
    const out = new Float64Array(4);
    matVec(W, Float64Array.from([9, 1, 1, 1]), 1, out, 2);
    expect(Array.from(out)).toEqual([0, 0, 6, -0.5]);
    expect(() => linear(new Float64Array(4), W)).toThrow(ShapeError);
  });

  it('rmsNorm: w · x / sqrt(mean x² + eps), per row', () => {
    const y = rmsNorm(Float64Array.from([3, 4, 0, 0]), [1, 2], 0.5);
    const inv = 1 / Math.sqrt(12.5 + 0.5);
    expect(y[0]).toBeCloseTo(3 * inv, 15);
    expect(y[1]).toBeCloseTo(8 * inv, 15);
    expect(Array.from(y.subarray(2))).toEqual([0, 0]); // eps keeps a zero row finite
    expect(() => rmsNorm(new Float64Array(3), [1, 1], 1e-6)).toThrow(ShapeError);
  });

  it('swiglu = silu(gate) ⊙ up', () => {
    expect(silu(0)).toBe(0);
    expect(silu(1)).toBeCloseTo(1 / (1 + Math.exp(-1)), 15);
    expect(silu(-50)).toBeCloseTo(0, 15);
    const y = swiglu(Float64Array.from([0, 1, 2]), Float64Array.from([5, 3, -1]));
    expect(y[0]).toBe(0);
    expect(y[1]).toBeCloseTo(3 * silu(1), 15);
    expect(y[2]).toBeCloseTo(-silu(2), 15);
  });

  it('softmax gives −inf entries zero probability', () => {
    const p = Float64Array.from([7, 0, -Infinity, Math.log(3)]);
    softmaxInPlace(p, 1, 3);
    expect(p[0]).toBe(7);
    expect(p[1]).toBeCloseTo(0.25, 15);
    expect(p[2]).toBe(0);
    expect(p[3]).toBeCloseTo(0.75, 15);
  });

  it('embed copies rows', () => {
    expect(Array.from(embed([2, 0], mat(3, 2, [1, 2, 3, 4, 5, 6])))).toEqual([5, 6, 1, 2]);
  });
});

describe('input errors', () => {
  it('checkTokens names the id and the vocab size', () => {
    expect(() => checkTokens([], 10)).toThrow(InputError);
    expect(() => checkTokens([1, 10], 10)).toThrow(/token id 10 is outside the vocabulary \(vocab_size 10/);
    expect(() => checkTokens([-1], 10)).toThrow(/token id -1/);
    expect(() => checkTokens([1.5], 10)).toThrow(/token id 1.5/);
    expect(() => checkTokens([0, 9], 10)).not.toThrow();
  });

  it('a session refuses tokens past max_position_embeddings and keeps its position', async () => {
    const g = await loadGolden('tiny');
    const weights = { ...g.weights, config: { ...g.weights.config, max_position_embeddings: 4 } };
    const s = new ReferenceSession(weights);
    s.prefill([1, 2, 3]);
    expect(s.position).toBe(3);
    expect(() => s.prefill([4, 5])).toThrow(ContextOverflowError);
    expect(() => s.decode(999)).toThrow(InputError);
    expect(s.position).toBe(3);
    expect(s.decode(4).length).toBe(weights.config.vocab_size);
    expect(s.position).toBe(4);
    expect(() => s.decode(5)).toThrow(ContextOverflowError);
  });
});

describe('the reference is CPU-only', () => {
  const src = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/model');
  it.each(['reference.ts', 'rope.ts', 'router.ts', 'cpu-weights.ts', 'taps.ts'])('%s imports nothing from gpu/ or engine/', (file) => {
    const text = readFileSync(join(src, file), 'utf8');
    const imports = [...text.matchAll(/from\s+'([^']+)'/g)].map((m) => m[1]!);
    expect(imports.filter((p) => /(^|\/)(gpu|engine)\//.test(p) || p === 'webgpu')).toEqual([]);
  });
});
