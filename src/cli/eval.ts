/**
 * `webmoe eval --model DIR --text FILE|DIR [--backend webgpu|cpu] [--ctx N] [--stride S] [--json]`: the negative
 * log-likelihood of text under the model, as bits per byte (issue #15). The protocol is pinned so that numbers
 * compare across backends, exports and implementations (scripts/train/evaluate.py computes the same in torch):
 *   - each file is tokenised on its own (plain text, no special-token parsing) with BOS first;
 *   - a window of `ctx` tokens (default: max_position_embeddings, the demo's training context) starts at
 *     0, S, 2S, ... (S = stride, default ctx/2), each run from position 0 on an empty cache;
 *   - a window scores only the targets no earlier window scored (the first scores tokens 1..ctx-1; BOS itself is
 *     never a target), so every token after BOS is scored exactly once, with at least ctx - S tokens of context
 *     once past the first window;
 *   - bits per byte = total NLL (nats) / ln 2 / UTF-8 bytes of the text files; perplexity = exp(NLL / tokens).
 *
 * Legend: T tokens of a file, W = ctx window, V vocab.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { Option, type Command } from 'commander';
import type { Out } from '../agent/cli-commands.js';
import { BACKENDS, type Backend } from '../engine/text-model.js';
import type { InferenceSession } from '../engine/types.js';
import { InputError, TokenizerError } from '../errors.js';
import type { AdapterChoice } from '../gpu/device.js';
import { adapterOption } from './doctor.js';
import { intArg, loadCliModel } from './load-model.js';

/** One window of the protocol: tokens [start, end) run from position 0; targets [from, end) are scored. */
export interface EvalWindow {
  start: number;
  end: number;
  from: number;
}

/** The windows of a file of T tokens (BOS included): start = 0, S, 2S, ... until the last token is scored. */
export function evalWindows(T: number, ctx: number, stride: number): EvalWindow[] {
  if (!(ctx >= 2) || !(stride >= 1) || stride > ctx - 1) throw new InputError(`need ctx >= 2 and 1 <= stride <= ctx - 1, got ctx ${ctx}, stride ${stride}`, 'stride');
  const out: EvalWindow[] = [];
  let scored = 1; // targets below this index are done (index 0 is BOS)
  for (let start = 0; scored < T; start += stride) {
    const end = Math.min(start + ctx, T);
    out.push({ start, end, from: scored });
    scored = end;
  }
  return out;
}

/** −Σ log softmax(logits[t−1])[token t] over the scored targets of a window; logits [W, V] of tokens[start..end). */
export function windowNll(logits: Float32Array, V: number, tokens: readonly number[], w: EvalWindow): number {
  let nll = 0;
  for (let t = w.from; t < w.end; t++) {
    const row = (t - 1 - w.start) * V;
    let max = -Infinity;
    for (let i = 0; i < V; i++) max = Math.max(max, logits[row + i]!);
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(logits[row + i]! - max);
    nll += Math.log(sum) + max - logits[row + tokens[t]!]!;
  }
  return nll;
}

export interface EvalResult {
  files: number;
  tokens: number;
  bytes: number;
  nll_nats: number;
  perplexity: number;
  bits_per_byte: number;
}

export interface EvalText {
  name: string;
  text: string;
}

/** Runs the protocol over texts already read; `onWindow` after every window (for the progress bar). */
export async function evaluateTexts(
  session: InferenceSession, V: number, encode: (text: string) => number[], bos: number | undefined,
  texts: readonly EvalText[], ctx: number, stride: number, onWindow?: (done: number, total: number) => void,
): Promise<EvalResult> {
  const docs = texts.map((t) => ({ ...t, tokens: [...(bos === undefined ? [] : [bos]), ...encode(t.text)] }));
  const plans = docs.map((d) => evalWindows(d.tokens.length, ctx, stride));
  const total = plans.reduce((n, p) => n + p.length, 0);
  let done = 0;
  let nll = 0;
  let tokens = 0;
  let bytes = 0;
  const utf8 = new TextEncoder();
  for (const [i, d] of docs.entries()) {
    bytes += utf8.encode(d.text).length;
    for (const w of plans[i]!) {
      session.reset();
      const logits = await session.forwardLogits(d.tokens.slice(w.start, w.end));
      nll += windowNll(logits, V, d.tokens, w);
      tokens += w.end - w.from;
      onWindow?.(++done, total);
    }
  }
  return {
    files: docs.length,
    tokens,
    bytes,
    nll_nats: nll,
    perplexity: tokens ? Math.exp(nll / tokens) : NaN,
    bits_per_byte: bytes ? nll / Math.LN2 / bytes : NaN,
  };
}

