/**
 * The official `openai` client against the real server on 127.0.0.1, over a deterministic CPU toy model.
 * The generic contract (any model) is in helpers/server-contract.ts; here, exact replies, tool calls,
 * queueing and cancellation, which need a model whose behaviour is known.
 */
import OpenAI from 'openai';
import type { ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RunningServer } from '../../src/agent/server.js';
import { SerialQueue, startServer } from '../../src/agent/server.js';
import { KIMI_SPECIALS, renderChat } from '../../src/engine/chat-template.js';
import { AbortError } from '../../src/errors.js';
import { clientFor, describeServerContract } from './helpers/server-contract.js';
import type { ToyScriptStep } from './helpers/toy-model.js';
import { ByteTokenizer, ToyModel, kimiByteTokenizer, toolCallReply } from './helpers/toy-model.js';

// A broken cancellation path would leave the toy model blocked forever: fail fast instead.
vi.setConfig({ testTimeout: 10_000, hookTimeout: 10_000 });

const MODEL = 'toy-kimi';
const HELLO = 'Hello there! How can I help?';
const STORY = ' there was a toy model.';

/** The toy's behaviour: a pure function of the rendered prompt. */
export function weatherScript(prompt: string): ToyScriptStep | string {
  if (!prompt.startsWith('<|im_')) return STORY; // raw completion, no template
  const lastUser = prompt.slice(prompt.lastIndexOf('<|im_user|>'));
  const ret = prompt.lastIndexOf('## Return of ');
  if (ret > prompt.lastIndexOf('<|im_user|>')) {
    const body = prompt.slice(prompt.indexOf('\n', ret) + 1, prompt.indexOf(KIMI_SPECIALS.imEnd, ret));
    return `The weather in Paris is ${(JSON.parse(body) as { temp: string }).temp}.${KIMI_SPECIALS.imEnd}`;
  }
  if (lastUser.includes('FAIL-NOW')) return { reply: `Oh no${KIMI_SPECIALS.imEnd}`, failAfter: 3 };
  if (lastUser.includes('HANG-NOW')) return { reply: `Thinking very hard${KIMI_SPECIALS.imEnd}`, hangAfter: 3 };
  if (lastUser.includes('weather') && prompt.includes('tool_declare')) return toolCallReply('get_weather', { city: 'Paris' });
  return `${HELLO}${KIMI_SPECIALS.imEnd}`;
}

const tools: ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather for a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
];
const ask: ChatCompletionMessageParam = { role: 'user', content: 'What is the weather in Paris?' };

describeServerContract('toy model (Kimi special ids)', async () => ({ model: new ToyModel(kimiByteTokenizer(), weatherScript), modelId: MODEL }));

