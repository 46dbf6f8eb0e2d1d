/**
 * The CLI as real processes, attacked (every case bounded in time):
 *   - `generate ... | head -c 10`: the reader closes the pipe; the process exits 0 with no stack trace;
 *   - a FIFO named config.json or model.safetensors (and a bare FIFO config for inspect): a one-line FormatError,
 *     exit 2, instead of hanging forever;
 *   - --ctx-size above max_position_embeddings: the same InputError on the cpu backend as on webgpu;
 *   - Ctrl-C (SIGINT) during generate: what was generated is printed, exit 130 (as `agent`).
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeToyCheckpoint } from '../../src/model/toy.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'webmoe.js');
let dir: string;
let small: string;
let tiny: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'webmoe-hard-'));
  small = join(dir, 'small');
  tiny = join(dir, 'tiny');
  await writeToyCheckpoint('small', small, { seed: 3 });
  await writeToyCheckpoint('tiny', tiny, { seed: 3 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const webmoe = (args: string[], timeout = 60_000) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout });

/** Runs the CLI, calls `onFirstOutput` once stdout has produced something, resolves with the exit status. */
function runUntilOutput(args: string[], onFirstOutput: (child: ReturnType<typeof spawn>) => void): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let fired = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out; stderr: ${stderr}`));
    }, 90_000);
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!fired && stdout.length > 0) {
        fired = true;
        onFirstOutput(child);
      }
    });
    child.stdout!.on('error', () => {});
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('webmoe CLI hardening', () => {
  it('generate | head -c 10: a closed stdout ends the process quietly, exit 0', async () => {
    const args = ['generate', '--backend', 'cpu', '--model', small, '--prompt', 'Hello', '--max-tokens', '400', '--temperature', '0', '--ignore-eos'];
    // like `head -c 10`: read the first bytes, then close the read end of the pipe
    const r = await runUntilOutput(args, (child) => child.stdout!.destroy());
    expect(r.stderr).not.toMatch(/EPIPE|Error|    at /);
    expect(r.code).toBe(0);
  });

  it('a FIFO named config.json or model.safetensors is a one-line FormatError, not a hang', () => {
    const fifoDir = join(dir, 'fifo-config');
    mkdirSync(fifoDir);
    expect(spawnSync('mkfifo', [join(fifoDir, 'config.json')]).status).toBe(0);
    const shardDir = join(dir, 'fifo-shard');
    mkdirSync(shardDir);
    for (const f of ['config.json', 'tokenizer.json', 'generation_config.json']) copyFileSync(join(small, f), join(shardDir, f));
    expect(spawnSync('mkfifo', [join(shardDir, 'model.safetensors')]).status).toBe(0);
    for (const [args, file] of [
      [['inspect', fifoDir], 'config.json'],
      [['inspect', join(fifoDir, 'config.json')], 'config.json'],
      [['generate', '--backend', 'cpu', '--model', fifoDir, '--prompt', 'Hi'], 'config.json'],
      [['inspect', shardDir], 'model.safetensors'],
      [['generate', '--backend', 'cpu', '--model', shardDir, '--prompt', 'Hi'], 'model.safetensors'],
    ] as const) {
      const r = webmoe([...args], 30_000);
      expect(r.error, `${args.join(' ')} hung`).toBeUndefined();
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`FormatError: .*${file.replace('.', '\\.')}: cannot read: it is a FIFO \\(named pipe\\), not a regular file`));
    }
  });

  it('--ctx-size above max_position_embeddings is an InputError on the cpu backend too', () => {
    const r = webmoe(['generate', '--backend', 'cpu', '--model', tiny, '--prompt-tokens', '1,2', '--ctx-size', '5000']);
    expect(r.status).toBe(2);
    // the very message of the webgpu backend (session.ts createSession)
    expect(r.stderr).toBe("webmoe: InputError: --ctx-size 5000 exceeds the model's max_position_embeddings 4096\n");
  });

  it("Dawn's known adapter warnings are dropped from fd 2; every other line written meanwhile is kept, in order", () => {
    const noise = 'Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.';
    const code = [
      "const m = await import('./src/gpu/node-adapter.ts');",
      "const { writeSync } = await import('node:fs');",
      'm.quietDawnNoise();',
      `const r = m.withoutDawnNoise(() => { writeSync(2, ${JSON.stringify(`first\n${noise}\nWarning: something else\n${noise.replace('Storage', 'Uniform')}\n`)}); return 42; });`,
      "process.stderr.write('after ' + r + '\\n');",
    ].join('\n');
    // stderr to a file: a Node parent's 'pipe' is a socket, which the filter leaves alone (see node-adapter.ts)
    const errPath = join(dir, 'dawn-stderr.txt');
    const errFd = openSync(errPath, 'w');
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      encoding: 'utf8', timeout: 60_000, cwd: join(import.meta.dirname, '..', '..'), stdio: ['ignore', 'pipe', errFd],
    });
    closeSync(errFd);
    const stderr = readFileSync(errPath, 'utf8');
    expect(r.status, stderr).toBe(0);
    expect(stderr).toBe('first\nWarning: something else\nafter 42\n');
  });

  it('Ctrl-C during generate prints what was generated and the stats, and exits 130', async () => {
    const args = ['generate', '--backend', 'cpu', '--model', small, '--prompt', 'Hello', '--max-tokens', '2000', '--temperature', '0', '--ignore-eos'];
    const r = await runUntilOutput(args, (child) => child.kill('SIGINT'));
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/generated tokens \(abort\)/);
  });
});
