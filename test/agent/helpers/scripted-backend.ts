/**
 * A real ChatBackend that replays a fixed script of model turns, for driving the agent loop. Each step says
 * whether it expects an ordinary turn or a summary request (a request without tools whose last message is the
 * summary prompt), so a script that gets out of step with the agent fails loudly. Every request is recorded.
 */
import type { ChatBackend, ChatChunk, ChatRequest, ChatToolCall } from '../../../src/agent/backend.js';

export interface ScriptStep {
  /** 'summary' steps answer a summarisation request; 'turn' steps an ordinary one (default). */
  kind?: 'turn' | 'summary';
  text?: string;
  calls?: { name: string; args: unknown }[];
  /** Reported usage (omitted: none is reported, as some servers do). */
  usage?: { promptTokens: number; completionTokens: number };
  /** Checks on the request (throwing fails the run at that step). */
  check?: (req: ChatRequest) => void;
}

export class ScriptedBackend implements ChatBackend {
  readonly requests: ChatRequest[] = [];
  private next = 0;
  private callCounter = 0;

  constructor(
    private readonly script: ScriptStep[],
    readonly contextSize?: number,
  ) {}

  get remaining(): number {
    return this.script.length - this.next;
  }

  async *chat(req: ChatRequest): AsyncGenerator<ChatChunk> {
    // A deep copy: the agent must not be able to change what it sent after the fact.
    this.requests.push(structuredClone({ ...req, signal: undefined }));
    const step = this.script[this.next++];
    if (!step) throw new Error(`scripted backend: no step left for request ${this.requests.length}`);
    const isSummary = req.tools === undefined; // the agent offers tools on every ordinary turn
    const kind = step.kind ?? 'turn';
    if ((kind === 'summary') !== isSummary) {
      throw new Error(`scripted backend: step ${this.next - 1} expects a ${kind} request, got ${isSummary ? 'a summary' : 'a turn'} request`);
    }
    step.check?.(req);
    const text = step.text ?? '';
    // Stream in small pieces, as a server would.
    for (let i = 0; i < text.length; i += 7) yield { type: 'text', text: text.slice(i, i + 7) };
    const calls: ChatToolCall[] = (step.calls ?? []).map((c) => ({
      id: `call_${this.callCounter++}`,
      name: c.name,
      arguments: typeof c.args === 'string' ? c.args : JSON.stringify(c.args),
    }));
    for (const call of calls) yield { type: 'tool_call', call };
    if (step.usage) yield { type: 'usage', ...step.usage };
    yield { type: 'finish', reason: calls.length > 0 ? 'tool_calls' : 'stop' };
  }
}
