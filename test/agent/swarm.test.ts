/**
 * The agent swarm (src/agent/swarm.ts, `webmoe agent --parallel N`) with a backend that answers by what it is
 * asked: the plan splits the task in two, each sub-agent writes its file (confined to its own folder), the merging
 * agent reads both and writes the result. Checks the files, that the sub-agents' requests overlapped in time, and
 * the prefixed terminal output; plus the plan parser and the one-at-a-time wrapper for models that do not batch.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChatBackend, ChatChunk, ChatRequest } from '../../src/agent/backend.js';
import { swarmCommand } from '../../src/agent/cli-commands.js';
import type { LocalTextModel } from '../../src/agent/local-backend.js';
import { parsePlan, planRequest } from '../../src/agent/swarm.js';
import { serialized } from '../../src/cli/agent.js';
import type { GenerationEvent } from '../../src/engine/types.js';
import { Sink } from '../helpers/sink.js';
import { tempWorkspace, type TempWorkspace } from './helpers/workspace.js';

let t: TempWorkspace;
beforeEach(async () => {
  t = await tempWorkspace();
});
afterEach(async () => t.cleanup());

/** Replies by the request's content; counts requests in flight at once. */
class RoleBackend implements ChatBackend {
  inFlight = 0;
  maxInFlight = 0;
  private calls = 0;
  private subAgentStarts = 0;
  private release: () => void = () => {};
  private bothStarted = new Promise<void>((r) => (this.release = r));

  /**
   * The sub-agents' first requests meet here before either is answered, so "at once" does not depend on how the
   * machine schedules them (a fixed delay did, under load). Were the swarm to run its sub-agents one after another,
   * the second request would never arrive while the first waits: after 10 s the first goes on alone and
   * maxInFlight stays 1, which the test's assertion reports.
   */
  private async meetSubAgents(): Promise<void> {
    if (++this.subAgentStarts === 2) this.release();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.bothStarted, new Promise<void>((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
  }

  async *chat(req: ChatRequest): AsyncGenerator<ChatChunk> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setTimeout(r, 5)); // a reply takes time, as a real one does
      const first = String(req.messages.find((m) => m.role === 'user')?.content ?? '');
      const toolResults = req.messages.filter((m) => m.role === 'tool').length;
      const call = (name: string, args: unknown): ChatChunk => ({ type: 'tool_call', call: { id: `c${this.calls++}`, name, arguments: JSON.stringify(args) } });
      if (!req.tools) yield { type: 'text', text: '1. write a.txt saying A\n2) write b.txt saying B\n' };
      else if (first.includes('sub-agents worked')) {
        if (toolResults === 0) {
          yield call('read_file', { path: 'agent-1/a.txt' });
          yield call('read_file', { path: 'agent-2/b.txt' });
        } else if (toolResults === 2) {
          const got = req.messages.filter((m) => m.role === 'tool').map((m) => String(m.content)).join('+');
          yield call('write_file', { path: 'merged.txt', content: got });
        } else yield { type: 'text', text: 'merged both' };
      } else {
        const [file, word] = first.startsWith('write a.txt') ? ['a.txt', 'A'] : ['b.txt', 'B'];
        if (toolResults === 0) await this.meetSubAgents();
        if (toolResults === 0) yield call('write_file', { path: file, content: word });
        else yield { type: 'text', text: `wrote ${file}` };
      }
      yield { type: 'finish', reason: 'stop' };
    } finally {
      this.inFlight--;
    }
  }
}

describe('agent swarm', () => {
  it('plans, runs the sub-agents at once in their own folders, merges, and prints prefixed streams', async () => {
    const backend = new RoleBackend();
    const out = new Sink();
    const r = await swarmCommand({ backend, task: 'Write a.txt and b.txt, then merge them.', workspace: t.ws, parallel: 2, out, systemPrompt: 'SYS' });
    expect(r.subtasks).toEqual(['write a.txt saying A', 'write b.txt saying B']);
    expect(await readFile(path.join(t.ws, 'agent-1', 'a.txt'), 'utf8')).toBe('A');
    expect(await readFile(path.join(t.ws, 'agent-2', 'b.txt'), 'utf8')).toBe('B');
    await expect(stat(path.join(t.ws, 'a.txt'))).rejects.toThrow(); // confined to its folder
    expect(await readFile(path.join(t.ws, 'merged.txt'), 'utf8')).toBe('A+B');
    expect(backend.maxInFlight).toBeGreaterThanOrEqual(2);
    expect(r.agents.map((a) => a.reason)).toEqual(['answered', 'answered']);
    expect(r.merge.reason).toBe('answered');
    const lines = out.text.split('\n').filter(Boolean);
    expect(lines.every((l) => /^\[(1|2|merge)\] /.test(l)), out.text).toBe(true);
    expect(out.text).toContain('[1] wrote a.txt');
    expect(out.text).toContain('[merge] merged both');
  });

  it('parsePlan strips list markers and fills missing subtasks with the whole task', () => {
    expect(parsePlan('1. one\n\n- two\n(3) three\n', 'T', 3)).toEqual(['one', 'two', 'three']);
    expect(parsePlan('only one', 'T', 3)).toEqual(['only one', 'T', 'T']);
    expect(planRequest('do it', 4)).toContain('exactly 4 lines');
  });

  it('--parallel out of range is an InputError', async () => {
    await expect(swarmCommand({ backend: new RoleBackend(), task: 'x', workspace: t.ws, parallel: 1, out: new Sink() })).rejects.toThrow(/--parallel must be an integer from 2/);
  });
});

describe('serialized (models that do not batch)', () => {
  it('overlapping generations wait for each other, whole generation by whole generation', async () => {
    let running = 0;
    let overlaps = 0;
    const model: LocalTextModel = {
      tokenizer: undefined as never,
      contextSize: 64,
      eosTokenIds: [],
      generate: async function* (): AsyncGenerator<GenerationEvent> {
        if (running++ > 0) overlaps++;
        await new Promise((r) => setTimeout(r, 5));
        yield { type: 'token', token: 1, text: 'a', index: 0, elapsedMs: 0 };
        running--;
      },
    };
    const m = serialized(model);
    const drain = async () => {
      for await (const _ of m.generate([1], {}));
    };
    await Promise.all([drain(), drain(), drain()]);
    expect(overlaps).toBe(0);
    expect(serialized({ ...model, concurrency: 4 })).toEqual({ ...model, concurrency: 4 });
  });
});
