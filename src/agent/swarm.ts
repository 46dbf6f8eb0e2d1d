/**
 * An agent swarm (`webmoe agent --parallel N`), after the Kimi agent-swarm pattern: the model first splits the
 * task into N independent subtasks (one request, no tools); N sub-agents then work on them at the same time, each
 * in its own subfolder of the workspace (`agent-1` .. `agent-N`, its tools confined there) with its own context;
 * last, a merging agent works in the whole workspace with every sub-agent's final report and combines their work.
 *
 * The sub-agents' requests overlap, so on webmoe's own engine their decode steps are batched (the model is loaded
 * with one sequence per sub-agent); on a server (vLLM, SGLang, `webmoe serve`) they are concurrent requests.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../errors.js';
import { runAgent, type AgentEvent, type AgentOptions } from './agent.js';
import { collectReply } from './backend.js';

export const MAX_PARALLEL = 16;

export interface SwarmOptions extends AgentOptions {
  /** Sub-agents (2 .. MAX_PARALLEL). */
  parallel: number;
  /** Every event, tagged with who produced it: a sub-agent (1 .. N) or the merging agent ('merge'). */
  onEvent?: (who: number | 'merge', ev: AgentEvent) => void;
}

export interface SwarmAgentResult {
  reason: 'answered' | 'max_turns';
  turns: number;
  /** The agent's final text. */
  text: string;
}

export interface SwarmResult {
  subtasks: string[];
  /** Sub-agent i's folder (relative to the workspace) and result, in order. */
  agents: Array<SwarmAgentResult & { folder: string }>;
  merge: SwarmAgentResult;
}

/** The request that asks for the split (no tools, one reply). */
export function planRequest(task: string, n: number): string {
  return (
    `Split the following task into ${n} independent subtasks that ${n} people could do at the same time, each in ` +
    `a separate folder, without talking to each other. Answer with exactly ${n} lines, one subtask per line, and ` +
    `nothing else.\n\nTask: ${task}`
  );
}

/** The reply's subtasks: non-empty lines without list markers; missing ones become the whole task. */
export function parsePlan(reply: string, task: string, n: number): string[] {
  const lines = reply
    .split('\n')
    .map((l) => l.replace(/^\s*(?:[-*•]|\d+[.)]|\(\d+\))\s*/, '').trim())
    .filter((l) => l.length > 0);
  return Array.from({ length: n }, (_, i) => lines[i] ?? task);
}

export async function runSwarm(o: SwarmOptions): Promise<SwarmResult> {
  const n = o.parallel;
  if (!Number.isInteger(n) || n < 2 || n > MAX_PARALLEL) throw new InputError(`--parallel must be an integer from 2 to ${MAX_PARALLEL}, got ${n}`, 'parallel');
  const { parallel: _n, onEvent, ...agentOpts } = o;
  const plan = await collectReply(
    o.backend.chat({ messages: [{ role: 'user', content: planRequest(o.task, n) }], maxTokens: 120 * n, temperature: o.temperature, signal: o.signal }),
  );
  const subtasks = parsePlan(plan.text, o.task, n);
  const folders = subtasks.map((_, i) => `agent-${i + 1}`);
  for (const f of folders) await mkdir(path.join(o.workspace, f), { recursive: true });
  const agents = await Promise.all(
    subtasks.map(async (sub, i) => ({
      folder: folders[i]!,
      ...(await drive(
        runAgent({
          ...agentOpts,
          task: `${sub}\n\n(You are sub-agent ${i + 1} of ${n} on the task: "${o.task}". Work only in your folder; a last step merges the sub-agents' work.)`,
          workspace: path.join(o.workspace, folders[i]!),
        }),
        (ev) => onEvent?.(i + 1, ev),
      )),
    })),
  );
  const reports = agents.map((a, i) => `## ${a.folder}: ${subtasks[i]}\n${a.text.trim() || '(no report)'}`).join('\n\n');
  const merge = await drive(
    runAgent({
      ...agentOpts,
      task: `${o.task}\n\n${n} sub-agents worked on parts of this task, each in its own folder of this workspace. Their final reports:\n\n${reports}\n\nCombine their work into the final result and report what you did.`,
    }),
    (ev) => onEvent?.('merge', ev),
  );
  return { subtasks, agents, merge };
}

/** Runs one agent to its end, passing on its events; its final text and how it ended. */
async function drive(events: AsyncGenerator<AgentEvent>, onEvent: (ev: AgentEvent) => void): Promise<SwarmAgentResult> {
  const result: SwarmAgentResult = { reason: 'answered', turns: 0, text: '' };
  for await (const ev of events) {
    onEvent(ev);
    if (ev.type === 'done') Object.assign(result, { reason: ev.reason, turns: ev.turns, text: ev.text });
  }
  return result;
}
