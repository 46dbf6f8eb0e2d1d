/**
 * OpenAIBackend end to end: the agent drives the toy model through HTTP (official client → webmoe server →
 * Kimi template → tool calls by token id → OpenAI tool_calls → back into the agent).
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AgentEvent } from '../../src/agent/agent.js';
import { SUMMARY_HEADER, runAgent } from '../../src/agent/agent.js';
import { BackendError, collectReply } from '../../src/agent/backend.js';
import { OpenAIBackend } from '../../src/agent/openai-backend.js';
import type { RunningServer } from '../../src/agent/server.js';
import { startServer } from '../../src/agent/server.js';
import { KIMI_SPECIALS as S } from '../../src/text/chat-template.js';
import { AbortError } from '../../src/errors.js';
import { ToyModel, kimiByteTokenizer } from './helpers/toy-model.js';
import type { TempWorkspace } from './helpers/workspace.js';
import { tempWorkspace } from './helpers/workspace.js';

// A broken cancellation path would leave the toy model blocked forever: fail fast instead.
vi.setConfig({ testTimeout: 10_000, hookTimeout: 10_000 });

const MODEL = 'toy-agent';

/** A toy "coding model": two tool calls, then (after a summary) an answer. Decided from the rendered prompt. */
function agentScript(prompt: string): string | { reply: string; hangAfter: number } {
  const lastUser = prompt.slice(prompt.lastIndexOf('<|im_user|>'));
  if (lastUser.includes('HANG-NOW')) return { reply: `Working on it${S.imEnd}`, hangAfter: 2 };
  if (lastUser.includes('Your context is nearly full')) {
    return `Task: write notes.txt. Tried: wrote it. Worked: notes.txt exists. Failed: nothing. Next step: report.${S.imEnd}`;
  }
  if (lastUser.includes(SUMMARY_HEADER)) return `notes.txt is written.${S.imEnd}`;
  if (prompt.includes('## Return of')) return `Unexpected: no summary was requested.${S.imEnd}`;
  const call = (name: string, idx: number, args: unknown): string =>
    `${S.callBegin}functions.${name}:${idx}${S.argBegin}${JSON.stringify(args)}${S.callEnd}`;
  return `I'll write the file and check.${S.sectionBegin}${call('write_file', 0, { path: 'notes.txt', content: 'hello from the toy' })}${call('list_dir', 1, {})}${S.sectionEnd}${S.imEnd}`;
}

let model: ToyModel;
let server: RunningServer;
let t: TempWorkspace;
beforeAll(async () => {
  model = new ToyModel(kimiByteTokenizer(), agentScript);
  server = await startServer({ model, modelId: MODEL });
});
afterAll(async () => server.close());
beforeEach(async () => {
  t = await tempWorkspace();
});
afterEach(async () => t.cleanup());

const backendFor = (url: string, modelName = MODEL): OpenAIBackend => new OpenAIBackend({ baseURL: `${url}/v1`, model: modelName, maxRetries: 0 });