for (const [label, makeTokenizer] of [
  ['Kimi special ids', kimiByteTokenizer],
  ['text fallback (byte tokenizer without specials)', (): ByteTokenizer => new ByteTokenizer()],
] as const) {
  describe(`server with the toy model: ${label}`, () => {
    let model: ToyModel;
    let server: RunningServer;
    let client: OpenAI;
    beforeAll(async () => {
      model = new ToyModel(makeTokenizer(), weatherScript, 4096);
      server = await startServer({ model, modelId: MODEL });
      client = clientFor(server);
    });
    afterAll(async () => server.close());

    it('answers a non-streaming chat', async () => {
      const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }] });
      expect(r.choices[0]?.message).toMatchObject({ role: 'assistant', content: HELLO });
      expect(r.choices[0]?.finish_reason).toBe('stop');
      const promptTokens = renderChat(model.tokenizer, [{ role: 'user', content: 'Hi' }]).tokens.length;
      // In text mode the end marker is generated as 10 byte tokens; in special mode it is one stop id, not emitted.
      const completion = HELLO.length + (model.tokenizer.specialTokenId('<|im_end|>') === undefined ? KIMI_SPECIALS.imEnd.length : 0);
      expect(r.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion });
    });

    it('streams a chat', async () => {
      const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], stream: true });
      let text = '';
      const finishes: (string | null)[] = [];
      for await (const c of stream) {
        text += c.choices[0]?.delta.content ?? '';
        finishes.push(c.choices[0]?.finish_reason ?? null);
      }
      expect(text).toBe(HELLO);
      expect(finishes[finishes.length - 1]).toBe('stop');
    });

    it('round-trips a tool call (non-streaming)', async () => {
      const r1 = await client.chat.completions.create({ model: MODEL, messages: [ask], tools });
      const msg = r1.choices[0]?.message;
      expect(r1.choices[0]?.finish_reason).toBe('tool_calls');
      expect(msg?.content).toBeNull();
      expect(msg?.tool_calls).toEqual([
        { id: 'functions.get_weather:0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      ]);
      expect(model.prompts[model.prompts.length - 1]).toContain(`<|im_system|>tool_declare<|im_middle|>${JSON.stringify(tools)}<|im_end|>`);
      const callId = msg?.tool_calls?.[0]?.id ?? '';
      const r2 = await client.chat.completions.create({
        model: MODEL,
        messages: [ask, msg as ChatCompletionMessageParam, { role: 'tool', tool_call_id: callId, content: '{"temp":"21C"}' }],
        tools,
      });
      expect(r2.choices[0]?.message.content).toBe('The weather in Paris is 21C.');
      expect(r2.choices[0]?.finish_reason).toBe('stop');
      // the tool result was rendered with the call's name (looked up from the assistant turn) and id
      expect(model.prompts[model.prompts.length - 1]).toContain('<|im_system|>get_weather<|im_middle|>## Return of functions.get_weather:0\n{"temp":"21C"}');
    });

    it('round-trips a tool call (streaming, OpenAI tool_calls deltas)', async () => {
      const stream = await client.chat.completions.create({ model: MODEL, messages: [ask], tools, stream: true });
      const deltas: ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
      let finish: string | null = null;
      for await (const c of stream) {
        deltas.push(...(c.choices[0]?.delta.tool_calls ?? []));
        finish = c.choices[0]?.finish_reason ?? finish;
      }
      expect(finish).toBe('tool_calls');
      expect(deltas).toEqual([
        { index: 0, id: 'functions.get_weather:0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      ]);
    });

    it("does not render tools with tool_choice 'none'", async () => {
      const r = await client.chat.completions.create({ model: MODEL, messages: [ask], tools, tool_choice: 'none' });
      expect(r.choices[0]?.message.content).toBe(HELLO);
      expect(model.prompts[model.prompts.length - 1]).not.toContain('tool_declare');
    });

    it('completes a string prompt, honours max_tokens and stop, and streams', async () => {
      const r = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 100 });
      expect(r.choices[0]).toMatchObject({ text: STORY, finish_reason: 'stop' });
      expect(r.usage).toEqual({ prompt_tokens: 16, completion_tokens: STORY.length, total_tokens: 16 + STORY.length });
      const short = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 5 });
      expect(short.choices[0]).toMatchObject({ text: STORY.slice(0, 5), finish_reason: 'length' });
      const stopped = await client.completions.create({ model: MODEL, prompt: 'Once', stop: ['toy'], max_tokens: 100 });
      expect(stopped.choices[0]).toMatchObject({ text: ' there was a ', finish_reason: 'stop' });
      const stream = await client.completions.create({
        model: MODEL,
        prompt: [[79, 110, 99, 101]], // "Once" as token ids, a batch of one
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: 100,
      });
      let text = '';
      let usage: OpenAI.CompletionUsage | undefined | null;
      for await (const c of stream) {
        text += c.choices[0]?.text ?? '';
        usage = c.usage ?? usage;
      }
      expect(text).toBe(STORY);
      expect(usage?.prompt_tokens).toBe(4);
      expect(model.prompts[model.prompts.length - 1]).toBe('Once');
    });
  });
}

