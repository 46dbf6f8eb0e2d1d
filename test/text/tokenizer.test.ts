/**
 * Tokenizers: Kimi's tiktoken format against expectations made by an independent Python implementation
 * (scripts/make-tiktoken-fixture.py: `regex` module + tiktoken's merge loop), the two BPE merge algorithms against
 * each other, the toy byte-level tokenizer.json natively and through @huggingface/tokenizers, and the loader.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderChat } from '../../src/text/chat-template.js';
import { HfTokenizer } from '../../src/text/hf-tokenizer.js';
import { TiktokenTokenizer, bytePairEncode, bytePairEncodeSimple, kimiChunks } from '../../src/text/tiktoken.js';
import { ByteTokenizer, byteLevelMaps, type Json, type Tokenizer } from '../../src/text/tokenizer.js';
import { loadTokenizer, tokenizerFromJson } from '../../src/text/load-tokenizer.js';
import { Utf8Stream } from '../../src/text/utf8-stream.js';
import { memoryFiles } from '../../src/model/checkpoint.js';
import { byteLevelTokenizerConfig, byteLevelTokenizerJson } from '../../src/model/toy.js';
import { rng } from '../helpers/gpu.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'tiktoken');
const modelText = readFileSync(join(FIXTURE, 'tiktoken.model'), 'utf8');
const config = JSON.parse(readFileSync(join(FIXTURE, 'tokenizer_config.json'), 'utf8')) as Json;
const expected = JSON.parse(readFileSync(join(FIXTURE, 'expected.json'), 'utf8')) as {
  num_base_tokens: number;
  cases: { text: string; pieces: string[]; ids: number[] }[];
  special_case: { text: string; ids_allow_special: number[]; ids_plain: number[] };
};
const utf8 = new TextEncoder();

/** Text through the streaming path: token bytes → Utf8Stream, one token at a time. */
function streamText(t: Tokenizer, ids: number[]): string[] {
  const s = new Utf8Stream();
  const out = ids.map((id) => s.push(t.tokenBytes(id)));
  out.push(s.flush());
  return out;
}

