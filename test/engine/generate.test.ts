/**
 * The generate loop on CPU sessions (test/engine/helpers/cpu-session.ts): greedy and seeded sampling, stop tokens
 * and strings, limits, context overflow, typed input errors, AbortSignal, UTF-8 streaming and stats.
 * The same loop on the real GPU engine: generate.gpu.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { generate, formatStats } from '../../src/engine/generate.js';
import { argmax } from '../../src/engine/sampler.js';
import { ByteTokenizer } from '../../src/text/tokenizer.js';
import type { DoneEvent, GenerationEvent, TokenEvent } from '../../src/engine/types.js';
import { ContextOverflowError, InputError, TokenizerError } from '../../src/errors.js';
import { BigramSession, ScriptSession } from './helpers/cpu-session.js';

async function collect(gen: AsyncGenerator<GenerationEvent>): Promise<{ tokens: TokenEvent[]; done: DoneEvent }> {
  const tokens: TokenEvent[] = [];
  let done: DoneEvent | undefined;
  for await (const ev of gen) {
    if (done) throw new Error('event after done');
    if (ev.type === 'token') tokens.push(ev);
    else done = ev;
  }
  if (!done) throw new Error('no done event');
  return { tokens, done };
}

const bytes = (s: string): number[] => [...new TextEncoder().encode(s)];
const EOS = 257;
const byteTok = new ByteTokenizer({ '[BOS]': 256, '[EOS]': EOS }, [EOS], 256);

describe('generate: greedy and sampling', () => {
  it('greedy follows the argmax chain, one event per token, done repeats them', async () => {
    const s = new BigramSession(64, 256);
    const { tokens, done } = await collect(generate(s, undefined, [3, 5], { temperature: 0, maxTokens: 10 }));
    const want: number[] = [];
    let last = 5;
    for (let i = 0; i < 10; i++) want.push((last = argmax(s.logits(last))));
    expect(tokens.map((t) => t.token)).toEqual(want);
    expect(tokens.map((t) => t.index)).toEqual([...want.keys()]);
    expect(done.tokens).toEqual(want);
    expect(done.stats.finishReason).toBe('length');
    expect(done.stats.promptTokens).toBe(2);
    expect(done.stats.generatedTokens).toBe(10);
    // one prefill, then one decode per further token; the KV cache holds prompt + all but the last token
    expect(s.calls.prefill).toBe(1);
    expect(s.calls.decode).toBe(9);
    expect(s.position).toBe(2 + 9);
  });

  it('a seed makes sampling reproducible; other seeds give other samples', async () => {
    const run = async (seed: number) => (await collect(generate(new BigramSession(300, 512, 5, 1), undefined, [1], { temperature: 1, seed, maxTokens: 40 }))).done.tokens;
    const a = await run(7);
    expect(await run(7)).toEqual(a);
    expect(await run(8)).not.toEqual(a);
  });

  it('the uniforms come from the seed, one per step, whatever the temperature', async () => {
    const s1 = new BigramSession(32, 64);
    const s2 = new BigramSession(32, 64);
    await collect(generate(s1, undefined, [1], { temperature: 0, seed: 9, maxTokens: 5 }));
    await collect(generate(s2, undefined, [1], { temperature: 0.7, topK: 5, topP: 0.9, seed: 9, maxTokens: 5 }));
    expect(s1.samplings.map((x) => x.uniform)).toEqual(s2.samplings.map((x) => x.uniform));
    expect(s2.samplings[0]).toMatchObject({ temperature: 0.7, topK: 5, topP: 0.9 });
  });

  it('top-k 1 equals greedy at any temperature and seed', async () => {
    const greedy = (await collect(generate(new BigramSession(100, 256, 2, 1), undefined, [4], { temperature: 0, maxTokens: 30 }))).done.tokens;
    for (const seed of [1, 2, 3]) {
      const k1 = (await collect(generate(new BigramSession(100, 256, 2, 1), undefined, [4], { temperature: 1.5, topK: 1, seed, maxTokens: 30 }))).done.tokens;
      expect(k1).toEqual(greedy);
    }
  });

  it('reports the seed it drew when none was given', async () => {
    let seen: number | undefined;
    await collect(generate(new BigramSession(16, 64), undefined, [1], { maxTokens: 2, onSeed: (x) => (seen = x) }));
    expect(Number.isInteger(seen)).toBe(true);
  });
});

describe('generate: stopping', () => {
  it('stops at EOS without emitting it; ignoreEos goes on', async () => {
    const script = [...bytes('hi'), EOS, ...bytes('!!')];
    const a = await collect(generate(new ScriptSession(script), byteTok, [1], { maxTokens: 10 }));
    expect(a.done.tokens).toEqual(bytes('hi'));
    expect(a.done.text).toBe('hi');
    expect(a.done.stats.finishReason).toBe('stop');
    const b = await collect(generate(new ScriptSession(script), byteTok, [1], { maxTokens: 5, ignoreEos: true }));
    expect(b.done.tokens).toEqual(script);
    expect(b.done.stats.finishReason).toBe('length');
  });

  it('stopTokens add to the eos ids; eosTokenIds override the tokenizer’s', async () => {
    const script = bytes('abcdef');
    expect((await collect(generate(new ScriptSession(script), byteTok, [1], { stopTokens: bytes('d') }))).done.text).toBe('abc');
    expect((await collect(generate(new ScriptSession(script), undefined, [1], { eosTokenIds: bytes('c') }))).done.tokens).toEqual(bytes('ab'));
  });

  it('a stop string ends generation; it is never emitted, even in part', async () => {
    const { tokens, done } = await collect(generate(new ScriptSession(bytes('Hello</s>more')), byteTok, [1], { stopStrings: ['</s>'] }));
    expect(done.text).toBe('Hello');
    expect(tokens.map((t) => t.text).join('')).toBe('Hello');
    expect(tokens.map((t) => t.text)).toEqual(['H', 'e', 'l', 'l', 'o', '', '', '', '']);
    expect(done.tokens).toEqual(bytes('Hello</s>')); // the tokens that made the stop string were generated
    expect(done.stats.finishReason).toBe('stop');
  });

  it('text held back for a possible stop string is in done.text when generation ends otherwise', async () => {
    const { tokens, done } = await collect(generate(new ScriptSession(bytes('ab</')), byteTok, [1], { stopStrings: ['</s>'], maxTokens: 4 }));
    expect(tokens.map((t) => t.text).join('')).toBe('ab');
    expect(done.text).toBe('ab</');
  });

  it('stops at the end of the context with exactly C - P + 1 tokens', async () => {
    const s = new BigramSession(32, 20);
    const { done } = await collect(generate(s, undefined, [1, 2, 3, 4, 5], { temperature: 0 }));
    expect(done.tokens).toHaveLength(16);
    expect(done.stats.finishReason).toBe('length');
    expect(s.position).toBe(20);
  });

  it('maxTokens 0 yields only done', async () => {
    const s = new BigramSession(8, 16);
    const { tokens, done } = await collect(generate(s, undefined, [1], { maxTokens: 0 }));
    expect(tokens).toEqual([]);
    expect(done.tokens).toEqual([]);
    expect(s.calls.prefill).toBe(0);
  });
});

describe('generate: errors', () => {
  it('a prompt longer than the context is a ContextOverflowError with the numbers', async () => {
    const err = await collect(generate(new BigramSession(8, 4), undefined, [1, 2, 3, 4, 5])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContextOverflowError);
    expect(err).toMatchObject({ tokens: 5, max: 4 });
    expect((err as Error).message).toMatch(/5 tokens.*4/);
  });

  it('text without a tokenizer is a TokenizerError; bad ids and empty prompts are InputErrors', async () => {
    await expect(collect(generate(new BigramSession(8, 16), undefined, 'hello'))).rejects.toThrow(TokenizerError);
    await expect(collect(generate(new BigramSession(8, 16), undefined, [1, 8]))).rejects.toThrow(/token 1 is 8, outside the vocabulary \(0..7\)/);
    await expect(collect(generate(new BigramSession(8, 16), undefined, [1, -1]))).rejects.toThrow(InputError);
    await expect(collect(generate(new BigramSession(8, 16), undefined, []))).rejects.toThrow(/empty/);
    await expect(collect(generate(new BigramSession(300, 16), byteTok, ''))).rejects.toThrow(/empty/);
    await expect(collect(generate(new BigramSession(8, 16), undefined, [1], { topP: 2 }))).rejects.toThrow(InputError);
  });

  it('a text prompt is encoded with the tokenizer, special text as special ids', async () => {
    const s = new ScriptSession([EOS], 300);
    const seen: number[][] = [];
    const orig = s.prefill.bind(s);
    s.prefill = (t, x) => (seen.push(t), orig(t, x));
    await collect(generate(s, byteTok, 'a[EOS]'));
    expect(seen).toEqual([[97, EOS]]);
  });
});

describe('generate: AbortSignal', () => {
  it('stops within one step: the step in flight finishes, nothing more is submitted, done says abort', async () => {
    const s = new BigramSession(32, 256);
    const ac = new AbortController();
    let release: () => void = () => {};
    let inFlight = 0;
    s.gate = () => {
      inFlight++;
      return new Promise<void>((r) => (release = r));
    };
    const gen = generate(s, undefined, [1], { temperature: 0, signal: ac.signal, maxTokens: 100 });
    const events: GenerationEvent[] = [];
    const consumer = (async () => {
      for await (const ev of gen) events.push(ev);
    })();
    // let three decode steps pass, then abort while the fourth is in flight
    for (let i = 0; i < 3; i++) {
      while (inFlight <= i) await new Promise((r) => setTimeout(r, 1));
      release();
    }
    while (inFlight < 4) await new Promise((r) => setTimeout(r, 1));
    ac.abort();
    release();
    await consumer;
    const done = events.at(-1) as DoneEvent;
    expect(done.type).toBe('done');
    expect(done.stats.finishReason).toBe('abort');
    expect(done.tokens).toHaveLength(4); // prefill's token + three decodes; the fourth decode's result is dropped
    expect(s.calls.decode).toBe(4);
    // the session is still usable, then disposed exactly once by its owner
    s.gate = undefined;
    const again = await collect(generate(s, undefined, [1], { temperature: 0, maxTokens: 3 }));
    expect(again.done.tokens).toHaveLength(3);
    s.dispose();
    expect(s.calls.dispose).toBe(1);
  });

  it('an already aborted signal submits nothing', async () => {
    const s = new BigramSession(8, 16);
    const { done } = await collect(generate(s, undefined, [1], { signal: AbortSignal.abort() }));
    expect(done.stats.finishReason).toBe('abort');
    expect(s.calls.prefill).toBe(0);
  });

  it('breaking out of the loop early stops generation too', async () => {
    const s = new BigramSession(32, 256);
    for await (const ev of generate(s, undefined, [1], { temperature: 0, maxTokens: 100 })) if (ev.type === 'token' && ev.index === 2) break;
    expect(s.calls.decode).toBe(2);
  });
});

describe('generate: streaming text and stats', () => {
  it('a character split over byte tokens is emitted once, whole', async () => {
    const { tokens, done } = await collect(generate(new ScriptSession(bytes('a😀b')), byteTok, [1], { maxTokens: 6 }));
    expect(tokens.map((t) => t.text)).toEqual(['a', '', '', '', '😀', 'b']);
    expect(done.text).toBe('a😀b');
  });

  it('an unfinished character at the end becomes U+FFFD in done.text', async () => {
    const { done } = await collect(generate(new ScriptSession(bytes('a😀').slice(0, 3)), byteTok, [1], { maxTokens: 3 }));
    expect(done.text).toBe('a\uFFFD');
  });

  it('without a tokenizer the text is empty and ids still flow', async () => {
    const { tokens, done } = await collect(generate(new ScriptSession([5, 6, 7]), undefined, [1], { maxTokens: 3 }));
    expect(tokens.map((t) => t.text)).toEqual(['', '', '']);
    expect(done.text).toBe('');
  });

  it('stats: TTFT, rates and GPU bytes are filled in and formatted on one line', async () => {
    const { tokens, done } = await collect(generate(new BigramSession(16, 64), undefined, [1, 2, 3], { temperature: 0, maxTokens: 8 }));
    const st = done.stats;
    expect(st.ttftMs).toBeGreaterThanOrEqual(0);
    expect(st.ttftMs).toBeLessThanOrEqual(st.totalMs);
    expect(Number.isFinite(st.prefillTokensPerSecond) && Number.isFinite(st.decodeTokensPerSecond)).toBe(true);
    expect(st.gpuBytes).toBe(12345);
    expect(tokens.every((t, i) => i === 0 || t.elapsedMs >= tokens[i - 1]!.elapsedMs)).toBe(true);
    expect(formatStats(st)).toMatch(/^3 prompt \+ 8 generated tokens \(length\); TTFT \d+ ms; prefill [\d.]+ tok\/s; decode [\d.]+ tok\/s; GPU 0.01 MiB$/);
  });
});
