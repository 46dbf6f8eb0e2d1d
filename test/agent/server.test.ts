/**
 * The official `openai` client against the real server on 127.0.0.1, over a deterministic CPU toy model.
 * The generic contract (any model) is in helpers/server-contract.ts; here, exact replies, tool calls,
 * queueing and cancellation, which need a model whose behaviour is known.
 */
import http from 'node:http';
import OpenAI from 'openai';
import type { ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RunningServer } from '../../src/agent/server.js';
import { SerialQueue, hostName, isLoopbackName, startServer } from '../../src/agent/server.js';
import { KIMI_SPECIALS, renderChat } from '../../src/text/chat-template.js';
import { AbortError, NumericError } from '../../src/errors.js';
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
    [{ messages: [{ role: 'user', content: 'x' }], n: 2 }, 'n'], // this model does not batch: n > 1 needs one that does
    [{ messages: [{ role: 'user', content: 'x' }], n: 0 }, 'n'],
    [{ messages: [{ role: 'user', content: 'x' }], n: 65 }, 'n'],
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
    const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: chunks, duplex: 'half' } as RequestInit);
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

/** A plain HTTP request with full control of Host, Origin and Content-Type (fetch does not allow setting Host). */
function raw(
  url: string,
  o: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer; chunks?: number; chunkBytes?: number },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url + o.path, { method: o.method ?? 'GET', headers: o.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (o.chunks) {
      // a large upload written piece by piece, honouring back-pressure
      const piece = Buffer.alloc(o.chunkBytes ?? 1 << 20, 0x20);
      let left = o.chunks;
      const pump = (): void => {
        while (left > 0) {
          left--;
          if (!req.write(piece)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    } else req.end(o.body);
  });
}

describe('server: who may call it, and odd requests', () => {
  let server: RunningServer;
  let port: number;
  const json = { 'Content-Type': 'application/json' };
  const chatBody = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }] });
  beforeAll(async () => {
    server = await startServer({
      model: new ToyModel(kimiByteTokenizer(), weatherScript, 4096), modelId: MODEL, port: 0,
      allowHosts: ['box.lan'], allowOrigins: ['http://localhost:5173/'],
    });
    port = server.port;
  });
  afterAll(async () => server.close());

  it('POSTs must be application/json: a text/plain or untyped body gets 415 (a page can send those cross-site)', async () => {
    const cases: Array<Record<string, string>> = [{ 'Content-Type': 'text/plain' }, { 'Content-Type': 'application/x-www-form-urlencoded' }, {}];
    for (const headers of cases) {
      const r = await raw(server.url, { method: 'POST', path: '/v1/chat/completions', headers, body: chatBody });
      expect(r.status, JSON.stringify(headers)).toBe(415);
      expect(JSON.parse(r.body)).toMatchObject({ error: { type: 'invalid_request_error', code: 'unsupported_media_type' } });
    }
    const ok = await raw(server.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'Content-Type': 'application/json; charset=utf-8' }, body: chatBody });
    expect(ok.status).toBe(200);
  });

  it('accepts loopback Host names (any port) and --allow-host names; any other Host gets 403 (DNS rebinding)', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', `127.3.4.5:${port}`, `[::1]:${port}`, 'app.localhost:80', `box.lan:${port}`, 'box.lan']) {
      expect((await raw(server.url, { path: '/v1/models', headers: { Host: host } })).status, host).toBe(200);
    }
    for (const host of [`evil.example:${port}`, 'evil.example', '127.0.0.1.evil.example', '10.0.0.1', '[::2]:80', 'localhost.evil.example']) {
      const r = await raw(server.url, { method: 'POST', path: '/v1/chat/completions', headers: { Host: host, ...json }, body: chatBody });
      expect(r.status, host).toBe(403);
      expect(JSON.parse(r.body)).toEqual({ error: { message: expect.stringMatching(/--allow-host/), type: 'invalid_request_error', param: null, code: 'host_not_allowed' } });
    }
    expect(hostName('[::1]:8000')).toBe('::1');
    expect(hostName('Example.COM.:80')).toBe('example.com');
    expect(isLoopbackName('127.255.0.1')).toBe(true);
    expect(isLoopbackName('127.256.0.1')).toBe(false);
  });

  it('refuses foreign Origins with 403; an --allow-origin page gets CORS headers and preflight answers', async () => {
    for (const origin of ['https://evil.example', 'null', 'http://localhost:5174']) {
      const r = await raw(server.url, { method: 'POST', path: '/v1/chat/completions', headers: { Origin: origin, ...json }, body: chatBody });
      expect(r.status, origin).toBe(403);
      expect(JSON.parse(r.body)).toEqual({ error: { message: expect.stringMatching(/--allow-origin/), type: 'invalid_request_error', param: null, code: 'origin_not_allowed' } });
      expect(r.headers['access-control-allow-origin']).toBeUndefined();
      expect((await raw(server.url, { method: 'OPTIONS', path: '/v1/chat/completions', headers: { Origin: origin, 'Access-Control-Request-Method': 'POST' } })).status).toBe(403);
    }
    const page = 'http://localhost:5173';
    const pre = await raw(server.url, {
      method: 'OPTIONS', path: '/v1/chat/completions',
      headers: { Origin: page, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type, authorization' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers).toMatchObject({ 'access-control-allow-origin': page, 'access-control-allow-methods': 'GET, POST, OPTIONS', 'access-control-allow-headers': 'content-type, authorization' });
    const r = await raw(server.url, { method: 'POST', path: '/v1/chat/completions', headers: { Origin: page, ...json }, body: chatBody });
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBe(page);
    expect(JSON.parse(r.body).choices[0].message.content).toBe(HELLO);
    // streaming responses carry the header too
    const sse = await raw(server.url, { method: 'POST', path: '/v1/chat/completions', headers: { Origin: page, ...json }, body: JSON.stringify({ ...JSON.parse(chatBody), stream: true }) });
    expect(sse.headers['access-control-allow-origin']).toBe(page);
    expect(sse.body).toMatch(/data: \[DONE\]/);
    // the server's own origin is not cross-origin
    expect((await raw(server.url, { path: '/v1/models', headers: { Origin: `http://127.0.0.1:${port}` } })).status).toBe(200);
  });

  it("--allow-origin '*' lets any page call", async () => {
    const s2 = await startServer({ model: new ToyModel(kimiByteTokenizer(), weatherScript, 4096), modelId: MODEL, allowOrigins: ['*'] });
    try {
      const r = await raw(s2.url, { path: '/v1/models', headers: { Origin: 'https://anything.example' } });
      expect(r.status).toBe(200);
      expect(r.headers['access-control-allow-origin']).toBe('https://anything.example');
    } finally {
      await s2.close();
    }
  });

  it('a 20 MiB body (past the old 16 MiB drain cap) gets the documented 413, not a connection reset', async () => {
    const r = await raw(server.url, { method: 'POST', path: '/v1/chat/completions', headers: { ...json, 'Content-Length': String(20 << 20) }, chunks: 20 });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'request_too_large' } });
    const chunked = await raw(server.url, { method: 'POST', path: '/v1/chat/completions', headers: json, chunks: 40, chunkBytes: 512 << 10 });
    expect(chunked.status).toBe(413);
  });

  it('non-finite logits are a 500 with code numeric (they were a 400 blaming `tokens`)', async () => {
    const toy = new ToyModel(kimiByteTokenizer(), weatherScript, 4096);
    const broken = {
      tokenizer: toy.tokenizer, contextSize: toy.contextSize, eosTokenIds: toy.eosTokenIds,
      // eslint-disable-next-line require-yield
      generate: async function* (): AsyncGenerator<never> {
        throw new NumericError('the logits at position 3 are not finite (NaN or Infinity), so no token can be sampled');
      },
    };
    const s2 = await startServer({ model: broken, modelId: MODEL });
    try {
      await expect(clientFor(s2).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }] })).rejects.toMatchObject({
        status: 500, code: 'numeric', type: 'server_error',
      });
    } finally {
      await s2.close();
    }
  });

  it('/v1/models/%ZZ is a 404, not a 500', async () => {
    const r = await raw(server.url, { path: '/v1/models/%ZZ' });
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'model_not_found', param: 'model' } });
  });

  it('logprobs / top_logprobs are refused with a 400 naming the field (not silently ignored)', async () => {
    const client = clientFor(server);
    const messages = [{ role: 'user' as const, content: 'Hi' }];
    await expect(client.chat.completions.create({ model: MODEL, messages, logprobs: true })).rejects.toMatchObject({ status: 400, param: 'logprobs' });
    await expect(client.chat.completions.create({ model: MODEL, messages, top_logprobs: 2 })).rejects.toMatchObject({ status: 400, param: 'top_logprobs' });
    await expect(client.completions.create({ model: MODEL, prompt: 'Once', logprobs: 0 })).rejects.toMatchObject({ status: 400, param: 'logprobs' });
    const ok = await client.chat.completions.create({ model: MODEL, messages, logprobs: false });
    expect(ok.choices[0]?.logprobs).toBeNull();
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
