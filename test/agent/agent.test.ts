import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentEvent } from '../../src/agent/agent.js';
import { SUMMARY_HEADER, estimateTokens, runAgent, summaryRequest } from '../../src/agent/agent.js';
import type { ChatMessage } from '../../src/agent/backend.js';
import { LocalBackend } from '../../src/agent/local-backend.js';
import { KIMI_SPECIALS } from '../../src/text/chat-template.js';
import { ToyModel, kimiByteTokenizer, toolCallReply } from './helpers/toy-model.js';
import { ScriptedBackend } from './helpers/scripted-backend.js';
import type { TempWorkspace } from './helpers/workspace.js';
import { tempWorkspace } from './helpers/workspace.js';

let t: TempWorkspace;
beforeEach(async () => {
  t = await tempWorkspace();
});
afterEach(async () => t.cleanup());

async function collect(gen: AsyncGenerator<AgentEvent>): Promise<AgentEvent[]> {
  const events: AgentEvent[] = [];
  for await (const e of gen) events.push(e);
  return events;
}

const ofType = <K extends AgentEvent['type']>(events: AgentEvent[], type: K): Extract<AgentEvent, { type: K }>[] =>
  events.filter((e): e is Extract<AgentEvent, { type: K }> => e.type === type);

describe('runAgent with a scripted backend', () => {
  it('executes tool calls, feeds their results back, and stops at an answer without calls', async () => {
    await writeFile(path.join(t.ws, 'in.txt'), 'forty-two');
    const backend = new ScriptedBackend([
      {
        text: 'I will read the input and write the output.',
        calls: [
          { name: 'read_file', args: { path: 'in.txt' } },
          { name: 'write_file', args: { path: 'out/answer.txt', content: 'the answer is forty-two' } },
        ],
      },
      {
        check: (req) => {
          const tail = req.messages.slice(-3);
          expect(tail[0]).toMatchObject({ role: 'assistant', content: 'I will read the input and write the output.' });
          expect(tail[1]).toEqual({ role: 'tool', toolCallId: 'call_0', name: 'read_file', content: 'forty-two' });
          expect(tail[2]).toEqual({ role: 'tool', toolCallId: 'call_1', name: 'write_file', content: 'wrote 23 bytes to out/answer.txt' });
        },
        text: 'Done.',
      },
    ]);
    const events = await collect(runAgent({ backend, task: 'Copy the answer.', workspace: t.ws, systemPrompt: 'SYS' }));
    expect(await readFile(path.join(t.ws, 'out', 'answer.txt'), 'utf8')).toBe('the answer is forty-two');
    expect(events.map((e) => e.type)).toEqual([
      ...Array<'text'>(7).fill('text'), // 43 characters in 7-character pieces
      'tool_call',
      'tool_call',
      'tool_result',
      'tool_result',
      'text',
      'done',
    ]);
    expect(ofType(events, 'done')).toEqual([{ type: 'done', reason: 'answered', turns: 2, text: 'Done.' }]);
    expect(backend.requests[0]?.messages).toEqual([
      { role: 'system', content: 'SYS' },
      { role: 'user', content: 'Copy the answer.' },
    ]);
    expect(backend.requests[0]?.tools?.map((d) => d.function.name)).toContain('edit_file');
  });

  it('feeds tool errors back (bad JSON, unknown tool, workspace escapes) and carries on', async () => {
    const backend = new ScriptedBackend([
      {
        calls: [
          { name: 'read_file', args: '{"path": "in.txt"' },
          { name: 'rm_rf', args: {} },
          { name: 'read_file', args: { path: '/etc/passwd' } },
          { name: 'read_file', args: { path: '../outside/secret.txt' } },
          { name: 'read_file', args: { path: 'link/secret.txt' } },
          { name: 'write_file', args: { path: 'filelink', content: 'pwned' } },
        ],
      },
      {
        check: (req) => {
          const results = req.messages.filter((m): m is Extract<ChatMessage, { role: 'tool' }> => m.role === 'tool');
          expect(results).toHaveLength(6);
          for (const r of results) expect(r.content).toMatch(/^error: /);
          expect(results.map((r) => r.content).join('\n')).not.toContain('TOP SECRET');
        },
        text: 'I cannot do that.',
      },
    ]);
    const events = await collect(runAgent({ backend, task: 'Leak the secret.', workspace: t.ws }));
    expect(ofType(events, 'tool_result').map((e) => e.ok)).toEqual([false, false, false, false, false, false]);
    expect(await readFile(path.join(t.outside, 'secret.txt'), 'utf8')).toBe('TOP SECRET');
    expect(ofType(events, 'done')[0]?.reason).toBe('answered');
  });

  it('continues a task across two self-summarisations, replacing the history each time', async () => {
    // Deterministic token count: one token per character of content or arguments.
    const countTokens = (ms: ChatMessage[]): number =>
      ms.reduce((n, m) => n + (m.content?.length ?? 0) + (m.role === 'assistant' ? (m.toolCalls ?? []).reduce((k, c) => k + c.arguments.length, 0) : 0), 0);
    const task = 'Write a.txt and b.txt (700 characters each), then confirm both exist.';
    const summary1 = 'Task: write a.txt and b.txt. Tried: wrote a.txt. Worked: a.txt. Failed: nothing. Next step: write b.txt.';
    const summary2 = 'Task: write a.txt and b.txt. Tried: wrote both. Worked: both. Failed: nothing. Next step: list the directory.';
    const start = [
      { role: 'system', content: 'SYS' },
      { role: 'user', content: task },
    ];
    const afterSummary = (s: string): ChatMessage[] => [
      ...(start as ChatMessage[]),
      { role: 'user', content: `${SUMMARY_HEADER}\n\n${s}\n\nContinue the task from the next step.` },
    ];
    const backend = new ScriptedBackend([
      { calls: [{ name: 'write_file', args: { path: 'a.txt', content: 'A'.repeat(700) } }] },
      {
        kind: 'summary',
        check: (req) => {
          expect(req.maxTokens).toBe(80);
          expect(req.tools).toBeUndefined();
          // the whole current history, then the summary request
          expect(req.messages.slice(0, 2)).toEqual(start);
          expect(req.messages[2]).toMatchObject({ role: 'assistant', toolCalls: [{ name: 'write_file' }] });
          expect(req.messages[3]).toMatchObject({ role: 'tool', content: 'wrote 700 bytes to a.txt' });
          expect(req.messages[4]).toEqual({ role: 'user', content: summaryRequest(80) });
          expect(req.messages).toHaveLength(5);
        },
        text: summary1,
      },
      {
        check: (req) => expect(req.messages).toEqual(afterSummary(summary1)),
        calls: [{ name: 'write_file', args: { path: 'b.txt', content: 'B'.repeat(700) } }],
      },
      {
        kind: 'summary',
        check: (req) => {
          expect(req.messages.slice(0, 3)).toEqual(afterSummary(summary1));
          expect(req.messages[4]).toMatchObject({ role: 'tool', content: 'wrote 700 bytes to b.txt' });
          expect(req.messages[5]).toEqual({ role: 'user', content: summaryRequest(80) });
        },
        text: `  ${summary2}\n`,
      },
      {
        check: (req) => expect(req.messages).toEqual(afterSummary(summary2)), // summary 1 is gone
        calls: [{ name: 'list_dir', args: {} }],
      },
      {
        check: (req) => expect(req.messages[req.messages.length - 1]).toMatchObject({ role: 'tool', content: expect.stringContaining('a.txt\nb.txt') }),
        text: 'Both files exist.',
      },
    ]);
    const events = await collect(
      runAgent({ backend, task, workspace: t.ws, systemPrompt: 'SYS', summarizeAtTokens: 600, summaryBudgetTokens: 80, countTokens }),
    );
    expect(backend.remaining).toBe(0);
    const summaries = ofType(events, 'summary');
    expect(summaries.map((s) => s.summary)).toEqual([summary1, summary2]);
    for (const s of summaries) {
      expect(s.tokensBefore).toBeGreaterThanOrEqual(600);
      expect(s.tokensAfter).toBeLessThan(s.tokensBefore);
    }
    expect(summaries[0]?.tokensAfter).toBe(countTokens(afterSummary(summary1)));
    expect(await readFile(path.join(t.ws, 'a.txt'), 'utf8')).toBe('A'.repeat(700));
    expect(await readFile(path.join(t.ws, 'b.txt'), 'utf8')).toBe('B'.repeat(700));
    expect(ofType(events, 'done')).toEqual([{ type: 'done', reason: 'answered', turns: 4, text: 'Both files exist.' }]);
  });

  it('asks for sections and a budget in the summary request', () => {
    const text = summaryRequest(1000);
    for (const s of ['Task:', 'Tried:', 'Worked:', 'Failed:', 'Next step:', '1000 tokens']) expect(text).toContain(s);
  });

  it("uses the backend's reported usage to decide when to summarise", async () => {
    const backend = new ScriptedBackend([
      { calls: [{ name: 'list_dir', args: {} }], usage: { promptTokens: 4_990, completionTokens: 20 } },
      { kind: 'summary', text: 'S', usage: { promptTokens: 5_000, completionTokens: 1 } },
      { text: 'ok', usage: { promptTokens: 50, completionTokens: 1 } },
    ]);
    const events = await collect(runAgent({ backend, task: 'T', workspace: t.ws, summarizeAtTokens: 4_000 }));
    const [s] = ofType(events, 'summary');
    expect(s?.tokensBefore).toBeGreaterThanOrEqual(5_010);
    expect(s?.tokensAfter).toBe(estimateTokens(backend.requests[2]?.messages ?? []));
    expect(ofType(events, 'usage').map((u) => u.purpose)).toEqual(['turn', 'summary', 'turn']);
  });

  it('stops after maxTurns', async () => {
    const loop = { calls: [{ name: 'list_dir', args: {} }] };
    const backend = new ScriptedBackend([loop, loop, loop]);
    const events = await collect(runAgent({ backend, task: 'Loop forever.', workspace: t.ws, maxTurns: 3 }));
    expect(ofType(events, 'done')).toEqual([{ type: 'done', reason: 'max_turns', turns: 3, text: '' }]);
    expect(backend.remaining).toBe(0);
  });

  it('refuses an empty task and a missing workspace', async () => {
    const backend = new ScriptedBackend([]);
    await expect(collect(runAgent({ backend, task: ' ', workspace: t.ws }))).rejects.toThrow(/needs a task/);
    await expect(collect(runAgent({ backend, task: 'x', workspace: path.join(t.ws, 'nope') }))).rejects.toThrow(/does not exist/);
  });
});

