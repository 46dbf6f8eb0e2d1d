/**
 * The generation loop: prefill the prompt, then decode one token per step until a stop token, a stop string,
 * the token limit, the end of the context, or an AbortSignal. One loop for the CLI, the browser page, the
 * server and the agent: only the InferenceSession (GPU device, byte source) differs between them.
 *
 * Each step is one GPU submission that samples on the GPU (engine/session.ts); the loop draws each step's
 * uniform number from a seeded generator (sampler.ts), so a seed reproduces a run. Token bytes go through a
 * streaming UTF-8 decoder, so a character split across tokens is emitted once, whole (style.md point 14).
 *
 * P prompt tokens, N generated tokens, C context size.
 */
import { formatOffload, subtractOffloadStats } from './expert-offload.js';
import { ContextOverflowError, InputError, TokenizerError } from '../errors.js';
import { SamplingRng, normalizeSampling, randomSeed } from './sampler.js';
import { checkTokenIds, type EncodeOptions, type Tokenizer } from '../text/tokenizer.js';
import { PIPELINE_DEPTH, type DoneEvent, type GenerateOptions, type GenerationEvent, type GenerationStats, type InferenceSession, type StepSampling } from './types.js';
import { StopStringFilter, Utf8Stream } from '../text/utf8-stream.js';

export interface GenerateRunOptions extends GenerateOptions {
  /**
   * End-of-sequence ids (default: the tokenizer's). Generation stops at them unless `ignoreEos`; `stopTokens`
   * are stop ids in addition to these.
   */
  eosTokenIds?: readonly number[];
  /** How a text prompt is encoded (default: special-token text becomes special ids, no BOS added). */
  encode?: EncodeOptions;
  /** Called once with the seed in use (drawn at random when `seed` is not given), so a run can be repeated. */
  onSeed?: (seed: number) => void;
}

/** The prompt as token ids: ids are checked against the vocabulary; text needs a tokenizer. */
export function promptTokens(tokenizer: Tokenizer | undefined, prompt: string | readonly number[], vocabSize: number, encode?: EncodeOptions): number[] {
  let tokens: number[];
  if (typeof prompt === 'string') {
    if (!tokenizer) throw new TokenizerError('this checkpoint has no tokenizer (no tokenizer.json or tiktoken.model): give the prompt as token ids (--prompt-tokens 1,2,3)');
    tokens = tokenizer.encode(prompt, encode ?? { allowSpecial: true });
  } else {
    tokens = [...prompt];
  }
  if (tokens.length === 0) throw new InputError('the prompt is empty: give at least one token', 'prompt');
  checkTokenIds(tokens, vocabSize);
  return tokens;
}

/**
 * Generates from `prompt` (text, or token ids) on `session`, which is reset first. Yields one `token` event per
 * generated token, then one `done` event with all tokens, the full text and the stats.
 *
 * - The stop token is not emitted. A stop string ends generation; it and what follows it are not emitted.
 * - Text that might be the start of a stop string, and an unfinished UTF-8 sequence, are held back; if generation
 *   ends on something else, they appear only in `done.text` (the token texts are always a prefix of it).
 * - An AbortSignal is honoured between steps: the step in flight finishes (its result is dropped), nothing more
 *   is submitted, and the stream ends with `done` and finishReason 'abort'. The session stays usable.
 * - A prompt longer than the context throws ContextOverflowError; generation stops at the end of the context
 *   (finishReason 'length').
 */
