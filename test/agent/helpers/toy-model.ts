/**
 * A deterministic CPU stand-in for the engine: a byte-level tokenizer (optionally with the Kimi special ids)
 * and a `LocalTextModel` whose "forward pass" is a script: a function from the decoded prompt to the reply.
 * The reply is written in template syntax ("<|tool_call_begin|>" etc.); markers become special ids when the
 * tokenizer has them, else stay bytes. It honours maxTokens, stopTokens, stopStrings and AbortSignal the way
 * the engine's `generate` is specified to (src/engine/types.ts).
 */
import type { ChatTokenizer } from '../../../src/text/chat-template.js';
import { KIMI_SPECIALS } from '../../../src/text/chat-template.js';
import type { GenerateOptions, GenerationEvent } from '../../../src/engine/types.js';
import type { LocalTextModel } from '../../../src/agent/local-backend.js';
import { AbortError, WebmoeError } from '../../../src/errors.js';

/** Kimi special ids from docs/model.md §10. */
export const KIMI_IDS: Record<string, number> = {
  '[BOS]': 163584,
  '[EOS]': 163585,
  '<|im_end|>': 163586,
  '<|im_user|>': 163587,
  '<|im_assistant|>': 163588,
  '<|im_system|>': 163594,
  '<|tool_calls_section_begin|>': 163595,
  '<|tool_calls_section_end|>': 163596,
  '<|tool_call_begin|>': 163597,
  '<|tool_call_argument_begin|>': 163598,
  '<|tool_call_end|>': 163599,
  '<|im_middle|>': 163601,
};

/** Ids 0..255 are bytes; specials (if any) are single ids. `encode` never produces a special id. */
export class ByteTokenizer implements ChatTokenizer {
  private readonly byId = new Map<number, string>();
  constructor(private readonly specials: Record<string, number> = {}) {
    for (const [name, id] of Object.entries(specials)) this.byId.set(id, name);
  }
  encode(text: string): number[] {
    return [...new TextEncoder().encode(text)];
  }
  decode(ids: number[]): string {
    let out = '';
    let bytes: number[] = [];
    const flush = (): void => {
      out += new TextDecoder().decode(new Uint8Array(bytes));
      bytes = [];
    };
    for (const id of ids) {
      const special = this.byId.get(id);
      if (special !== undefined) {
        flush();
        out += special;
      } else bytes.push(id);
    }
    flush();
    return out;
  }
  specialTokenId(name: string): number | undefined {
    return this.specials[name];
  }
  /** Tokenizes template syntax: marker text → special id when known. Test-only (the real encode never does this). */
  encodeWithMarkers(text: string): number[] {
    const names = Object.keys(this.specials).sort((a, b) => b.length - a.length);
    const out: number[] = [];
    let rest = text;
    while (rest) {
      let at = -1;
      let hit = '';
      for (const name of names) {
        const i = rest.indexOf(name);
        if (i >= 0 && (at < 0 || i < at)) [at, hit] = [i, name];
      }
      if (at < 0) {
        out.push(...this.encode(rest));
        break;
      }
      out.push(...this.encode(rest.slice(0, at)), this.specials[hit] as number);
      rest = rest.slice(at + hit.length);
    }
    return out;
  }
}

export const kimiByteTokenizer = (): ByteTokenizer => new ByteTokenizer(KIMI_IDS);

export interface ToyScriptStep {
  /** The reply in template syntax, e.g. `Hi<|im_end|>` or a tool-call section. */
  reply: string;
  /** After this many tokens, block until the request's AbortSignal fires (cancellation tests). */
  hangAfter?: number;
  /** After this many tokens, throw (an engine failure mid-generation). */
  failAfter?: number;
}

/**
 * The toy model. `script(promptText)` decides the reply from the decoded prompt, so a conversation's
 * behaviour (call a tool, then answer with its result) is a pure function of what the template rendered.
 */
export class ToyModel implements LocalTextModel {
  readonly eosTokenIds: number[];
  readonly prompts: string[] = [];
  readonly promptTokens: number[][] = [];
  readonly options: GenerateOptions[] = [];
  aborted = 0;
  active = 0;
  maxActive = 0;
  private hangWaiters: (() => void)[] = [];
  private abortWaiters: (() => void)[] = [];

