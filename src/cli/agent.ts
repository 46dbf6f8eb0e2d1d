/**
 * `webmoe agent --task TEXT --workspace DIR (--model DIR [--backend B] [--adapter A] [--ctx-size N]
 *   | --endpoint URL [--remote-model NAME] [--api-key-env NAME]) [--max-turns N] [--summarize-at TOKENS]
 *   [--summary-budget TOKENS] [--max-tokens N] [--temperature T] [--allow-network]`
 *
 * Runs the coding agent (src/agent/agent.ts) on webmoe's own engine (--model) or on any OpenAI-compatible server
 * (--endpoint: vLLM, SGLang, `webmoe serve`, ...) and prints its stream readably on stdout: the model's text as
 * it arrives, tool calls and results indented (dim on a terminal), context compactions and the end noted. One
 * line of totals goes to stderr at the end. Ctrl-C stops the run (exit 130). run_command runs in a bubblewrap
 * sandbox when one works here (no network unless --allow-network); otherwise stderr gets a warning first.
 */
import { realpath, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import type { AgentCommandResult, Out } from '../agent/cli-commands.js';
import { agentCommand, defaultRemoteModel, remoteBackend, swarmCommand } from '../agent/cli-commands.js';
import { MAX_PARALLEL } from '../agent/swarm.js';
import type { LocalTextModel } from '../agent/local-backend.js';
import { probeSandbox } from '../agent/sandbox.js';
import type { ChatBackend } from '../agent/backend.js';
import { LocalBackend } from '../agent/local-backend.js';
import { requireTokenizer, type Backend } from '../engine/text-model.js';
import { AbortError, InputError, TokenizerError } from '../errors.js';
import type { AdapterChoice } from '../gpu/device.js';
import { intArg, interactiveModel, loadCliModel, modelLoadOptions, numArg, type CliModel } from './load-model.js';

export interface AgentCliOptions {
  task: string;
  workspace: string;
  model?: string;
  backend?: Backend;
  adapter?: AdapterChoice;
  ctxSize?: number;
  /** `--gpu-memory MIB`: expert offloading under this budget (local engine). */
  gpuMemory?: number;
  endpoint?: string;
  remoteModel?: string;
  apiKeyEnv?: string;
  maxTurns?: number;
  summarizeAt?: number;
  summaryBudget?: number;
  maxTokens?: number;
  temperature?: number;
  /** Let sandboxed commands use the network. */
  allowNetwork?: boolean;
  /** `--parallel N`: split the task over N sub-agents that run at once, then merge (swarm.ts). */
  parallel?: number;
}

export interface AgentIo {
  out?: Out;
  err?: Out;
  /** Stops the run when fired (the CLI wires SIGINT / SIGTERM to it). */
  signal?: AbortSignal;
  /** Where --api-key-env is looked up (default process.env). */
  env?: Record<string, string | undefined>;
}

export function registerAgent(program: Command): void {
  const cmd = program
    .command('agent')
    .description('run the coding agent on a task in a workspace, on a local checkpoint or an OpenAI-compatible endpoint')
    .requiredOption('--task <text>', 'what the agent should do')
    .requiredOption('--workspace <dir>', 'the directory the tools are confined to (must exist)')
    .option('--model <dir>', "a checkpoint folder (or URL) to run on webmoe's engine")
    .option('--endpoint <url>', 'an OpenAI-compatible server instead, e.g. http://gpu-box:8000/v1 (vLLM, SGLang, webmoe serve)')
    .option('--remote-model <name>', "with --endpoint: the model name the server knows (default: the only model its /v1/models lists)")
    .option('--api-key-env <name>', 'with --endpoint: the environment variable holding the API key (the key itself never goes on the command line)')
    .option('--max-turns <n>', 'most model requests, summaries not counted (default 50)', intArg('max-turns', 1))
    .option('--summarize-at <tokens>', 'compact the context into a summary when it reaches this many tokens (default: 70% of the context, else 48000)', intArg('summarize-at', 1))
    .option('--summary-budget <tokens>', 'token budget of each summary (default 1000)', intArg('summary-budget', 1))
    .option('--max-tokens <n>', 'most tokens per model reply (default: what fits the context / the server default)', intArg('max-tokens', 1))
    .option('--temperature <t>', 'sampling temperature (default: the model or server default)', numArg('temperature'))
    .option('--allow-network', "let run_command use the network (it runs in a bubblewrap sandbox without network by default)")
    .option('--parallel <n>', `split the task over N sub-agents working at once, each in its own subfolder agent-1..agent-N, then merge their work (2..${MAX_PARALLEL})`, intArg('parallel', 2, MAX_PARALLEL));
  for (const o of modelLoadOptions()) cmd.addOption(o);
  cmd.action(async (opts: AgentCliOptions) => {
    const ac = new AbortController();
    const onSignal = (): void => ac.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const r = await agentCliCommand(opts, { signal: ac.signal });
      if (r === 'interrupted') process.exitCode = 130;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  });
}

/** Checks the combination of options before anything is loaded; every problem is an InputError naming the option. */
export function checkAgentOptions(opts: AgentCliOptions): void {
  if (!opts.task?.trim()) throw new InputError('--task is empty: say what the agent should do', 'task');
  if ((opts.model === undefined) === (opts.endpoint === undefined)) {
    throw new InputError('give exactly one of --model DIR (the local engine) or --endpoint URL --remote-model NAME (an OpenAI-compatible server)', 'model');
  }
  if (opts.endpoint !== undefined) {
    if (opts.remoteModel !== undefined && !opts.remoteModel.trim()) throw new InputError('--remote-model is empty: give the model name the server lists under /v1/models, or leave it out to use its only model', 'remote-model');
    for (const [flag, v] of [['--backend', opts.backend], ['--ctx-size', opts.ctxSize], ['--gpu-memory', opts.gpuMemory]] as const) {
      if (v !== undefined) throw new InputError(`${flag} applies to --model (the local engine), not to --endpoint`, flag.slice(2));
    }
  } else {
    for (const [flag, v] of [['--remote-model', opts.remoteModel], ['--api-key-env', opts.apiKeyEnv]] as const) {
      if (v !== undefined) throw new InputError(`${flag} applies to --endpoint, not to --model`, flag.slice(2));
    }
  }
}

/**
 * What `webmoe agent` does once arguments are parsed. Returns the run's totals, or 'interrupted' when the
 * signal stopped it.
 */
export async function agentCliCommand(opts: AgentCliOptions, io: AgentIo = {}): Promise<AgentCommandResult | 'interrupted'> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  checkAgentOptions(opts);
  const st = await stat(opts.workspace).catch(() => undefined);
  if (!st) throw new InputError(`--workspace ${opts.workspace} does not exist (create it first)`, 'workspace');
  if (!st.isDirectory()) throw new InputError(`--workspace ${opts.workspace} is not a directory`, 'workspace');

  let loaded: CliModel | undefined;
  try {
    let backend: ChatBackend;
    if (opts.model !== undefined) {
      loaded = await loadCliModel(
        {
          model: opts.model,
          backend: opts.backend,
          adapter: opts.adapter,
          ctxSize: opts.ctxSize,
          gpuMemory: opts.gpuMemory,
          // sub-agents decode together on the GPU; the cpu backend runs their requests one at a time
          maxSequences: opts.parallel !== undefined && (opts.backend ?? 'webgpu') === 'webgpu' ? opts.parallel : undefined,
          beforeWeights: (ckpt, tok) => {
            if (!tok) throw new TokenizerError(`${ckpt.name} has no tokenizer (tokenizer.json or tiktoken.model): the agent needs one for the chat template`);
          },
        },
        err,
      );
      err.write(`webmoe: ${loaded.describe()}\n`);
      backend = new LocalBackend(serialized(interactiveModel(requireTokenizer(loaded.model)).model));
    } else {
      const remoteModel = opts.remoteModel ?? (await defaultRemoteModel({ endpoint: opts.endpoint!, apiKeyEnv: opts.apiKeyEnv, env: io.env, signal: io.signal }));
      backend = remoteBackend({ endpoint: opts.endpoint!, remoteModel, apiKeyEnv: opts.apiKeyEnv, env: io.env });
      err.write(`webmoe: agent on ${opts.endpoint} (model '${remoteModel}')\n`);
    }
    // the Toolbox probes the same way (cached per workspace); the user hears about a missing sandbox first
    const sandbox = await probeSandbox(await realpath(opts.workspace));
    if (sandbox.warning) err.write(`webmoe: warning: ${sandbox.warning}\n`);
    const common = {
      backend,
      task: opts.task,
      workspace: opts.workspace,
      maxTurns: opts.maxTurns,
      summarizeAtTokens: opts.summarizeAt,
      summaryBudgetTokens: opts.summaryBudget,
      maxTokensPerTurn: opts.maxTokens,
      temperature: opts.temperature,
      tools: { allowNetwork: opts.allowNetwork === true },
      signal: io.signal,
      out,
    };
    if (opts.parallel !== undefined) {
      const s = await swarmCommand({ ...common, parallel: opts.parallel });
      const ended = [...s.agents.map((a) => `${a.folder} ${a.reason === 'answered' ? 'answered' : 'hit the turn limit'} (${a.turns} turns)`), `merge ${s.merge.reason} (${s.merge.turns} turns)`];
      err.write(`webmoe: swarm of ${s.agents.length}: ${ended.join('; ')}; ${s.promptTokens} prompt + ${s.completionTokens} completion tokens\n`);
      return { reason: s.merge.reason, turns: s.merge.turns + s.agents.reduce((a, x) => a + x.turns, 0), summaries: 0, promptTokens: s.promptTokens, completionTokens: s.completionTokens };
    }
    const result = await agentCommand(common);
    const how = result.reason === 'answered' ? `answered after ${result.turns} turn${result.turns === 1 ? '' : 's'}` : `stopped at the limit of ${result.turns} turns`;
    err.write(`webmoe: ${how}; ${result.summaries} summar${result.summaries === 1 ? 'y' : 'ies'}; ${result.promptTokens} prompt + ${result.completionTokens} completion tokens\n`);
    return result;
  } catch (e) {
    if (io.signal?.aborted && isAbort(e)) {
      out.write('\n');
      err.write('webmoe: interrupted\n');
      return 'interrupted';
    }
    throw e;
  } finally {
    await loaded?.close();
  }
}

/**
 * A model that runs one generation at a time (no batching): overlapping generate() calls wait their turn, whole
 * generation by whole generation, instead of colliding on the one session. A batching model passes through.
 */
export function serialized(model: LocalTextModel): LocalTextModel {
  if ((model.concurrency ?? 1) > 1) return model;
  let tail: Promise<void> = Promise.resolve();
  return {
    ...model,
    generate: async function* (prompt, opts) {
      const prev = tail;
      let done!: () => void;
      tail = new Promise<void>((r) => (done = r));
      try {
        await prev;
        yield* model.generate(prompt, opts);
      } finally {
        done();
      }
    },
  };
}

/** The engine throws AbortError; the openai client throws its APIUserAbortError (name 'AbortError' or a message). */
function isAbort(e: unknown): boolean {
  return e instanceof AbortError || (e instanceof Error && (e.name === 'AbortError' || e.name === 'APIUserAbortError' || /abort/i.test(e.message)));
}