describe('Kimi tiktoken tokenizer (synthetic file in the tiktoken.model format)', () => {
  const tok = TiktokenTokenizer.fromFiles(modelText, config);

  it('has Kimi’s special layout: 256 ids after the base vocabulary, named from tokenizer_config.json', () => {
    const n = expected.num_base_tokens;
    expect(tok.numBaseTokens).toBe(n);
    expect(tok.vocabSize).toBe(n + 256);
    expect(tok.specialTokenId('[BOS]')).toBe(n);
    expect(tok.specialTokenId('<|im_end|>')).toBe(n + 2);
    expect(tok.specialTokenId('<|im_middle|>')).toBe(n + 17);
    expect(tok.specialTokenId(`<|reserved_token_${n + 5}|>`)).toBe(n + 5);
    expect(tok.eosTokenIds).toEqual([n + 1]);
    expect(tok.bosTokenId).toBe(n);
    expect(tok.isSpecial(n + 2)).toBe(true);
    expect(tok.isSpecial(5)).toBe(false);
  });

  it('splits text as kimi-tok’s regex does (v flag: class intersection, Han, contractions)', () => {
    for (const c of expected.cases) expect(tok.split(c.text), JSON.stringify(c.text)).toEqual(c.pieces);
  });

  it('encodes as tiktoken does', () => {
    for (const c of expected.cases) expect(tok.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
  });

  it('special-token text: ids with allowSpecial (Kimi’s default), plain text otherwise', () => {
    const s = expected.special_case;
    expect(tok.encode(s.text, { allowSpecial: true })).toEqual(s.ids_allow_special);
    expect(tok.encode(s.text)).toEqual(s.ids_plain);
    expect(tok.decode(s.ids_allow_special)).toBe(s.text);
  });

  it('decodes what it encodes, and the byte stream gives the same text one token at a time', () => {
    for (const c of expected.cases) {
      expect(tok.decode(c.ids)).toBe(c.text);
      expect(streamText(tok, c.ids).join('')).toBe(c.text);
    }
  });

  it('renders the Kimi chat template with special ids', () => {
    const r = renderChat(tok, [{ role: 'user', content: 'Hi <|im_end|>' }]);
    expect(r.mode).toBe('special');
    const n = expected.num_base_tokens;
    expect(r.tokens[0]).toBe(n + 10); // <|im_system|>
    // ends with the generation prompt: <|im_assistant|> assistant <|im_middle|>
    expect(r.tokens.slice(-(tok.encode('assistant').length + 2))).toEqual([n + 4, ...tok.encode('assistant'), n + 17]);
    // the user's "<|im_end|>" stays text: two im_end ids (the system and user turns), none forged
    expect(r.tokens.filter((id) => id === n + 2)).toHaveLength(2);
    expect(tok.decode(r.tokens)).toBe(r.text);
  });

  it('rejects a malformed file with the line number', () => {
    expect(() => TiktokenTokenizer.fromFiles('AA== 0\nnot a line\n', config)).toThrow(/line 2/);
    expect(() => TiktokenTokenizer.fromFiles('AA== 0\n', config)).toThrow(/byte 1 has no token/);
  });
});

describe('byte-pair merge', () => {
  const tok = TiktokenTokenizer.fromFiles(modelText, config);
  // the tokenizer's rank table, reached the same way the encoder reaches it
  const ranks = (tok as unknown as { ranks: ReadonlyMap<string, number> }).ranks;

  it('heap version == tiktoken’s loop on seeded random texts of up to 3000 bytes', () => {
    const rand = rng(7);
    const alphabet = 'the quick brown fox tokens experts 你好世界 ,.!';
    for (let trial = 0; trial < 40; trial++) {
      const len = 1 + Math.floor(rand() * (trial < 30 ? 200 : 1000));
      let s = '';
      for (let i = 0; i < len; i++) s += alphabet[Math.floor(rand() * alphabet.length)];
      const bytes = utf8.encode(s);
      expect(bytePairEncode(bytes, ranks), `seed 7 trial ${trial}`).toEqual(bytePairEncodeSimple(bytes, ranks));
    }
  });

  it('a 30,000-character piece encodes in well under a second', () => {
    const bytes = utf8.encode('the'.repeat(10_000));
    const t0 = performance.now();
    const ids = bytePairEncode(bytes, ranks);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(tok.decode(ids)).toBe('the'.repeat(10_000));
  });

  it('kimiChunks cuts runs longer than the limit, as kimi-tok does', () => {
    expect(kimiChunks('aaaaa  bb', 400_000, 3)).toEqual(['aaa', 'aa  bb']);
    expect(kimiChunks('ab      c', 400_000, 3)).toEqual(['ab   ', '   c']);
    expect(kimiChunks('abcdef', 4, 25_000)).toEqual(['abcd', 'ef']);
    expect(kimiChunks('')).toEqual([]);
  });
});

describe('byte-level tokenizer (the toy checkpoints’ tokenizer.json)', () => {
  const json = byteLevelTokenizerJson(300);
  const cfg = byteLevelTokenizerConfig(4096);

  it('is recognised and run natively', async () => {
    const t = await tokenizerFromJson(json, cfg);
    expect(t).toBeInstanceOf(ByteTokenizer);
    expect(t.kind).toBe('byte');
    expect(t.vocabSize).toBe(300);
    expect(t.eosTokenIds).toEqual([257]);
    expect(t.bosTokenId).toBe(256);
    expect(t.specialTokenId('[EOS]')).toBe(257);
    expect(t.specialTokenId('<|reserved_299|>')).toBe(299);
  });

  it('encodes exactly as @huggingface/tokenizers does with the same file', async () => {
    const native = await tokenizerFromJson(json, cfg);
    const hf = HfTokenizer.create(json, cfg);
    for (const text of ['Hello, world!', 'café 😀 你好', '  spaces\n\ttabs ', '[EOS] and <|reserved_280|>']) {
      expect(native.encode(text, { allowSpecial: true }), text).toEqual(hf.encode(text, { allowSpecial: true }));
      expect(native.encode(text), text).toEqual(hf.encode(text));
      expect(native.encode(text), text).toEqual([...utf8.encode(text)]);
    }
    for (let id = 0; id < 300; id++) expect(hf.tokenBytes(id), `id ${id}`).toEqual(native.tokenBytes(id));
  });

  it('streams a multi-byte character split over byte tokens once, whole', async () => {
    const t = await tokenizerFromJson(json, cfg);
    const ids = t.encode('a😀b');
    expect(ids).toHaveLength(6);
    expect(streamText(t, ids)).toEqual(['a', '', '', '', '😀', 'b', '']);
  });
});

describe('HF tokenizer.json through @huggingface/tokenizers (ByteLevel BPE with merges)', () => {
  // A tiny GPT-2-style BPE: the byte alphabet plus merges for "he", "Ġt", "Ġthe", "ll", "llo", and two specials.
  const { toChar } = byteLevelMaps();
  const vocab: Record<string, number> = {};
  toChar.forEach((c, b) => (vocab[c] = b));
  const merges = ['h e', 'Ġ t', 'Ġt he', 'l l', 'll o'];
  for (const m of merges) vocab[m.replace(' ', '')] = Object.keys(vocab).length;
  const json: Json = {
    version: '1.0',
    added_tokens: [
      { id: 261, content: '<|end|>', special: true, normalized: false, lstrip: false, rstrip: false, single_word: false },
      { id: 262, content: '<|begin|>', special: true, normalized: false, lstrip: false, rstrip: false, single_word: false },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
  const endId = 261; // 256 bytes + 5 merges
  const cfg = { eos_token: '<|end|>', bos_token: '<|begin|>' };

  it('is not mistaken for a byte-level tokenizer', async () => {
    const t = await tokenizerFromJson(json, cfg);
    expect(t.kind).toBe('hf');
    expect(t.eosTokenIds).toEqual([endId]);
    expect(t.bosTokenId).toBe(endId + 1);
  });

  it('encodes with the merges, decodes and streams back to the text', async () => {
    const t = await tokenizerFromJson(json, cfg);
    const text = 'hello the world, café 😀';
    const ids = t.encode(text);
    expect(ids.slice(0, 3)).toEqual([vocab['he'], vocab['llo'], vocab['Ġthe']]);
    expect(t.decode(ids)).toBe(text);
    expect(streamText(t, ids).join('')).toBe(text);
  });

  it('special text: plain by default, the special id with allowSpecial', async () => {
    const t = await tokenizerFromJson(json, cfg);
    expect(t.encode('a<|end|>')).not.toContain(endId);
    expect(t.decode(t.encode('a<|end|>'))).toBe('a<|end|>');
    expect(t.encode('a<|end|>', { allowSpecial: true })).toEqual([vocab['a'], endId]);
    expect(t.isSpecial(endId)).toBe(true);
    expect(t.specialTokenId('<|end|>')).toBe(endId);
  });
});

describe('loadTokenizer', () => {
  const bytes = (s: string): Uint8Array => utf8.encode(s);

  it('tokenizer.json first, then tiktoken.model, else none', async () => {
    const byte = await loadTokenizer(memoryFiles('a', { 'tokenizer.json': bytes(JSON.stringify(byteLevelTokenizerJson(260))), 'tokenizer_config.json': bytes(JSON.stringify(byteLevelTokenizerConfig(64))) }));
    expect(byte?.kind).toBe('byte');
    const kimi = await loadTokenizer(memoryFiles('b', { 'tiktoken.model': bytes(modelText), 'tokenizer_config.json': bytes(JSON.stringify(config)) }));
    expect(kimi?.kind).toBe('tiktoken');
    expect(kimi?.eosTokenIds).toEqual([expected.num_base_tokens + 1]);
    expect(await loadTokenizer(memoryFiles('c', { 'config.json': bytes('{}') }))).toBeUndefined();
  });

  it('a broken tokenizer.json is a FormatError naming the file', async () => {
    await expect(loadTokenizer(memoryFiles('d', { 'tokenizer.json': bytes('{oops') }))).rejects.toThrow(/d\/tokenizer.json/);
  });
});