  constructor(
    readonly tokenizer: ByteTokenizer,
    private readonly script: (prompt: string) => ToyScriptStep | string,
    readonly contextSize = 1 << 16,
  ) {
    const eos = tokenizer.specialTokenId('[EOS]');
    this.eosTokenIds = eos === undefined ? [] : [eos];
  }

  /** A promise that resolves when the next generation blocks at its `hangAfter` point. */
  nextHang(): Promise<void> {
    return new Promise((resolve) => this.hangWaiters.push(resolve));
  }

  /** A promise that resolves when the next generation observes its AbortSignal. */
  nextAbort(): Promise<void> {
    return new Promise((resolve) => this.abortWaiters.push(resolve));
  }

  async *generate(promptTokens: number[], opts: GenerateOptions): AsyncGenerator<GenerationEvent> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      yield* this.run(promptTokens, opts);
    } finally {
      this.active--;
    }
  }

  private async *run(promptTokens: number[], opts: GenerateOptions): AsyncGenerator<GenerationEvent> {
    const prompt = this.tokenizer.decode(promptTokens);
    this.prompts.push(prompt);
    this.promptTokens.push(promptTokens);
    this.options.push(opts);
    const step = this.script(prompt);
    const { reply, hangAfter, failAfter } = typeof step === 'string' ? { reply: step, hangAfter: undefined, failAfter: undefined } : step;
    const replyTokens = this.tokenizer.encodeWithMarkers(reply);
    const stop = new Set([...(opts.stopTokens ?? []), ...(opts.ignoreEos ? [] : this.eosTokenIds)]);
    const maxTokens = opts.maxTokens ?? Infinity;
    const decoder = new TextDecoder();
    const stopStrings = opts.stopStrings ?? [];
    const tokens: number[] = [];
    let text = '';
    let emitted = 0; // chars of `text` already yielded; the rest may be the start of a stop string
    let finishReason: 'stop' | 'length' = 'stop';
    for (const [index, token] of replyTokens.entries()) {
      if (opts.signal?.aborted) throw this.abort();
      if (index === hangAfter) {
        if (!opts.signal) throw new Error('toy model: hangAfter needs an AbortSignal');
        const signal = opts.signal;
        const fired = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        for (const w of this.hangWaiters.splice(0)) w();
        await fired;
        throw this.abort();
      }
      if (index === failAfter) throw new WebmoeError('ENGINE', 'toy engine failure');
      if (tokens.length >= maxTokens) {
        finishReason = 'length';
        break;
      }
      if (stop.has(token)) break; // the stop token itself is not emitted
      tokens.push(token);
      text += token > 255 ? this.tokenizer.decode([token]) : decoder.decode(new Uint8Array([token]), { stream: true });
      const hits = stopStrings.map((s) => text.indexOf(s)).filter((i) => i >= 0);
      const stopAt = hits.length > 0 ? Math.min(...hits) : -1;
      const end = stopAt >= 0 ? stopAt : text.length - heldBack(text, stopStrings);
      const piece = text.slice(emitted, Math.max(emitted, end));
      emitted += piece.length;
      await Promise.resolve(); // a real await point between tokens, as the GPU readback would be
      yield { type: 'token', token, text: piece, index, elapsedMs: 0 };
      if (stopAt >= 0) {
        text = text.slice(0, stopAt);
        break;
      }
    }
    yield {
      type: 'done',
      tokens,
      text,
      stats: {
        promptTokens: promptTokens.length,
        generatedTokens: tokens.length,
        ttftMs: 0,
        prefillTokensPerSecond: 0,
        decodeTokensPerSecond: 0,
        totalMs: 0,
        gpuBytes: 0,
        finishReason,
      },
    };
  }

  private abort(): AbortError {
    this.aborted++;
    for (const w of this.abortWaiters.splice(0)) w();
    return new AbortError();
  }
}

/** Length of the longest suffix of `text` that is a proper prefix of a stop string. */
function heldBack(text: string, stops: string[]): number {
  let best = 0;
  for (const s of stops) for (let n = Math.min(s.length - 1, text.length); n > best; n--) if (text.endsWith(s.slice(0, n))) best = n;
  return best;
}

/** Template syntax for a one-call tool-call reply. */
export function toolCallReply(name: string, args: unknown, idx = 0, before = ''): string {
  const s = KIMI_SPECIALS;
  return `${before}${s.sectionBegin}${s.callBegin}functions.${name}:${idx}${s.argBegin}${JSON.stringify(args)}${s.callEnd}${s.sectionEnd}${s.imEnd}`;
}
