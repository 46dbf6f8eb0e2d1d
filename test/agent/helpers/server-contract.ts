/**
 * What `webmoe serve` must do for *any* LocalTextModel, checked with the official `openai` client over
 * loopback. Nothing here depends on what the model says, so the engine integrator can run the same suite
 * on the real engine with a toy checkpoint:
 *
 *   describeServerContract('engine, toy checkpoint', async () => ({ model: await loadEngineModel(dir), modelId: 'toy' }));
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentEvent } from '../../../src/agent/agent.js';
import { runAgent } from '../../../src/agent/agent.js';
import type { ChatBackend } from '../../../src/agent/backend.js';
import type { LocalTextModel } from '../../../src/agent/local-backend.js';
import { LocalBackend } from '../../../src/agent/local-backend.js';
import { OpenAIBackend } from '../../../src/agent/openai-backend.js';
import type { RunningServer } from '../../../src/agent/server.js';
import { startServer } from '../../../src/agent/server.js';
import { renderChat } from '../../../src/text/chat-template.js';
import { tempWorkspace } from './workspace.js';

export interface ContractSetup {
  model: LocalTextModel;
  modelId: string;
  /** Releases the model (GPU buffers) after the suite. */
  dispose?: () => Promise<void>;
}

/** An `openai` client for a running server: no retries, so error statuses arrive as they are. */
export function clientFor(server: RunningServer): OpenAI {
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'test-key', maxRetries: 0 });
}

export function describeServerContract(label: string, setup: () => Promise<ContractSetup>): void {
  describe(`server contract: ${label}`, () => {
    let ctx: ContractSetup;
    let server: RunningServer;
    let client: OpenAI;
    const hello = [{ role: 'user' as const, content: 'Say hello.' }];

    beforeAll(async () => {
      ctx = await setup();
      server = await startServer({ model: ctx.model, modelId: ctx.modelId, port: 0 });
      client = clientFor(server);
    });
    afterAll(async () => {
      await server?.close();
      await ctx?.dispose?.();
    });

    it('lists the model', async () => {
      const models = await client.models.list();
      expect(models.data.map((m) => m.id)).toEqual([ctx.modelId]);
      expect((await client.models.retrieve(ctx.modelId)).id).toBe(ctx.modelId);
    });

    it('answers a non-streaming chat with consistent usage', async () => {
      const r = await client.chat.completions.create({ model: ctx.modelId, messages: hello, max_tokens: 8, temperature: 0 });
      const choice = r.choices[0];
      expect(r.object).toBe('chat.completion');
      expect(typeof choice?.message.content).toBe('string');
      expect(['stop', 'length', 'tool_calls']).toContain(choice?.finish_reason);
      expect(r.usage?.prompt_tokens).toBe(renderChat(ctx.model.tokenizer, hello).tokens.length);
      expect(r.usage?.completion_tokens).toBeLessThanOrEqual(8);
      expect(r.usage?.total_tokens).toBe((r.usage?.prompt_tokens ?? 0) + (r.usage?.completion_tokens ?? 0));
    });

    it('streams a chat as SSE chunks ending with [DONE], usage last when asked for', async () => {
      const stream = await client.chat.completions.create({
        model: ctx.modelId,
        messages: hello,
        max_tokens: 8,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      });
      const chunks = [];
      for await (const c of stream) chunks.push(c); // the loop ends only at [DONE]
      expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
      expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
      const finishes = chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter((f) => f !== null);
      expect(finishes).toHaveLength(1);
      const last = chunks[chunks.length - 1];
      expect(last?.choices).toEqual([]);
      expect(last?.usage?.prompt_tokens).toBe(renderChat(ctx.model.tokenizer, hello).tokens.length);
    });

    it('completes a token-id prompt within max_tokens', async () => {
      const prompt = ctx.model.tokenizer.encode('Once upon a time');
      const r = await client.completions.create({ model: ctx.modelId, prompt, max_tokens: 4, temperature: 0 });
      expect(r.object).toBe('text_completion');
      expect(typeof r.choices[0]?.text).toBe('string');
      expect(r.usage?.prompt_tokens).toBe(prompt.length);
      expect(r.usage?.completion_tokens).toBeLessThanOrEqual(4);
    });

    it('answers malformed requests with OpenAI-style 400s, unknown routes with 404, big bodies with 413', async () => {
      const bad = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"messages": [' });
      expect(bad.status).toBe(400);
      expect(await bad.json()).toEqual({
        error: { message: expect.stringMatching(/not valid JSON/), type: 'invalid_request_error', param: null, code: 'invalid_json' },
      });
      await expect(client.chat.completions.create({ model: ctx.modelId, messages: [] })).rejects.toMatchObject({
        status: 400,
        param: 'messages',
        type: 'invalid_request_error',
      });
      expect((await fetch(`${server.url}/v2/nothing`)).status).toBe(404);
      const big = client.chat.completions.create({ model: ctx.modelId, messages: [{ role: 'user', content: 'x'.repeat(1_100_000) }] });
      await expect(big).rejects.toMatchObject({ status: 413 });
      // and the server is still fine afterwards
      expect((await client.models.list()).data).toHaveLength(1);
    });

    it('runs the agent to a done event, on the local backend and through HTTP', async () => {
      const backends: ChatBackend[] = [
        new LocalBackend(ctx.model),
        new OpenAIBackend({ baseURL: `${server.url}/v1`, model: ctx.modelId, maxRetries: 0 }),
      ];
      for (const backend of backends) {
        const t = await tempWorkspace();
        try {
          let last: AgentEvent | undefined;
          for await (const e of runAgent({ backend, task: 'List the files.', workspace: t.ws, maxTurns: 2, maxTokensPerTurn: 16, temperature: 0 })) {
            last = e;
          }
          expect(last?.type).toBe('done');
        } finally {
          await t.cleanup();
        }
      }
    });

    it('survives a client that disconnects mid-stream, and serves the next request', async () => {
      const controller = new AbortController();
      const stream = await client.chat.completions.create(
        { model: ctx.modelId, messages: hello, max_tokens: 64, stream: true },
        { signal: controller.signal },
      );
      const it = stream[Symbol.asyncIterator]();
      await it.next();
      controller.abort();
      await it.next().catch(() => undefined); // aborted (or already finished: a fast model may be done)
      const r = await client.chat.completions.create({ model: ctx.modelId, messages: hello, max_tokens: 4 });
      expect(r.choices).toHaveLength(1);
    });
  });
}