export async function* generate(
  session: InferenceSession,
  tokenizer: Tokenizer | undefined,
  prompt: string | readonly number[],
  options: GenerateRunOptions = {},
): AsyncGenerator<GenerationEvent, void, undefined> {
  const t0 = performance.now();
  const tokens = promptTokens(tokenizer, prompt, session.vocabSize, options.encode);
  const P = tokens.length;
  const C = session.contextSize;
  if (P > C) throw new ContextOverflowError(P, C);
  const maxTokens = options.maxTokens ?? Infinity;
  if (!(maxTokens >= 0) || (maxTokens !== Infinity && !Number.isInteger(maxTokens))) throw new InputError(`maxTokens must be an integer >= 0, got ${maxTokens}`, 'maxTokens');
  // after the prompt fills P slots, each decode step writes one more; the token sampled last needs no slot
  const limit = Math.min(maxTokens, C - P + 1);
  const sampling = normalizeSampling(options);
  const seed = options.seed ?? randomSeed();
  options.onSeed?.(seed);
  const rng = new SamplingRng(seed);
  const step = (): StepSampling => ({ ...sampling, uniform: rng.nextUniform() });

  const eos = options.ignoreEos ? [] : (options.eosTokenIds ?? tokenizer?.eosTokenIds ?? []);
  const stopIds = new Set([...eos, ...(options.stopTokens ?? [])]);
  const utf8 = new Utf8Stream();
  const stops = new StopStringFilter(options.stopStrings);
  const signal = options.signal;

  const out: number[] = [];
  let text = '';
  let finishReason: GenerationStats['finishReason'] = 'length';
  let stoppedByString = false;
  let tFirst = t0;
  let tPrefillStart = t0;

  const done = (): DoneEvent => {
    const tEnd = performance.now();
    // held-back text belongs to the output unless a stop string cut it off
    if (!stoppedByString) text += stops.flush() + utf8.flush();
    const prefillMs = tFirst - tPrefillStart;
    const decodeMs = tEnd - tFirst;
    return {
      type: 'done',
      tokens: out,
      text,
      stats: {
        promptTokens: P,
        generatedTokens: out.length,
        ttftMs: out.length > 0 ? tFirst - t0 : 0,
        prefillTokensPerSecond: out.length > 0 && prefillMs > 0 ? (P / prefillMs) * 1000 : 0,
        decodeTokensPerSecond: out.length > 1 && decodeMs > 0 ? ((out.length - 1) / decodeMs) * 1000 : 0,
        totalMs: tEnd - t0,
        gpuBytes: session.gpuBytes(),
        finishReason,
        ...(offload0 ? { offload: subtractOffloadStats(session.offloadStats!()!, offload0) } : {}),
      },
    };
  };
  const offload0 = session.offloadStats?.() ?? null;

  if (limit === 0 || signal?.aborted) {
    if (signal?.aborted) finishReason = 'abort';
    yield done();
    return;
  }
  session.reset();
  tPrefillStart = performance.now();
  let next = await session.prefill(tokens, step());
  tFirst = performance.now();
  // Pipelined decode where the session offers it: up to PIPELINE_DEPTH steps are submitted ahead, each reading the
  // token its predecessor sampled on the GPU, so the host records step k + 1 while the device runs step k. The
  // tokens and the sampling draws are those of the one-step-at-a-time loop; steps found unneeded when a stop token,
  // a stop string or an abort arrives are read back, dropped, and rewound out of the cache.
  const ahead: Array<Promise<number>> = [];
  let requested = 1; // tokens sampled or submitted: the prompt's, then one per decode step
  const submitAhead = (): void => {
    while (session.decodeNext && session.canDecodeNext && ahead.length < PIPELINE_DEPTH && requested < limit && !signal?.aborted) {
      ahead.push(session.decodeNext(step()));
      requested++;
    }
  };
  if (!stopIds.has(next)) submitAhead();
  try {
    for (;;) {
      if (signal?.aborted) {
        finishReason = 'abort';
        break;
      }
      if (stopIds.has(next)) {
        finishReason = 'stop';
        break;
      }
      out.push(next);
      const piece = tokenizer ? utf8.push(tokenizer.tokenBytes(next)) : '';
      const filtered = stops.push(piece);
      text += filtered.text;
      yield { type: 'token', token: next, text: filtered.text, index: out.length - 1, elapsedMs: performance.now() - t0 };
      if (filtered.stopped) {
        stoppedByString = true;
        finishReason = 'stop';
        break;
      }
      if (out.length >= limit) break;
      if (signal?.aborted) {
        finishReason = 'abort';
        break;
      }
      if (ahead.length === 0) {
        // nothing submitted ahead (no decodeNext here, e.g. expert offloading): one host-fed step
        ahead.push(session.decode(next, step()));
        requested++;
      }
      next = await ahead.shift()!;
      if (!stopIds.has(next)) submitAhead();
    }
  } finally {
    await dropAhead(session, ahead);
  }
  yield done();
}

/** Waits for the steps submitted ahead and not needed, then takes their tokens back out of the session's cache. */
async function dropAhead(session: InferenceSession, ahead: Array<Promise<number>>): Promise<void> {
  if (ahead.length === 0) return;
  const results = await Promise.allSettled(ahead.splice(0));
  // a failed step added nothing (session.ts rolls the position back); the error itself reached whoever awaited
  // the step before it, or the device is lost and the next call reports it
  const added = results.filter((r) => r.status === 'fulfilled').length;
  if (added > 0) session.rewind?.(added);
}

/** One line of stats for people: `16 prompt + 32 generated tokens; TTFT 41 ms; prefill 390 tok/s; ...`. */
export function formatStats(s: GenerationStats): string {
  const mib = (s.gpuBytes / 2 ** 20).toFixed(s.gpuBytes < 10 * 2 ** 20 ? 2 : 0);
  return (
    `${s.promptTokens} prompt + ${s.generatedTokens} generated tokens (${s.finishReason}); ` +
    `TTFT ${s.ttftMs.toFixed(0)} ms; prefill ${s.prefillTokensPerSecond.toFixed(1)} tok/s; ` +
    `decode ${s.decodeTokensPerSecond.toFixed(1)} tok/s; GPU ${mib} MiB` +
    (s.offload ? `; ${formatOffload(s.offload)}` : '')
  );
}