describe('server: errors, queueing, cancellation', () => {
  let model: ToyModel;
  let server: RunningServer;
  let client: OpenAI;
  beforeAll(async () => {
    model = new ToyModel(kimiByteTokenizer(), weatherScript, 4096);
    server = await startServer({ model, modelId: MODEL, host: '127.0.0.1', port: 0 });
    client = clientFor(server);
  });
  afterAll(async () => server.close());

  const post = async (path: string, body: unknown): Promise<{ status: number; json: { error: Record<string, unknown> } }> => {
    const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as { error: Record<string, unknown> } };
  };

  it.each([
    [{ model: MODEL }, 'messages'],
    [{ messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'user', content: 3 }] }, 'messages[0].content'],
    [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages[0].content[0]'],
    [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].tool_call_id'],
    [{ messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 1 }] }] }, 'messages[0].tool_calls[0]'],
    [{ messages: [{ role: 'user', content: 'x' }], temperature: 5 }, 'temperature'],
    [{ messages: [{ role: 'user', content: 'x' }], max_tokens: 0 }, 'max_tokens'],
    [{ messages: [{ role: 'user', content: 'x' }], stream: 'yes' }, 'stream'],
    [{ messages: [{ role: 'user', content: 'x' }], n: 2 }, 'n'],
    [{ messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function' }] }, 'tools[0]'],
    [{ messages: [{ role: 'user', content: 'x' }], tool_choice: 'required' }, 'tool_choice'],
    [{ messages: [{ role: 'user', content: 'x' }], stop: [1] }, 'stop'],
  ])('chat: 400 for %j (param %s)', async (body, param) => {
    const { status, json } = await post('/v1/chat/completions', body);
    expect(status).toBe(400);
    expect(json.error).toMatchObject({ type: 'invalid_request_error', param });
    expect(typeof json.error['message']).toBe('string');
  });

  it.each([
    [{ prompt: '' }, 'prompt'],
    [{ prompt: ['a', 'b'] }, 'prompt'],
    [{ prompt: [1, -2] }, 'prompt'],
    [{}, 'prompt'],
  ])('completions: 400 for %j', async (body, param) => {
    const { status, json } = await post('/v1/completions', body);
    expect(status).toBe(400);
    expect(json.error).toMatchObject({ type: 'invalid_request_error', param });
  });

  it('a 400 for a body that is JSON but not an object, 404 for another model, 405 for a wrong method', async () => {
    expect((await post('/v1/chat/completions', [1, 2])).status).toBe(400);
    await expect(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
    });
    await expect(client.models.retrieve('gpt-4o')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const res = await fetch(`${server.url}/v1/chat/completions`);
    expect(res.status).toBe(405);
    const unknown = await fetch(`${server.url}/v1/embeddings`, { method: 'POST', body: '{}' });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'unknown_url' } });
  });

  it('413 for a body over 1 MiB, from the declared length or from a chunked upload', async () => {
    await expect(
      client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x'.repeat((1 << 20) + 10) }] }),
    ).rejects.toMatchObject({ status: 413 });
    const chunks = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 20; i++) c.enqueue(new Uint8Array(64 * 1024).fill(32));
        c.close();
      },
    });
    const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: chunks, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: 'request_too_large' } });
  });

  it('400 context_length_exceeded for a prompt longer than the context', async () => {
    await expect(
      client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x'.repeat(5000) }] }),
    ).rejects.toMatchObject({ status: 400, code: 'context_length_exceeded' });
  });

  it('runs concurrent requests one at a time, in order', async () => {
    const before = model.prompts.length;
    const replies = await Promise.all(
      [1, 2, 3].map((i) => client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: `Hi #${i}` }] })),
    );
    expect(replies.map((r) => r.choices[0]?.message.content)).toEqual([HELLO, HELLO, HELLO]);
    expect(model.maxActive).toBe(1);
    expect(model.prompts.slice(before).map((p) => /Hi #(\d)/.exec(p)?.[1])).toEqual(['1', '2', '3']);
  });

  it('aborts the generation of a streaming client that disconnects, then serves the next request', async () => {
    const hung = model.nextHang();
    const aborted = model.nextAbort();
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: MODEL, messages: [{ role: 'user', content: 'please HANG-NOW' }], stream: true },
      { signal: controller.signal },
    );
    const it = stream[Symbol.asyncIterator]();
    expect((await it.next()).value?.choices[0]?.delta.role).toBe('assistant');
    await hung; // the model is now blocked mid-generation, holding the queue
    const queued = client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hi after' }] });
    controller.abort();
    await it.next().catch(() => undefined);
    await aborted; // the model's AbortSignal fired
    expect((await queued).choices[0]?.message.content).toBe(HELLO); // and the queue moved on
    expect(model.maxActive).toBe(1);
  });

  it('aborts the generation of a non-streaming client that disconnects', async () => {
    const hung = model.nextHang();
    const aborted = model.nextAbort();
    const controller = new AbortController();
    const req = client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'HANG-NOW, then' }] }, { signal: controller.signal });
    await hung;
    controller.abort();
    await expect(req).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    await aborted;
    const next = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }] });
    expect(next.choices[0]?.message.content).toBe(HELLO);
  });
});

describe('server: failures', () => {
  it('sends an engine failure mid-stream as an SSE error event, a failure before streaming as a 500', async () => {
    const model = new ToyModel(kimiByteTokenizer(), weatherScript);
    const server = await startServer({ model, modelId: MODEL });
    try {
      const client = clientFor(server);
      const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'FAIL-NOW' }], stream: true });
      let text = '';
      const err = await (async () => {
        for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
      })().catch((e: unknown) => e);
      expect(text).toBe('Oh ');
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect((err as Error).message).toMatch(/toy engine failure/);
      await expect(
        client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'FAIL-NOW' }] }),
      ).rejects.toMatchObject({ status: 500, type: 'server_error' });
      const ok = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }] });
      expect(ok.choices[0]?.message.content).toBe(HELLO);
    } finally {
      await server.close();
    }
  });

  it('refuses a port that is taken with a readable error', async () => {
    const model = new ToyModel(kimiByteTokenizer(), weatherScript);
    const a = await startServer({ model, modelId: MODEL });
    try {
      await expect(startServer({ model, modelId: MODEL, port: a.port })).rejects.toThrow(/cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
    } finally {
      await a.close();
    }
  });
});

describe('SerialQueue', () => {
  it('runs tasks in order, one at a time, and skips a task whose signal fired while it waited', async () => {
    const q = new SerialQueue();
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const a = q.run(async () => {
      log.push('a start');
      await gate;
      log.push('a end');
    });
    const controller = new AbortController();
    const b = q.run(async () => void log.push('b'), controller.signal);
    const c = q.run(async () => {
      log.push('c');
      throw new Error('c failed');
    });
    const d = q.run(async () => void log.push('d'));
    controller.abort();
    release();
    await a;
    await expect(b).rejects.toBeInstanceOf(AbortError);
    await expect(c).rejects.toThrow('c failed');
    await d;
    expect(log).toEqual(['a start', 'a end', 'c', 'd']);
  });
});
