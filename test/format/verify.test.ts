/**
 * The non-finite scan (src/format/verify.ts) and where it runs:
 *   - findNonFinite on every scanned dtype, element by element against a plain loop, aligned and unaligned views;
 *     E4M3: exactly the codes 0x7F and 0xFF;
 *   - loading a checkpoint with NaN/Inf in a scale, a norm, the router bias, an embedding, or an E4M3 NaN code in
 *     a weight is a FormatError naming the tensor on the cpu backend (the GPU test is nonfinite-load.gpu.test.ts);
 *   - `webmoe inspect --verify-data` scans everything (a process: one line on stderr, exit 2).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTextModel } from '../../src/engine/text-model.js';
import { FormatError } from '../../src/errors.js';
import { decodeE4M3 } from '../../src/format/fp8.js';
import { findNonFinite, type NonFiniteHit } from '../../src/format/verify.js';
import { memoryFiles } from '../../src/model/checkpoint.js';
import { writeToyCheckpoint } from '../../src/model/toy.js';
import { rng } from '../helpers/gpu.js';
import { CORRUPTIONS, corruptToy } from './corrupt-toy.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'webmoe.js');
const dir = mkdtempSync(join(tmpdir(), 'webmoe-verify-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The first bad element by a plain loop over decoded values. */
function plainFirst(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}

describe('findNonFinite', () => {
  it('E4M3: flags exactly 0x7F and 0xFF, at the right index, in any word position', () => {
    const bad = [...Array(256).keys()].filter((b) => findNonFinite('F8_E4M3', Uint8Array.of(b)) !== undefined);
    expect(bad).toEqual([0x7f, 0xff]);
    expect(bad.every((b) => Number.isNaN(decodeE4M3(b)))).toBe(true);
    const r = rng(5);
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(r() * 64);
      const buf = new Uint8Array(n + 3);
      const bytes = buf.subarray(trial % 4, trial % 4 + n); // aligned and unaligned views
      for (let i = 0; i < n; i++) bytes[i] = Math.floor(r() * 256) & 0x7e; // never a NaN code
      expect(findNonFinite('F8_E4M3', bytes)).toBeUndefined();
      const k = Math.floor(r() * n);
      bytes[k] = r() < 0.5 ? 0x7f : 0xff;
      expect(findNonFinite('F8_E4M3', bytes)?.index).toBe(k);
    }
  });

  it('F32 / BF16 / F16 / F64 / E5M2 agree with a plain isFinite loop (NaN, +-Infinity, odd lengths)', () => {
    const r = rng(6);
    for (let trial = 0; trial < 100; trial++) {
      const n = 1 + Math.floor(r() * 33);
      const f32 = new Float32Array(n).map(() => (r() - 0.5) * 1e6);
      const k = Math.floor(r() * n);
      const special = [NaN, Infinity, -Infinity][trial % 3]!;
      if (trial % 4 !== 0) f32[k] = special;
      const want = plainFirst(f32);
      const f32Bytes = new Uint8Array(f32.buffer);
      expect(findNonFinite('F32', f32Bytes)?.index ?? -1).toBe(want);
      const f64 = Float64Array.from(f32);
      expect(findNonFinite('F64', new Uint8Array(f64.buffer))?.index ?? -1).toBe(want);
      // BF16 / F16: the top halves of the f32 (BF16), and a direct F16 encoding of the specials
      const bf16 = new Uint16Array(n).map((_, i) => new Uint32Array(f32.buffer)[i]! >>> 16);
      expect(findNonFinite('BF16', new Uint8Array(bf16.buffer))?.index ?? -1).toBe(want);
      const f16 = new Uint16Array(n).fill(0x3c00); // 1.0
      if (trial % 4 !== 0) f16[k] = Number.isNaN(special) ? 0x7e00 : special > 0 ? 0x7c00 : 0xfc00;
      expect(findNonFinite('F16', new Uint8Array(f16.buffer))?.index ?? -1).toBe(want);
      const e5 = new Uint8Array(n).fill(0x3c);
      if (trial % 4 !== 0) e5[k] = 0x7c | (trial & 3);
      expect(findNonFinite('F8_E5M2', e5)?.index ?? -1).toBe(trial % 4 !== 0 ? k : -1);
    }
  });

  it('integer dtypes are not scanned; the hit says what it found', () => {
    expect(findNonFinite('U8', Uint8Array.of(0xff, 0x7f))).toBeUndefined();
    expect(findNonFinite('I32', new Uint8Array(new Int32Array([0x7f800000]).buffer))).toBeUndefined();
    expect(findNonFinite('F32', new Uint8Array(Float32Array.of(1, -Infinity).buffer))).toEqual<NonFiniteHit>({ index: 1, what: '-Infinity' });
    expect(findNonFinite('F8_E4M3', Uint8Array.of(0, 0xff))).toEqual<NonFiniteHit>({ index: 1, what: 'E4M3 NaN code 0xff' });
  });
});

describe('loading a checkpoint with non-finite data (cpu backend)', () => {
  it.each(CORRUPTIONS)('$label: a FormatError naming the tensor', async (c) => {
    const files = memoryFiles('tiny', await corruptToy(c));
    const err = await loadTextModel(files, { backend: 'cpu' }).then(
      (m) => m.close().then(() => undefined),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).tensor).toBe(c.tensor);
    expect((err as Error).message).toMatch(new RegExp(`element ${c.element} is (NaN|Infinity|E4M3 NaN code 0x(7f|ff))`));
  });
});

describe('webmoe inspect --verify-data', () => {
  it('passes a clean checkpoint and names the bad tensor of a corrupt one; plain inspect reads headers only', async () => {
    const model = join(dir, 'tiny');
    await writeToyCheckpoint('tiny', model, { seed: 1 });
    const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'inspect', model, ...args], { encoding: 'utf8', timeout: 60_000 });
    const ok = run('--verify-data');
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/data verified: \d+ tensors, [\d.]+ MiB, no NaN or Inf/);
    const json = JSON.parse(run('--verify-data', '--json').stdout) as { verifiedData: { tensors: number; bytes: number } };
    expect(json.verifiedData.tensors).toBeGreaterThan(50);

    // an E4M3 NaN code in one expert weight, written into the file
    const c = CORRUPTIONS[1]!;
    const corrupt = await corruptToy(c);
    writeFileSync(join(model, 'model.safetensors'), corrupt.get('model.safetensors')!);
    expect(readFileSync(join(model, 'model.safetensors')).length).toBe(corrupt.get('model.safetensors')!.length);
    const bad = run('--verify-data');
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(new RegExp(`FormatError: .*model\\.safetensors: tensor '${c.tensor.replaceAll('.', '\\.')}': element 3 is E4M3 NaN code 0xff`));
    expect(run().status).toBe(0);
  });
});