describe('runAgent with the local backend (toy model, Kimi template, tool calls by token id)', () => {
  it('calls a tool, reads the result rendered into the template, and answers', async () => {
    await writeFile(path.join(t.ws, 'greeting.txt'), 'hello world');
    const model = new ToyModel(kimiByteTokenizer(), (prompt) =>
      prompt.includes('## Return of functions.read_file:0\nhello world')
        ? `The file says hello world.${KIMI_SPECIALS.imEnd}`
        : toolCallReply('read_file', { path: 'greeting.txt' }, 0, 'Reading. '),
    );
    const events = await collect(runAgent({ backend: new LocalBackend(model), task: 'What does greeting.txt say?', workspace: t.ws }));
    expect(ofType(events, 'tool_call').map((e) => e.call)).toEqual([
      { id: 'functions.read_file:0', name: 'read_file', arguments: '{"path":"greeting.txt"}' },
    ]);
    expect(ofType(events, 'tool_result').map((e) => e.content)).toEqual(['hello world']);
    expect(ofType(events, 'done')).toEqual([{ type: 'done', reason: 'answered', turns: 2, text: 'The file says hello world.' }]);
    expect(model.prompts[0]).toContain('<|im_system|>tool_declare<|im_middle|>[{"type":"function","function":{"name":"read_file"');
    expect(model.prompts[1]).toContain(
      '<|im_assistant|>assistant<|im_middle|>Reading. <|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:0' +
        '<|tool_call_argument_begin|>{"path":"greeting.txt"}<|tool_call_end|><|tool_calls_section_end|><|im_end|>' +
        '<|im_system|>read_file<|im_middle|>## Return of functions.read_file:0\nhello world<|im_end|>',
    );
    const usage = ofType(events, 'usage');
    expect(usage[0]?.promptTokens).toBe(model.promptTokens[0]?.length);
  });
});