describe('OpenAIBackend against webmoe serve', () => {
  it('runs the agent end to end through HTTP, with a self-summarisation on the way', async () => {
    const events: AgentEvent[] = [];
    for await (const e of runAgent({ backend: backendFor(server.url), task: 'Write notes.txt.', workspace: t.ws, summarizeAtTokens: 1 })) {
      events.push(e);
    }
    expect(await readFile(path.join(t.ws, 'notes.txt'), 'utf8')).toBe('hello from the toy');
    const calls = events.flatMap((e) => (e.type === 'tool_call' ? [e.call] : []));
    expect(calls).toEqual([
      { id: 'functions.write_file:0', name: 'write_file', arguments: '{"path":"notes.txt","content":"hello from the toy"}' },
      { id: 'functions.list_dir:1', name: 'list_dir', arguments: '{}' },
    ]);
    const results = events.flatMap((e) => (e.type === 'tool_result' ? [[e.ok, e.content]] : []));
    expect(results).toEqual([
      [true, 'wrote 18 bytes to notes.txt'],
      [true, 'dangling@\nfilelink@\nlink@\nnotes.txt'],
    ]);
    const text = events.flatMap((e) => (e.type === 'text' ? [e.text] : [])).join('');
    expect(text).toBe("I'll write the file and check.notes.txt is written.");
    expect(events.filter((e) => e.type === 'summary')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'usage').map((e) => e.type === 'usage' && e.purpose)).toEqual(['turn', 'summary', 'turn']);
    expect(events[events.length - 1]).toEqual({ type: 'done', reason: 'answered', turns: 2, text: 'notes.txt is written.' });
    // The summary request went through the server without tools; the assistant's tool calls and the
    // results came back into the Kimi template with the same ids.
    const summaryPrompt = model.prompts.find((p) => p.includes('Your context is nearly full')) ?? '';
    expect(summaryPrompt).not.toContain('tool_declare');
    expect(summaryPrompt).toContain('<|tool_call_begin|>functions.list_dir:1<|tool_call_argument_begin|>{}<|tool_call_end|>');
    expect(summaryPrompt).toContain('<|im_system|>write_file<|im_middle|>## Return of functions.write_file:0\nwrote 18 bytes to notes.txt<|im_end|>');
  });

  it('turns HTTP errors into BackendError with the status', async () => {
    const err = await collectReply(backendFor(server.url, 'no-such-model').chat({ messages: [{ role: 'user', content: 'x' }] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect(err).toMatchObject({ status: 404 });
  });

  it('cancels through the AbortSignal (and the server aborts the generation)', async () => {
    const hung = model.nextHang();
    const aborted = model.nextAbort();
    const controller = new AbortController();
    const reply = collectReply(backendFor(server.url).chat({ messages: [{ role: 'user', content: 'HANG-NOW' }], signal: controller.signal }));
    await hung;
    controller.abort();
    await expect(reply).rejects.toBeInstanceOf(AbortError);
    await aborted;
  });

  it('reports an unreachable endpoint as a BackendError', async () => {
    const gone = await startServer({ model, modelId: MODEL });
    await gone.close();
    await expect(collectReply(backendFor(gone.url).chat({ messages: [{ role: 'user', content: 'x' }] }))).rejects.toBeInstanceOf(BackendError);
  });
});

describe('OpenAIBackend on fragmented tool-call deltas', () => {
  // vLLM and OpenAI split a call over many chunks (id and name first, arguments in pieces, calls interleaved
  // by index). webmoe serve sends whole calls, so replay that wire format from a minimal real HTTP server.
  const chunks = [
    { delta: { role: 'assistant', content: 'Let me ' } },
    { delta: { content: 'check.' } },
    { delta: { tool_calls: [{ index: 0, id: 'call_A', type: 'function', function: { name: 'read_file', arguments: '' } }] } },
    { delta: { tool_calls: [{ index: 0, function: { arguments: '{"pa' } }] } },
    { delta: { tool_calls: [{ index: 1, id: 'call_B', type: 'function', function: { name: 'grep', arguments: '{"pattern":' } }] } },
    { delta: { tool_calls: [{ index: 0, function: { arguments: 'th":"a.txt"}' } }] } },
    { delta: { tool_calls: [{ index: 1, function: { arguments: '"x"}' } }] } },
    { delta: {}, finish_reason: 'tool_calls' },
  ];
  let replay: http.Server;
  let url: string;
  let lastBody: Record<string, unknown> = {};
  beforeAll(async () => {
    replay = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        lastBody = JSON.parse(body) as Record<string, unknown>;
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        for (const c of chunks) {
          const chunk = { id: 'x', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, logprobs: null, finish_reason: null, ...c }] };
          res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        }
        const usage = { id: 'x', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [], usage: { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 } };
        res.end(`data: ${JSON.stringify(usage)}\n\ndata: [DONE]\n\n`);
      });
    });
    await new Promise<void>((resolve) => replay.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(replay.address() as AddressInfo).port}`;
  });
  afterAll(async () => new Promise<void>((resolve) => replay.close(() => resolve())));

  it('assembles calls by index and sends an OpenAI-shaped request', async () => {
    const backend = backendFor(url, 'remote-kimi');
    const reply = await collectReply(
      backend.chat({
        messages: [
          { role: 'system', content: 'S' },
          { role: 'user', content: 'U' },
          { role: 'assistant', content: null, toolCalls: [{ id: 'c1', name: 'list_dir', arguments: '{}' }] },
          { role: 'tool', toolCallId: 'c1', name: 'list_dir', content: 'a.txt' },
        ],
        tools: [{ type: 'function', function: { name: 'read_file' } }],
        maxTokens: 99,
        temperature: 0.5,
      }),
    );
    expect(reply).toEqual({
      text: 'Let me check.',
      toolCalls: [
        { id: 'call_A', name: 'read_file', arguments: '{"path":"a.txt"}' },
        { id: 'call_B', name: 'grep', arguments: '{"pattern":"x"}' },
      ],
      finishReason: 'tool_calls',
      usage: { promptTokens: 7, completionTokens: 5 },
    });
    expect(lastBody).toMatchObject({
      model: 'remote-kimi',
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 99,
      temperature: 0.5,
      tools: [{ type: 'function', function: { name: 'read_file' } }],
      messages: [
        { role: 'system', content: 'S' },
        { role: 'user', content: 'U' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'list_dir', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: 'a.txt' },
      ],
    });
  });
});
