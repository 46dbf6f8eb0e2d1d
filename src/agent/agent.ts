/**
 * The agent loop: send the conversation, stream the reply, run the tools it asks for, feed the results back,
 * until the model answers without a tool call (or maxTurns). When the context estimate reaches a trigger the
 * model is asked, in a separate request, to summarise its working state; the history is then replaced by
 * system prompt + task + summary, and the loop continues from there.
 */
import type { ChatBackend, ChatMessage, ChatToolCall } from './backend.js';
import type { ToolOptions } from './tools.js';
import { Toolbox } from './tools.js';
import { InputError } from '../errors.js';

export type AgentEvent =
  | { type: 'text'; text: string; turn: number }
  | { type: 'tool_call'; call: ChatToolCall; turn: number }
  | { type: 'tool_result'; call: ChatToolCall; ok: boolean; content: string; turn: number }
  | { type: 'summary'; summary: string; tokensBefore: number; tokensAfter: number; turn: number }
  | { type: 'usage'; promptTokens: number; completionTokens: number; purpose: 'turn' | 'summary'; turn: number }
  | { type: 'done'; reason: 'answered' | 'max_turns'; turns: number; text: string };

export interface AgentOptions {
  backend: ChatBackend;
  task: string;
  /** Root directory every tool is confined to. */
  workspace: string;
  systemPrompt?: string;
  /** Model requests, not counting summary requests. Default 50. */
  maxTurns?: number;
  /** Summarise when the context estimate reaches this many tokens. Default 70% of the backend's context, else 48 000. */
  summarizeAtTokens?: number;
  /** Token budget for a summary (sent as its maxTokens and stated in the request). Default 1000. */
  summaryBudgetTokens?: number;
  /**
   * Estimates a conversation's size in tokens. Default: characters / 4, corrected by the backend's reported
   * usage when it gives one (usage covers everything up to the last reply; only newer messages are estimated).
   */
  countTokens?: (messages: ChatMessage[]) => number;
  maxTokensPerTurn?: number;
  temperature?: number;
  tools?: ToolOptions;
  signal?: AbortSignal;
}

export const SUMMARY_HEADER = 'Summary of your progress so far (the earlier conversation was compacted to save context):';

/** The request appended to the conversation to obtain a summary. */
export function summaryRequest(budgetTokens: number): string {
  return [
    'Your context is nearly full and the conversation so far will be replaced by a summary you write now.',
    `Write it in at most about ${budgetTokens} tokens, with these sections:`,
    'Task: the task, in your own words, with any requirements you learned.',
    'Tried: what you have done so far (files read or changed, commands run).',
    'Worked: what succeeded, with exact file paths, names and values you will need again.',
    'Failed: what did not work and why, so you do not repeat it.',
    'Next step: exactly what to do next.',
    'Do not call tools in this reply.',
  ].join('\n');
}

export function defaultAgentSystemPrompt(): string {
  return [
    'You are a careful coding agent working inside one workspace directory.',
    'Use the tools to inspect and change files and to run commands; every path is relative to the workspace root,',
    'and paths outside it are refused. Prefer small, verified steps: read before you edit, and run tests or the',
    'program after changing it. When the task is complete, reply without calling any tool and say briefly what you did.',
  ].join(' ');
}

/** chars/4 over everything a template would render, plus a few tokens of per-message overhead. */
export function estimateTokens(messages: ChatMessage[]): number {
  let chars = 0;
  for (const m of messages) {
    chars += 16 + (m.content?.length ?? 0);
    if (m.role === 'assistant') for (const c of m.toolCalls ?? []) chars += 32 + c.name.length + c.arguments.length;
  }
  return Math.ceil(chars / 4);
}

/** Tracks the context size: the backend's last reported usage for a prefix of the history, plus estimates. */
class ContextMeter {
  private base: { messages: number; tokens: number } | undefined;
  constructor(
    private readonly count: (m: ChatMessage[]) => number,
    private readonly useUsage: boolean,
  ) {}
  estimate(history: ChatMessage[]): number {
    if (!this.base || this.base.messages > history.length) return this.count(history);
    return this.base.tokens + this.count(history.slice(this.base.messages));
  }
  record(messages: number, tokens: number): void {
    if (this.useUsage) this.base = { messages, tokens };
  }
  reset(): void {
    this.base = undefined;
  }
}

export async function* runAgent(opts: AgentOptions): AsyncGenerator<AgentEvent> {
  if (!opts.task.trim()) throw new InputError('the agent needs a task', 'task');
  const { backend, signal } = opts;
  const toolbox = await Toolbox.create(opts.workspace, opts.tools);
  const maxTurns = opts.maxTurns ?? 50;
  const budget = opts.summaryBudgetTokens ?? 1000;
  const trigger = opts.summarizeAtTokens ?? (backend.contextSize ? Math.floor(backend.contextSize * 0.7) : 48_000);
  const meter = new ContextMeter(opts.countTokens ?? estimateTokens, opts.countTokens === undefined);
  const start: ChatMessage[] = [
    { role: 'system', content: opts.systemPrompt ?? defaultAgentSystemPrompt() },
    { role: 'user', content: opts.task },
  ];
  let history = [...start];
  let compactable = false; // a reply has arrived since the last compaction (else a summary cannot shrink anything)
  let lastText = '';

  for (let turn = 1; turn <= maxTurns; turn++) {
    const tokensBefore = meter.estimate(history);
    if (compactable && tokensBefore >= trigger) {
      let summary = '';
      const messages: ChatMessage[] = [...history, { role: 'user', content: summaryRequest(budget) }];
      for await (const c of backend.chat({ messages, maxTokens: budget, temperature: opts.temperature, signal })) {
        if (c.type === 'text') summary += c.text;
        else if (c.type === 'usage') yield { ...c, type: 'usage', purpose: 'summary', turn };
        // tool calls in a summary reply are ignored: the request asked for none and no tools were offered
      }
      summary = summary.trim() || '(the model produced an empty summary)';
      history = [...start, { role: 'user', content: `${SUMMARY_HEADER}\n\n${summary}\n\nContinue the task from the next step.` }];
      meter.reset();
      compactable = false;
      yield { type: 'summary', summary, tokensBefore, tokensAfter: meter.estimate(history), turn };
    }

    let text = '';
    const calls: ChatToolCall[] = [];
    const req = { messages: history, tools: toolbox.definitions, maxTokens: opts.maxTokensPerTurn, temperature: opts.temperature, signal };
    for await (const c of backend.chat(req)) {
      if (c.type === 'text') {
        text += c.text;
        yield { type: 'text', text: c.text, turn };
      } else if (c.type === 'tool_call') {
        calls.push(c.call);
        yield { type: 'tool_call', call: c.call, turn };
      } else if (c.type === 'usage') {
        meter.record(history.length + 1, c.promptTokens + c.completionTokens);
        yield { ...c, type: 'usage', purpose: 'turn', turn };
      }
    }
    history = [...history, { role: 'assistant', content: text || null, ...(calls.length > 0 ? { toolCalls: calls } : {}) }];
    compactable = true;
    lastText = text;
    if (calls.length === 0) {
      yield { type: 'done', reason: 'answered', turns: turn, text };
      return;
    }
    for (const call of calls) {
      const result = await toolbox.execute(call.name, call.arguments, signal);
      history = [...history, { role: 'tool', toolCallId: call.id, name: call.name, content: result.content }];
      yield { type: 'tool_result', call, ok: result.ok, content: result.content, turn };
    }
  }
  yield { type: 'done', reason: 'max_turns', turns: maxTurns, text: lastText };
}
