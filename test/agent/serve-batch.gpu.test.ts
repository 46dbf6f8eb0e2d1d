/**
 * `webmoe serve` over a batching model (the serve default, --max-sequences 8): concurrent requests through the
 * official `openai` client run together, each answer equal to the same request sent alone (greedy), nothing mixed
 * between streams; beyond the waiting queue a request gets 503 with an OpenAI-style error.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/agent/server.js';
import { interactiveModel } from '../../src/cli/load-model.js';
import { loadTextModel, requireTokenizer, type TextModel } from '../../src/engine/text-model.js';
import { folderFiles } from '../../src/model/node-checkpoint.js';
import { writeToyCheckpoint } from '../../src/model/toy.js';
import { testGpu } from '../helpers/gpu.js';
import { MINI_ID, MINI_TOY } from './helpers/engine-e2e.js';

let base: string;
let model: TextModel;
let server: RunningServer;
let client: OpenAI;
const logs: string[] = [];

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'webmoe-serve-batch-'));
  await writeToyCheckpoint(MINI_TOY, join(base, MINI_ID), { seed: 3 });
  model = await loadTextModel(folderFiles(join(base, MINI_ID)), { backend: 'webgpu', gpu: await testGpu(), ctxSize: 512, maxSequences: 3, maxQueue: 1 });
  server = await startServer({ model: interactiveModel(requireTokenizer(model)).model, modelId: MINI_ID, port: 0, log: (l) => logs.push(l) });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
});
afterAll(async () => {
  await server?.close();
  await model?.close();
  if (base) await rm(base, { recursive: true, force: true });
});

const ask = async (content: string, maxTokens: number): Promise<string> => {
  const r = await client.chat.completions.create({ model: MINI_ID, messages: [{ role: 'user', content }], max_tokens: maxTokens, temperature: 0 });
  expect(r.choices[0]?.finish_reason).toBe('length');
  expect(r.usage?.completion_tokens).toBe(maxTokens);
  return r.choices[0]!.message.content ?? '';
};

const streamed = async (content: string, maxTokens: number): Promise<string> => {
  const s = await client.chat.completions.create({ model: MINI_ID, messages: [{ role: 'user', content }], max_tokens: maxTokens, temperature: 0, stream: true });
  let text = '';
  for await (const c of s) text += c.choices[0]?.delta.content ?? '';
  return text;
};

describe('serve with batched decode', () => {
  it('concurrent requests each answer as they would alone, in batched steps', async () => {
    const prompts = ['alpha', 'the second prompt is longer than the first', 'gamma'];
    const alone: string[] = [];
    for (const [i, p] of prompts.entries()) alone.push(await ask(p, 10 + 3 * i));
    const before = model.scheduler!.stats();
    const together = await Promise.all(prompts.map((p, i) => (i === 1 ? streamed(p, 10 + 3 * i) : ask(p, 10 + 3 * i))));
    expect(together).toEqual(alone);
    const after = model.scheduler!.stats();
    // requests arrive and finish at different times: count the steps that decoded several of them
    const shared = after.batchSizes.reduce((a, n, rows) => a + (rows >= 2 ? n - (before.batchSizes[rows] ?? 0) : 0), 0);
    expect(shared, `steps with 2+ rows (histogram ${JSON.stringify(after.batchSizes)})`).toBeGreaterThanOrEqual(5);
    expect(logs.some((l) => /rows per step/.test(l))).toBe(true);
  });

  it('beyond the waiting queue a request gets 503 server_busy; the rest complete', async () => {
    const running = [ask('one', 40), ask('two', 40), ask('three', 40), ask('four (waits)', 5)];
    const refused = await client.chat.completions.create({ model: MINI_ID, messages: [{ role: 'user', content: 'five' }], max_tokens: 5 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(OpenAI.APIError);
    expect((refused as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((refused as InstanceType<typeof OpenAI.APIError>).code).toBe('server_busy');
    await Promise.all(running);
    expect(model.scheduler!.stats()).toMatchObject({ running: 0, waiting: 0 });
  });

  it('n choices: greedy choices equal the single answer; streamed choices carry their index; usage counts the prompt once', async () => {
    const single = await ask('choose', 9);
    const r = await client.chat.completions.create({ model: MINI_ID, messages: [{ role: 'user', content: 'choose' }], max_tokens: 9, temperature: 0, n: 3 });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    for (const c of r.choices) expect(c.message.content).toBe(single);
    const alone = await client.chat.completions.create({ model: MINI_ID, messages: [{ role: 'user', content: 'choose' }], max_tokens: 9, temperature: 0 });
    expect(r.usage?.prompt_tokens).toBe(alone.usage?.prompt_tokens);
    expect(r.usage?.completion_tokens).toBe(27);
    const s = await client.chat.completions.create({
      model: MINI_ID, messages: [{ role: 'user', content: 'choose' }], max_tokens: 6, temperature: 1, seed: 4, n: 2, stream: true, stream_options: { include_usage: true },
    });
    const texts = ['', ''];
    const finishes: (string | null)[] = [null, null];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const c of s) {
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        texts[ch.index] += ch.delta.content ?? '';
        if (ch.finish_reason) finishes[ch.index] = ch.finish_reason;
      }
    }
    expect(finishes).toEqual(['length', 'length']);
    expect(usage?.completion_tokens).toBe(12);
    expect(texts[0]!.length + texts[1]!.length).toBeGreaterThan(0);
  });
});
