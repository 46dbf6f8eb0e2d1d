/**
 * `webmoe generate --model DIR|URL (--prompt TEXT | --prompt-tokens 1,2,3) [--max-tokens N] [--temperature T]
 *   [--top-k K] [--top-p P] [--seed S] [--chat [--system TEXT]] [--stop STRING]... [--json] [--ignore-eos]
 *   [--ctx-size N] [--adapter A] [--backend B]`
 *
 * Streams the text to stdout as it is produced (token ids, space-separated, for a checkpoint with no tokenizer),
 * a progress bar on stderr while the weights load, and one stats line on stderr at the end. `--json` prints
 * nothing but one JSON object on one line on stdout at the end: {"tokens": [generated ids], "text", "stats"}.
 * Sampling defaults: the flags, else generation_config.json, else temperature 1 (`--temperature 0`: greedy).
 * Ctrl-C stops generation after the current step, still prints what was generated and the stats, and exits 130.
 * `--stop STRING` ends generation when the text contains STRING (not printed, in --json too).
 */
import { writeFile } from 'node:fs/promises';
import type { ExpertOffload } from '../engine/expert-offload.js';
import { serializeTrace } from '../offload/traces.js';
import { Option, type Command } from 'commander';
import { chatStopTokenIds, DEFAULT_SYSTEM_PROMPT, kimiSpecialIds, KIMI_SPECIALS, renderChat } from '../text/chat-template.js';
import { formatStats, type GenerateRunOptions } from '../engine/generate.js';
import { BACKENDS, type Backend, type TextModel } from '../engine/text-model.js';
import type { DoneEvent } from '../engine/types.js';
import { InputError, TokenizerError } from '../errors.js';
import type { AdapterChoice } from '../gpu/device.js';
import type { Checkpoint } from '../model/checkpoint.js';
import type { Tokenizer } from '../text/tokenizer.js';
import { adapterOption } from './doctor.js';
import { connectTimeoutOption, gpuMemoryOption, idleTimeoutOption, intArg, loadCliModel, numArg, type CliModel } from './load-model.js';
import type { Out } from '../agent/cli-commands.js';
import { visibleControls } from '../text/visible-controls.js';

export interface GenerateCliOptions {
  model: string;
  prompt?: string;
  promptTokens?: string;
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  chat?: boolean;
  json?: boolean;
  ignoreEos?: boolean;
  ctxSize?: number;
  /** `--stop STRING` (repeatable): generation ends when the text contains one; it is not printed. */
  stop?: string[];
  /** `--system TEXT` with `--chat`: the system prompt (default: the template's DEFAULT_SYSTEM_PROMPT). */
  system?: string;
  precision?: 'f32' | 'f16';
  adapter?: AdapterChoice;
  backend?: Backend;
  /** `--connect-timeout` / `--idle-timeout` (seconds) for a URL. */
  connectTimeout?: number;
  idleTimeout?: number;
  /** `--gpu-memory MIB`: expert offloading under this budget. */
  gpuMemory?: number;
  /** `--record-routing FILE`: write every token's expert ids as a routing trace (offload/traces.ts). */
  recordRouting?: string;
}

/** Default token limit when neither --max-tokens nor generation_config.json's max_new_tokens says one. */
export const DEFAULT_MAX_TOKENS = 128;

/** Something to print to (process.stdout / stderr, or a test's collector): the agent CLI's Out. */
export type { Out } from '../agent/cli-commands.js';

/** "1,2,3" → [1, 2, 3]. */
export function parsePromptTokens(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) throw new InputError(`--prompt-tokens must be comma-separated token ids (e.g. 1,2,3), got '${text}'`, 'prompt-tokens');
  return parts.map(Number);
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('generate text from a checkpoint, streaming it to stdout')
    .requiredOption('--model <dir|url>', 'checkpoint folder (config.json + *.safetensors), or its URL (read with HTTP Range requests)')
    .option('--prompt <text>', 'the prompt as text (needs a tokenizer in the checkpoint)')
    .option('--prompt-tokens <ids>', 'the prompt as comma-separated token ids')
    .option('--max-tokens <n>', `tokens to generate (default: generation_config.json, else ${DEFAULT_MAX_TOKENS})`, intArg('max-tokens', 0))
    .option('--temperature <t>', '0 = greedy (default: generation_config.json, else 1)', numArg('temperature'))
    .option('--top-k <k>', 'sample among the k most likely tokens (0 = off)', intArg('top-k', 0))
    .option('--top-p <p>', 'nucleus sampling (1 = off)', numArg('top-p'))
    .option('--seed <s>', 'random seed: the same seed gives the same output (default: random, printed)', intArg('seed', 0))
    .option('--chat', `wrap the prompt in the Kimi K2 chat template as one user turn, after a system turn (default system prompt: "${DEFAULT_SYSTEM_PROMPT}")`)
    .option('--system <text>', "with --chat: the system prompt instead of the default ('' for an empty one)")
    .option('--stop <string>', 'stop when the generated text contains STRING, which is not printed (repeatable)', (v: string, prev: string[] = []) => {
      if (v === '') throw new InputError('--stop needs a non-empty string', 'stop');
      return [...prev, v];
    })
    .option('--json', 'print only one JSON object on stdout at the end')
    .option('--ignore-eos', 'do not stop at the end-of-sequence token')
    .option('--ctx-size <n>', 'context size in tokens (default: min(max_position_embeddings, 4096))', intArg('ctx-size', 1))
    .addOption(new Option('--precision <p>', 'webgpu: f32, or f16 (opt-in: FP8 products formed in f16; needs shader-f16)').choices(['f32', 'f16']).default('f32'))
    .addOption(adapterOption())
    .addOption(gpuMemoryOption())
    .option('--record-routing <file>', 'write the expert ids every token selected in every MoE layer to FILE (a routing trace for the offloading simulator and bench)')
    .addOption(connectTimeoutOption())
    .addOption(idleTimeoutOption())
    .addOption(new Option('--backend <name>', 'webgpu, or cpu (the f64 CPU reference; slow, needs no adapter)').choices(BACKENDS as string[]).default('webgpu'))
    .action(async (opts: GenerateCliOptions) => {
      const done = await generateCommand(opts);
      // stopped by Ctrl-C: what was generated is printed, and the exit code says it was interrupted (as `agent`)
      if (done.stats.finishReason === 'abort') process.exitCode = 130;
    });
}

