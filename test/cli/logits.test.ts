/** `webmoe logits` end to end (a real process): .npy, JSON and taps output on a golden fixture; bad input. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readNpy } from '../../src/format/npy.js';
import { fileSource } from '../../src/format/node-source.js';
import { openSafetensors } from '../../src/format/safetensors.js';
import { compareRows, GOLDEN_DIR } from '../model/reference-fixtures.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(join(tmpdir(), 'webmoe-logits-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function webmoe(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', join(repo, 'src/cli.ts'), ...args], { cwd: repo }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('webmoe logits --backend cpu', () => {
  const model = join(GOLDEN_DIR ?? '', 'tiny');
  const prompt = (): number[] => JSON.parse(readFileSync(join(model, 'tokens.json'), 'utf8')).prompt;

  it('writes float32 [T, V] logits matching the golden ones, and the taps', async () => {
    const out = join(tmp, 'x.npy');
    const taps = join(tmp, 'taps.safetensors');
    const r = await webmoe(['logits', '--model', model, '--tokens', prompt().join(','), '--backend', 'cpu', '--out', out, '--taps', taps]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const ours = readNpy(readFileSync(out));
    const theirs = readNpy(readFileSync(join(model, 'logits.npy')));
    expect(ours.dtype).toBe('f4');
    expect(ours.shape).toEqual(theirs.shape);
    expect(compareRows(ours.data as Float32Array, theirs.data as Float32Array, theirs.shape[1]!, 1e-4).failures).toEqual([]);

    const golden = await openSafetensors(await fileSource(join(model, 'taps.safetensors')));
    const written = await openSafetensors(await fileSource(taps));
    for (const [name, t] of golden.tensors) {
      expect(written.tensors.get(name)?.dtype, name).toBe(t.dtype);
      expect(written.tensors.get(name)?.shape, name).toEqual(t.shape);
    }
    expect(written.metadata.backend).toBe('cpu');
    await Promise.all([golden.source.close(), written.source.close()]);
  });

  it('--json prints {"shape": [T, V], "logits": [[...]]}', async () => {
    const r = await webmoe(['logits', '--model', model, '--tokens', '3,4', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { shape: number[]; logits: number[][] };
    expect(j.shape).toEqual([2, 128]);
    expect(j.logits.length).toBe(2);
    expect(j.logits[1]!.length).toBe(128);
    expect(j.logits.flat().every((v) => Number.isFinite(v) && Math.fround(v) === v)).toBe(true);
  });

  it.each([
    [['--tokens', '1,128', '--out', 'x.npy'], /InputError: token id 128 is outside the vocabulary \(vocab_size 128/],
    [['--tokens', '1,-3', '--out', 'x.npy'], /InputError: --tokens: '-3' is not a token id/],
    [['--tokens', '1,2.5', '--out', 'x.npy'], /InputError: --tokens: '2.5' is not a token id/],
    [['--tokens', '', '--out', 'x.npy'], /InputError: --tokens is empty/],
    [['--tokens', '1,2'], /InputError: nothing to write/],
  ])('bad input %j → one-line error, non-zero exit', async (args, message) => {
    const r = await webmoe(['logits', '--model', model, ...args]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });

  it('rejects an unknown backend', async () => {
    const r = await webmoe(['logits', '--model', model, '--tokens', '1', '--backend', 'tpu', '--json']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/tpu/);
  });
});