/** FILE, or every regular file under DIR (recursively, sorted by path), as UTF-8 text. */
export async function readTexts(path: string): Promise<EvalText[]> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new InputError(`--text '${path}' cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'text');
  }
  const files: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  if (st.isDirectory()) await walk(path);
  else files.push(path);
  if (files.length === 0) throw new InputError(`--text '${path}' holds no files`, 'text');
  const decoder = new TextDecoder('utf-8', { fatal: true });
  return Promise.all(
    files.map(async (name) => {
      try {
        return { name, text: decoder.decode(await readFile(name)) };
      } catch (err) {
        if (err instanceof TypeError) throw new InputError(`--text: '${name}' is not UTF-8 text`, 'text');
        throw err;
      }
    }),
  );
}

interface EvalCliOptions {
  model: string;
  text: string;
  backend?: Backend;
  adapter?: AdapterChoice;
  ctx?: number;
  stride?: number;
  json?: boolean;
}

export async function evalCommand(opts: EvalCliOptions, out: Out = process.stdout, err: Out = process.stderr): Promise<EvalResult> {
  const texts = await readTexts(opts.text);
  const cli = await loadCliModel({ model: opts.model, backend: opts.backend ?? 'webgpu', adapter: opts.adapter, ctxSize: opts.ctx }, err);
  try {
    const { model } = cli;
    const tok = model.tokenizer;
    if (!tok) throw new TokenizerError(`${model.name} has no tokenizer (tokenizer.json or tiktoken.model): eval reads text`);
    const ctx = model.contextSize;
    const stride = opts.stride ?? Math.max(1, Math.floor(ctx / 2));
    if (stride > ctx - 1) throw new InputError(`--stride ${stride} must be below --ctx ${ctx}`, 'stride');
    const bos = tok.bosTokenId ?? model.checkpoint.config.bos_token_id ?? undefined;
    if (!opts.json) err.write(`eval: ${cli.describe()}; ${texts.length} file(s), window ${ctx}, stride ${stride}${bos === undefined ? ', no BOS token' : ''}\n`);
    const bar = err.isTTY
      ? new cliProgress.SingleBar({ stream: err as NodeJS.WritableStream, format: 'eval [{bar}] {percentage}% | {value}/{total} windows | eta {eta}s', hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic)
      : undefined;
    let started = false;
    const res = await evaluateTexts(model.session, model.checkpoint.config.vocab_size, (s) => tok.encode(s), bos, texts, ctx, stride, (done, total) => {
      if (!bar) return;
      if (!started) {
        bar.start(total, 0);
        started = true;
      }
      bar.update(done);
    });
    if (started) bar!.stop();
    if (opts.json) out.write(JSON.stringify(res) + '\n');
    else {
      out.write(`files ${res.files}, tokens ${res.tokens}, bytes ${res.bytes}\n`);
      out.write(`nll ${res.nll_nats.toFixed(1)} nats, perplexity ${res.perplexity.toFixed(3)} per token, ${res.bits_per_byte.toFixed(4)} bits per byte\n`);
    }
    return res;
  } finally {
    await cli.close();
  }
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('negative log-likelihood of text files under the model: bits per byte and perplexity (sliding windows, each file with BOS first)')
    .requiredOption('--model <dir>', 'checkpoint folder (or URL)')
    .requiredOption('--text <path>', 'a UTF-8 text file, or a folder: every file under it')
    .addOption(new Option('--backend <name>', 'webgpu (default), or cpu (the f64 CPU reference)').choices(BACKENDS as string[]))
    .addOption(adapterOption())
    .addOption(new Option('--ctx <n>', 'window in tokens (default: max_position_embeddings, capped at 4096)').argParser(intArg('ctx', 2)))
    .addOption(new Option('--stride <n>', 'window step in tokens (default: ctx/2); only tokens no earlier window scored are scored').argParser(intArg('stride', 1)))
    .option('--json', 'print one line {"files", "tokens", "bytes", "nll_nats", "perplexity", "bits_per_byte"}')
    .action(async (opts: EvalCliOptions) => {
      await evalCommand(opts);
    });
}