/** What `webmoe generate` does once arguments are parsed. */
export async function generateCommand(opts: GenerateCliOptions, out: Out = process.stdout, err: Out = process.stderr): Promise<DoneEvent> {
  if ((opts.prompt === undefined) === (opts.promptTokens === undefined)) throw new InputError('give exactly one of --prompt TEXT or --prompt-tokens 1,2,3', 'prompt');
  if (opts.system !== undefined && !opts.chat) throw new InputError('--system needs --chat (it is the system turn of the chat template)', 'system');
  if (opts.stop?.some((x) => x === '')) throw new InputError('--stop needs a non-empty string', 'stop');
  const promptIds = opts.promptTokens === undefined ? undefined : parsePromptTokens(opts.promptTokens);
  const backend = opts.backend ?? 'webgpu';
  let loaded: CliModel | undefined;
  try {
    const beforeWeights = (ckpt: Checkpoint, tok: Tokenizer | undefined): void => {
      if (tok) return;
      if (opts.chat) throw new TokenizerError(`${ckpt.name} has no tokenizer (tokenizer.json or tiktoken.model): --chat needs one`);
      if (promptIds === undefined) throw new TokenizerError(`${ckpt.name} has no tokenizer (tokenizer.json or tiktoken.model): give the prompt as token ids (--prompt-tokens 1,2,3)`);
    };
    if (opts.recordRouting !== undefined && !opts.recordRouting.trim()) throw new InputError('--record-routing needs a file name', 'record-routing');
    loaded = await loadCliModel({
      model: opts.model, backend, adapter: opts.adapter, ctxSize: opts.ctxSize, precision: opts.precision, beforeWeights,
      connectTimeout: opts.connectTimeout, idleTimeout: opts.idleTimeout, gpuMemory: opts.gpuMemory, recordRouting: opts.recordRouting !== undefined,
    }, err);
    if (!opts.json) err.write(`webmoe: ${loaded.describe()}\n`);
    const done = await run(loaded.model, opts, promptIds, out, err);
    const offload = (loaded.model.session as { offload?: ExpertOffload | null }).offload;
    if (opts.recordRouting !== undefined && offload) await writeFile(opts.recordRouting, serializeTrace(offload.trace()));
    return done;
  } finally {
    await loaded?.close();
  }
}

async function run(model: TextModel, opts: GenerateCliOptions, promptIds: number[] | undefined, out: Out, err: Out): Promise<DoneEvent> {
  const tok = model.tokenizer;
  let prompt: string | number[] = promptIds ?? opts.prompt!;
  const genOpts: GenerateRunOptions = {
    maxTokens: opts.maxTokens ?? model.defaults.maxTokens ?? DEFAULT_MAX_TOKENS,
    temperature: opts.temperature,
    topK: opts.topK,
    topP: opts.topP,
    seed: opts.seed,
    ignoreEos: opts.ignoreEos,
    stopStrings: opts.stop?.length ? [...opts.stop] : undefined,
    // a raw text prompt is encoded as HF / kimi-tok do by default: special-token text allowed, BOS if configured
    encode: { allowSpecial: true, addSpecialTokens: true },
  };
  if (opts.chat) {
    if (!tok) throw new TokenizerError(`${model.name} has no tokenizer: --chat needs one`);
    const text = typeof prompt === 'string' ? prompt : tok.decode(prompt);
    const system = opts.system === undefined ? [] : [{ role: 'system' as const, content: opts.system }];
    prompt = renderChat(tok, [...system, { role: 'user', content: text }]).tokens;
    genOpts.stopTokens = chatStopTokenIds(tok);
    // text fallback mode (no Kimi specials in the vocabulary): the end marker is text
    if (!kimiSpecialIds(tok)) genOpts.stopStrings = [...(genOpts.stopStrings ?? []), KIMI_SPECIALS.imEnd];
  }
  let seed = 0;
  genOpts.onSeed = (s) => (seed = s);
  const ac = new AbortController();
  genOpts.signal = ac.signal;
  const onSigint = (): void => ac.abort();
  process.once('SIGINT', onSigint);
  let done: DoneEvent | undefined;
  let printed = '';
  try {
    for await (const ev of model.generate(prompt, genOpts)) {
      if (ev.type === 'done') {
        done = ev;
        break;
      }
      if (opts.json) continue;
      const piece = tok ? ev.text : `${ev.index > 0 ? ' ' : ''}${ev.token}`;
      printed += piece;
      if (piece) out.write(out.isTTY ? visibleControls(piece) : piece);
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (!done) throw new Error('generate() ended without a done event');
  if (opts.json) {
    out.write(JSON.stringify({ tokens: done.tokens, text: done.text, stats: done.stats }) + '\n');
  } else {
    // text held back for a stop string or an unfinished character that never completed
    if (tok && done.text.startsWith(printed)) out.write(out.isTTY ? visibleControls(done.text.slice(printed.length)) : done.text.slice(printed.length));
    out.write('\n');
    err.write(`webmoe: ${formatStats(done.stats)}; seed ${seed}\n`);
  }
  return done;
}

export { visibleControls };
