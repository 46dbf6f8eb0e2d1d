/**
 * `webmoe eval`: the pinned sliding-window protocol (issue #15) by hand, and the command end to end (a real
 * process, cpu backend) on a tiny toy with a byte tokenizer, against NLL computed here from referenceForward;
 * and the committed demo model (models/demo, issue #15) loads from the repository, writes Python greedily and
 * scores a held-out file as docs/demo-model.md says.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evalWindows, evaluateTexts } from '../../src/cli/eval.js';
import { loadTextModel } from '../../src/engine/text-model.js';
import { folderFiles } from '../../src/model/node-checkpoint.js';
import { loadCpuWeights } from '../../src/model/cpu-weights.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { referenceForward } from '../../src/model/reference.js';
import { toyConfigJson, writeToyCheckpoint } from '../../src/model/toy.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(join(tmpdir(), 'webmoe-eval-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function webmoe(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', join(repo, 'src/cli.ts'), ...args], { cwd: repo }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('evalWindows (the pinned protocol)', () => {
  it('scores every token after BOS exactly once, each window from its own start', () => {
    expect(evalWindows(10, 4, 2)).toEqual([
      { start: 0, end: 4, from: 1 },
      { start: 2, end: 6, from: 4 },
      { start: 4, end: 8, from: 6 },
      { start: 6, end: 10, from: 8 },
    ]);
    expect(evalWindows(3, 8, 4)).toEqual([{ start: 0, end: 3, from: 1 }]);
    expect(evalWindows(1, 8, 4)).toEqual([]); // BOS alone: nothing to score
    for (const [T, ctx, stride] of [[37, 8, 4], [100, 16, 5], [17, 16, 15], [9, 2, 1]] as const) {
      const seen = new Array<number>(T).fill(0);
      for (const w of evalWindows(T, ctx, stride)) {
        expect(w.end - w.start).toBeLessThanOrEqual(ctx);
        expect(w.from).toBeGreaterThan(w.start);
        for (let t = w.from; t < w.end; t++) seen[t]!++;
      }
      expect(seen).toEqual([0, ...new Array<number>(T - 1).fill(1)]);
    }
  });

  it('rejects a stride that leaves no context', () => {
    expect(() => evalWindows(10, 4, 4)).toThrow(/stride/);
  });
});

describe('webmoe eval --backend cpu', () => {
  const model = join(tmp, 'toy');
  const texts = join(tmp, 'texts');
  const files = ['def f(x):\n    return x + 1\n', 'naïve = "héllo"\n'];
  const CTX = 12;
  const STRIDE = 5;

  beforeAll(async () => {
    // the tiny toy with a byte tokenizer (vocab >= 259: [BOS] = 256) and a 12-token training context
    await writeToyCheckpoint({ ...toyConfigJson('tiny'), vocab_size: 260, max_position_embeddings: CTX }, model, { seed: 3 });
    mkdirSync(join(texts, 'sub'), { recursive: true });
    writeFileSync(join(texts, 'a.py'), files[0]!);
    writeFileSync(join(texts, 'sub', 'b.py'), files[1]!);
  });

  it('prints the NLL of the protocol, equal to referenceForward over the same windows', async () => {
    const r = await webmoe(['eval', '--model', model, '--text', texts, '--backend', 'cpu', '--stride', String(STRIDE), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout) as Record<string, number>;
    expect(Object.keys(res)).toEqual(['files', 'tokens', 'bytes', 'nll_nats', 'perplexity', 'bits_per_byte']);
    const bytes = files.reduce((n, f) => n + Buffer.byteLength(f), 0);
    expect(res.files).toBe(2);
    expect(res.bytes).toBe(bytes);
    expect(res.tokens).toBe(bytes); // byte tokenizer: one token per byte, BOS never scored

    const ckpt = await openCheckpointDir(model);
    const weights = await loadCpuWeights(ckpt);
    await ckpt.close();
    let nll = 0;
    for (const text of files) {
      const ids = [256, ...Buffer.from(text)];
      let scored = 1;
      for (let start = 0; scored < ids.length; start += STRIDE) {
        const end = Math.min(start + CTX, ids.length);
        const logits = referenceForward(weights, ids.slice(start, end));
        const V = logits.length / (end - start);
        for (let t = scored; t < end; t++) {
          const row = Array.from(logits.subarray((t - 1 - start) * V, (t - start) * V));
          const max = Math.max(...row);
          nll += Math.log(row.reduce((s, z) => s + Math.exp(z - max), 0)) + max - row[ids[t]!]!;
        }
        scored = end;
      }
    }
    // the command reads float32 logits; here they stay f64
    expect(Math.abs(res.nll_nats! - nll) / nll).toBeLessThan(1e-5);
    expect(res.bits_per_byte).toBeCloseTo(nll / Math.LN2 / bytes, 4);
    expect(res.perplexity).toBeCloseTo(Math.exp(nll / bytes), 3);
  }, 60_000);

  it('fails with one line on stderr for a stride that leaves no context', async () => {
    const r = await webmoe(['eval', '--model', model, '--text', join(texts, 'a.py'), '--backend', 'cpu', '--ctx', '8', '--stride', '8']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--stride 8 must be below --ctx 8/);
  }, 60_000);
});

describe('models/demo (the committed trained model)', () => {
  const dir = join(repo, 'models', 'demo');
  const snippet = 'def f(x):\n    return x\n';

  it.skipIf(!existsSync(join(dir, 'config.json')))('loads on the cpu backend and continues a Python prompt with Python', async () => {
    const model = await loadTextModel(folderFiles(dir), { backend: 'cpu' });
    try {
      expect(model.tokenizer?.bosTokenId).toBe(256);
      let text = '';
      for await (const ev of model.generate('import os\n\n\ndef read_lines(path):', { maxTokens: 24, temperature: 0 })) {
        if (ev.type === 'token') text += ev.text;
      }
      expect(text).not.toMatch(/\uFFFD|<\|/);
      expect(text).toMatch(/^\n {4}\S/); // the body of the function, indented
      const res = await evaluateTexts(model.session, model.checkpoint.config.vocab_size, (s) => model.tokenizer!.encode(s), 256, [{ name: 'snippet', text: snippet }], 256, 128);
      expect(res.bits_per_byte).toBeLessThan(4); // a trained model: far below the 8 bits of a uniform byte
    } finally {
      await model.close();
    }
  }, 60_000);
});
