/**
 * `webmoe logits --backend webgpu` (the golden-logits check of docs/model.md §8.3): the real CLI process on one fixture with --taps, and
 * the same backend in-process on every golden fixture (one device, so pipelines compile once per adapter).
 * Tolerance: 2e-3 · max(1, max |ref|) per position and the same argmax (docs/model.md §8.3); measured ~1e-6 relative.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openLogitsBackend } from '../../src/cli/logits.js';
import { readNpy } from '../../src/format/npy.js';
import { fileSource } from '../../src/format/node-source.js';
import { openSafetensors } from '../../src/format/safetensors.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { compareRows, goldenCases, GOLDEN_DIR } from '../model/reference-fixtures.js';
import { testAdapter } from '../helpers/gpu.js';
import { argmaxRows } from '../helpers/session-checks.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(join(tmpdir(), 'webmoe-logits-gpu-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function webmoe(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', join(repo, 'src/cli.ts'), ...args], { cwd: repo }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe(`webmoe logits --backend webgpu (${testAdapter()})`, () => {
  it('the CLI writes logits matching the golden ones, and the golden tap set', async () => {
    const model = join(GOLDEN_DIR!, 'ragged');
    const prompt = JSON.parse(readFileSync(join(model, 'tokens.json'), 'utf8')).prompt as number[];
    const out = join(tmp, 'x.npy');
    const taps = join(tmp, 'taps.safetensors');
    const r = await webmoe(['logits', '--model', model, '--tokens', prompt.join(','), '--backend', 'webgpu', '--adapter', testAdapter(), '--out', out, '--taps', taps]);
    expect(r.code, r.stderr).toBe(0);
    const ours = readNpy(readFileSync(out));
    const theirs = readNpy(readFileSync(join(model, 'logits.npy')));
    expect(ours.shape).toEqual(theirs.shape);
    expect(compareRows(ours.data as Float32Array, theirs.data as Float32Array, theirs.shape[1]!, 2e-3).failures).toEqual([]);
    const golden = await openSafetensors(await fileSource(join(model, 'taps.safetensors')));
    const written = await openSafetensors(await fileSource(taps));
    expect([...written.tensors.keys()].sort()).toEqual([...golden.tensors.keys()].sort());
    for (const [name, t] of golden.tensors) {
      expect(written.tensors.get(name)?.dtype, name).toBe(t.dtype);
      expect(written.tensors.get(name)?.shape, name).toEqual(t.shape);
    }
    expect(written.metadata.backend).toBe('webgpu');
    await Promise.all([golden.source.close(), written.source.close()]);
  });

  // Each backend opens its own device, so SwiftShader recompiles every pipeline per fixture (~7 s each); there the
  // same path (createSession + forwardLogits) is covered on every fixture by test/engine/session.gpu.test.ts.
  it.skipIf(testAdapter() === 'swiftshader')('the webgpu backend matches every golden fixture', async () => {
    for (const name of goldenCases()) {
      const dir = join(GOLDEN_DIR!, name);
      const ckpt = await openCheckpointDir(dir);
      const backend = await openLogitsBackend('webgpu', ckpt, { adapter: testAdapter() });
      try {
        const prompt = JSON.parse(readFileSync(join(dir, 'tokens.json'), 'utf8')).prompt as number[];
        const got = await backend.logits(prompt);
        const ref = readNpy(readFileSync(join(dir, 'logits.npy')));
        const V = ref.shape[1]!;
        const r = compareRows(got, ref.data as Float32Array, V, 2e-3);
        expect(r.failures, name).toEqual([]);
        expect(argmaxRows(got, V), name).toEqual(argmaxRows(ref.data as Float32Array, V));
      } finally {
        await backend.close();
        await ckpt.close();
      }
    }
  });
});
