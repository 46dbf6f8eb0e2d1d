/**
 * Bad input to the offloading and plan flags is a clear typed error (no GPU needed): --gpu-memory values,
 * --record-routing without a file, --gpu-memory on the cpu backend, inspect's --hit-rate / --ctx-size, and
 * doctor --model pointing at nothing. The CLI as a process answers with one line on stderr and exit 2.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateCommand } from '../../src/cli/generate.js';
import { modelShapes } from '../../src/cli/doctor.js';
import { gpuMemoryOption } from '../../src/cli/load-model.js';
import { InputError } from '../../src/errors.js';
import { FIXTURES_DIR } from '../format/shared-paths.js';
import { Sink } from '../helpers/sink.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'webmoe.js');
const KIMI = join(FIXTURES_DIR, 'configs', 'kimi-k2.json');
const SMALL = join(FIXTURES_DIR, 'golden', 'small');
const webmoe = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });

describe('offloading flags: bad input', () => {
  it('--gpu-memory takes a positive number of MiB (fractional allowed), anything else is an InputError', () => {
    const parse = (v: string): number => (gpuMemoryOption().parseArg as (value: string) => number)(v);
    expect(parse('20.5')).toBe(20.5);
    for (const bad of ['', ' ', 'abc', '0', '-1', 'Infinity', 'NaN']) {
      expect(() => parse(bad), bad).toThrow(InputError);
      expect(() => parse(bad), bad).toThrow(/--gpu-memory must be a positive number of MiB/);
    }
  });

  it('generate: --record-routing without a file, and --gpu-memory on the cpu backend, are InputErrors', async () => {
    const run = (o: Partial<Parameters<typeof generateCommand>[0]>) =>
      generateCommand({ model: SMALL, backend: 'cpu', promptTokens: '1,2,3', maxTokens: 1, json: true, ...o }, new Sink(), new Sink()).catch((e: unknown) => e);
    const e1 = await run({ recordRouting: ' ' });
    expect(e1).toBeInstanceOf(InputError);
    expect((e1 as Error).message).toMatch(/--record-routing needs a file name/);
    const e2 = await run({ gpuMemory: 64 });
    expect(e2).toBeInstanceOf(InputError);
    expect((e2 as Error).message).toMatch(/--gpu-memory needs --backend webgpu/);
  });

  it('inspect: --hit-rate outside [0, 1] and --ctx-size without --gpu-memory are one-line errors, exit 2', () => {
    for (const args of [['--gpu-memory', '1024', '--hit-rate', '2'], ['--ctx-size', '128'], ['--gpu-memory', 'lots']]) {
      const r = webmoe(['inspect', KIMI, ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/--hit-rate must be a number in \[0, 1\]|--ctx-size and --hit-rate apply with --gpu-memory|--gpu-memory must be a positive number/);
      expect(r.stdout).toBe('');
    }
  });

  it('doctor --model: a folder without config.json or a non-JSON file is an InputError naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'webmoe-doctor-model-'));
    try {
      await expect(modelShapes(dir)).rejects.toThrow(/no config\.json there/);
      writeFileSync(join(dir, 'config.json'), '{not json');
      await expect(modelShapes(dir)).rejects.toThrow(InputError);
      await expect(modelShapes(join(dir, 'missing.json'))).rejects.toThrow(/no config\.json there/);
      expect(await modelShapes(SMALL)).toMatchObject({ hidden: expect.any(Number), rank: expect.any(Number), rope: expect.any(Number) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
