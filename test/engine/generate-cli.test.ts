/**
 * `webmoe generate` end to end on the CPU backend (no adapter needed): greedy continuations of the golden
 * fixtures, the --json contract, streaming text, a toy checkpoint with a tokenizer, and the typed errors.
 * The same command on WebGPU: generate.gpu.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCommand, type GenerateCliOptions } from '../../src/cli/generate.js';
import { DEFAULT_SYSTEM_PROMPT } from '../../src/text/chat-template.js';
import { generationDefaults } from '../../src/engine/text-model.js';
import { InputError, TokenizerError } from '../../src/errors.js';
import { writeToyCheckpoint } from '../../src/model/toy.js';
import { SHARED_DIR } from '../format/shared-paths.js';
import { Sink } from '../helpers/sink.js';

const GOLDEN = join(SHARED_DIR, 'golden');
const CASES = ['tiny', 'small', 'ragged', 'yarn'];
const golden = (c: string) => JSON.parse(readFileSync(join(GOLDEN, c, 'tokens.json'), 'utf8')) as { prompt: number[]; greedy: number[] };


async function cli(opts: Omit<GenerateCliOptions, 'backend'>): Promise<{ out: string; err: string }> {
  const out = new Sink();
  const err = new Sink();
  await generateCommand({ backend: 'cpu', ...opts }, out, err);
  return { out: out.text, err: err.text };
}

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'webmoe-gen-'));
  await writeToyCheckpoint('small', join(dir, 'small'), { seed: 3 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('webmoe generate (CPU backend)', () => {
  it.each(CASES)('greedy 32 tokens from the %s golden prompt, EOS ignored, equal the fixture', async (c) => {
    const g = golden(c);
    const { out } = await cli({ model: join(GOLDEN, c), promptTokens: g.prompt.join(','), maxTokens: 32, temperature: 0, ignoreEos: true, json: true });
    const lines = out.split('\n');
    expect(lines).toHaveLength(2); // one JSON line, then the final newline
    const res = JSON.parse(lines[0]!) as { tokens: number[]; text: string; stats: Record<string, unknown> };
    expect(Object.keys(res)).toEqual(['tokens', 'text', 'stats']);
    expect(res.tokens).toEqual(g.greedy);
    expect(res.stats).toMatchObject({ promptTokens: g.prompt.length, generatedTokens: 32, finishReason: 'length' });
  });

  it('streams text to stdout that equals the JSON text, with stats on stderr', async () => {
    const model = join(dir, 'small');
    const a = await cli({ model, prompt: 'Hello', maxTokens: 12, seed: 5 });
    const b = await cli({ model, prompt: 'Hello', maxTokens: 12, seed: 5, json: true });
    const res = JSON.parse(b.out) as { text: string; tokens: number[] };
    expect(a.out).toBe(res.text + '\n');
    expect(a.err).toMatch(/5 prompt \+ 12 generated tokens \(length\).*seed 5/);
    expect(b.err).toBe('');
  });

  it('without a tokenizer streams token ids; text prompts are a TokenizerError', async () => {
    const { out } = await cli({ model: join(GOLDEN, 'tiny'), promptTokens: '1,2,3', maxTokens: 4, temperature: 0 });
    expect(out).toMatch(/^\d+ \d+ \d+ \d+\n$/);
    await expect(cli({ model: join(GOLDEN, 'tiny'), prompt: 'hi' })).rejects.toThrow(TokenizerError);
  });

  it('--chat wraps the prompt in the chat template (text markers for a byte-level tokenizer)', async () => {
    const { out } = await cli({ model: join(dir, 'small'), prompt: 'Hi', chat: true, maxTokens: 3, temperature: 0, json: true });
    expect((JSON.parse(out) as { stats: { promptTokens: number } }).stats.promptTokens).toBeGreaterThan(50);
  });

  it('argument errors are InputErrors', async () => {
    await expect(cli({ model: join(dir, 'small') })).rejects.toThrow(InputError);
    await expect(cli({ model: join(dir, 'small'), prompt: 'a', promptTokens: '1' })).rejects.toThrow(/exactly one/);
    await expect(cli({ model: join(dir, 'small'), promptTokens: '1,x' })).rejects.toThrow(/comma-separated/);
    await expect(cli({ model: join(dir, 'small'), promptTokens: '1,999' })).rejects.toThrow(/outside the vocabulary/);
    await expect(cli({ model: join(dir, 'small'), promptTokens: '1,2', ctxSize: 1 })).rejects.toThrow(/2 tokens but the context holds 1/);
  });

  it('runs as a process: one JSON line on stdout, exit 0; a typed error is one line on stderr, exit 2', () => {
    const bin = join(import.meta.dirname, '..', '..', 'bin', 'webmoe.js');
    const ok = spawnSync(process.execPath, [bin, 'generate', '--backend', 'cpu', '--model', join(GOLDEN, 'tiny'), '--prompt-tokens', '5,6', '--max-tokens', '3', '--ignore-eos', '--json'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(ok.stdout).tokens).toHaveLength(3);
    const bad = spawnSync(process.execPath, [bin, 'generate', '--backend', 'cpu', '--model', join(GOLDEN, 'tiny'), '--prompt', 'x'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/TokenizerError/);
  });
});

describe('--stop and --system', () => {
  it('--stop STRING ends generation where the text first contains it, without printing it, streaming and --json', async () => {
    const model = join(dir, 'small');
    const base = { model, prompt: 'Hello', maxTokens: 40, temperature: 0, ignoreEos: true };
    const full = (JSON.parse((await cli({ ...base, json: true })).out) as { text: string }).text;
    const stop = full.slice(12, 15);
    const want = full.slice(0, full.indexOf(stop));
    const j = JSON.parse((await cli({ ...base, json: true, stop: ['never-in-a-toy-output', stop] })).out) as { text: string; stats: { finishReason: string } };
    expect(j.text).toBe(want);
    expect(j.stats.finishReason).toBe('stop');
    const streamed = await cli({ ...base, stop: [stop] });
    expect(streamed.out).toBe(want + '\n');
    expect(streamed.err).toMatch(/\(stop\)/);
    await expect(cli({ ...base, stop: [''] })).rejects.toThrow(InputError);
    // the real command line: --stop repeated
    const bin = join(import.meta.dirname, '..', '..', 'bin', 'webmoe.js');
    const args = ['generate', '--backend', 'cpu', '--model', model, '--prompt', 'Hello', '--max-tokens', '40', '--temperature', '0', '--ignore-eos', '--json'];
    const p = spawnSync(process.execPath, [bin, ...args, '--stop', 'never-in-a-toy-output', '--stop', stop], { encoding: 'utf8', timeout: 60_000 });
    expect(p.status, p.stderr).toBe(0);
    expect((JSON.parse(p.stdout) as { text: string }).text).toBe(want);
  });

  it('--system replaces the default system prompt of --chat (which costs its length in tokens), and needs --chat', async () => {
    const model = join(dir, 'small');
    const promptTokens = async (o: Partial<GenerateCliOptions>) =>
      (JSON.parse((await cli({ model, prompt: 'Hi', chat: true, maxTokens: 1, temperature: 0, json: true, ...o })).out) as { stats: { promptTokens: number } }).stats.promptTokens;
    const byDefault = await promptTokens({});
    const short = await promptTokens({ system: 'X' });
    // the byte-level toy tokenizer: one token per byte of the system prompt
    expect(byDefault - short).toBe(Buffer.byteLength(DEFAULT_SYSTEM_PROMPT) - 1);
    expect(await promptTokens({ system: '' })).toBe(short - 1);
    await expect(cli({ model, prompt: 'Hi', system: 'X' })).rejects.toThrow(/--system needs --chat/);
  });
});

describe('generation_config.json defaults', () => {
  it('do_sample false is greedy; temperature, top_k, top_p, max_new_tokens carry over', () => {
    expect(generationDefaults({ do_sample: false, temperature: 0.6 })).toEqual({ temperature: 0 });
    expect(generationDefaults({ do_sample: true, temperature: 0.6, top_p: 0.95, top_k: 40, max_new_tokens: 10 })).toEqual({ temperature: 0.6, topP: 0.95, topK: 40, maxTokens: 10 });
    expect(generationDefaults({ bos_token_id: 0 })).toEqual({});
    expect(generationDefaults(undefined)).toEqual({});
  });
});

describe('terminal output', () => {
  it('control characters become control pictures on a terminal; newlines and tabs pass', async () => {
    const { visibleControls } = await import('../../src/cli/generate.js');
    expect(visibleControls('a\x1b[2Jb\x00\tc\nd\x7f\r')).toBe('a\u241b[2Jb\u2400\tc\nd\u2421\u240d');
  });
});

describe('--model URL', () => {
  it('reads the checkpoint over HTTP Range requests and generates the same tokens', async () => {
    const { startStaticServer } = await import('../web/helpers/static-server.js');
    const server = await startStaticServer(GOLDEN);
    try {
      const g = golden('tiny');
      const { out } = await cli({ model: `${server.url}/tiny/`, promptTokens: g.prompt.join(','), maxTokens: 8, temperature: 0, ignoreEos: true, json: true });
      expect((JSON.parse(out) as { tokens: number[] }).tokens).toEqual(g.greedy.slice(0, 8));
      expect(server.requests.some((r) => r.status === 206)).toBe(true);
    } finally {
      await server.close();
    }
  });
});
