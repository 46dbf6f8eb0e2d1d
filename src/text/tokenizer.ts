/**
 * Tokenizers behind one interface, and the loader that picks one for a checkpoint folder:
 *   - `ByteTokenizer`: ids 0..255 are the bytes, then named specials (the toy checkpoints' tokenizer.json,
 *     recognised by its layout and run natively: exact and fast);
 *   - `HfTokenizer` (hf-tokenizer.ts): any other HF `tokenizer.json`, through `@huggingface/tokenizers`;
 *   - `TiktokenTokenizer` (tiktoken.ts): Kimi's `tiktoken.model` BPE file (docs/model.md §10).
 * A checkpoint with none of these files has no tokenizer: it runs from token ids, and text input is a
 * TokenizerError (the caller's, see generate.ts).
 *
 * Streaming decode is built on `tokenBytes(id)`: the bytes a token adds to the output (a special token adds its
 * name), fed through a streaming UTF-8 decoder (utf8-stream.ts), so `decode(ids)` equals the concatenated
 * stream for every implementation.
 */
import { FormatError, InputError } from '../errors.js';
import type { ChatTokenizer } from './chat-template.js';

export interface EncodeOptions {
  /**
   * Special-token text ("<|im_end|>") becomes the special id, as Kimi's `encode(allowed_special="all")` and HF's
   * default do. Default false: the text is plain text, so user content can never forge a control token (the
   * chat template emits specials by id).
   */
  allowSpecial?: boolean;
  /** Adds what the tokenizer adds around a sequence (BOS, by its post-processor / add_bos_token). Default false. */
  addSpecialTokens?: boolean;
}

/** One tokenizer interface for the CLI, the page, the chat template and `generate`. */
export interface Tokenizer extends ChatTokenizer {
  readonly kind: 'byte' | 'hf' | 'tiktoken';
  /** Highest id + 1 (may be below the model's padded vocab_size; ids past it decode to nothing). */
  readonly vocabSize: number;
  /** Ids that end generation by default (the tokenizer's eos_token; the loader adds config.json's). */
  readonly eosTokenIds: readonly number[];
  readonly bosTokenId: number | undefined;
  encode(text: string, opts?: EncodeOptions): number[];
  /** The text of these ids: their bytes, UTF-8 decoded as one stream (invalid sequences → U+FFFD). */
  decode(ids: readonly number[]): string;
  /** The bytes token `id` adds to the text (a special adds its name; an unknown id adds nothing). */
  tokenBytes(id: number): Uint8Array;
  isSpecial(id: number): boolean;
  specialTokenId(name: string): number | undefined;
}

const utf8 = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** decode() for every implementation: bytes concatenated, then one UTF-8 decode. */
export function decodeWithBytes(t: Pick<Tokenizer, 'tokenBytes'>, ids: readonly number[]): string {
  const parts = ids.map((id) => t.tokenBytes(id));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(all);
}

/**
 * Splits `text` at occurrences of the given special names (longest first at each position) into plain
 * pieces and special ids. Used by encoders in allowSpecial mode.
 */
export function splitSpecials(text: string, specials: ReadonlyMap<string, number>): ({ text: string } | { id: number })[] {
  if (specials.size === 0 || text === '') return text === '' ? [] : [{ text }];
  const names = [...specials.keys()].filter((n) => n.length > 0).sort((a, b) => b.length - a.length);
  const re = new RegExp(names.map((n) => n.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')).join('|'), 'gu');
  const out: ({ text: string } | { id: number })[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) out.push({ text: text.slice(last, m.index) });
    out.push({ id: specials.get(m[0])! });
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Byte-level

/**
 * Ids 0..255 are the bytes 0..255; specials are single ids with names. Encoding is the UTF-8 of the text.
 * This is the layout of the toy checkpoints' tokenizer.json (src/model/toy.ts).
 */
export class ByteTokenizer implements Tokenizer {
  readonly kind = 'byte';
  readonly vocabSize: number;
  private readonly byName: Map<string, number>;
  private readonly byId = new Map<number, Uint8Array>();

  constructor(
    specials: ReadonlyMap<string, number> | Record<string, number> = {},
    readonly eosTokenIds: readonly number[] = [],
    readonly bosTokenId: number | undefined = undefined,
    /** Prepend BOS when encoding with addSpecialTokens. */
    private readonly addBos = false,
  ) {
    this.byName = specials instanceof Map ? new Map(specials) : new Map(Object.entries(specials));
    let max = 255;
    for (const [name, id] of this.byName) {
      if (!Number.isInteger(id) || id < 256) throw new FormatError(`special token '${name}' has id ${id}; byte-level ids 0..255 are the bytes`);
      this.byId.set(id, utf8.encode(name));
      max = Math.max(max, id);
    }
    this.vocabSize = max + 1;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = opts.addSpecialTokens && this.addBos && this.bosTokenId !== undefined ? [this.bosTokenId] : [];
    const pieces = opts.allowSpecial ? splitSpecials(text, this.byName) : [{ text }];
    for (const p of pieces) {
      if ('id' in p) out.push(p.id);
      else for (const b of utf8.encode(p.text)) out.push(b);
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    return decodeWithBytes(this, ids);
  }

  tokenBytes(id: number): Uint8Array {
    if (id >= 0 && id < 256 && Number.isInteger(id)) return Uint8Array.of(id);
    return this.byId.get(id) ?? EMPTY;
  }

  isSpecial(id: number): boolean {
    return this.byId.has(id);
  }

  specialTokenId(name: string): number | undefined {
    return this.byName.get(name);
  }
}

// ---------------------------------------------------------------------------------------------------------
// tokenizer.json / tokenizer_config.json helpers (shared with hf-tokenizer.ts)

export type Json = Record<string, unknown>;

/** GPT-2's byte → printable character map (ByteLevel pre-tokenizer / decoder), and its inverse. */
export function byteLevelMaps(): { toChar: string[]; toByte: Map<string, number> } {
  const toChar = new Array<string>(256);
  const keep = (b: number): boolean => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let n = 0;
  for (let b = 0; b < 256; b++) toChar[b] = keep(b) ? String.fromCharCode(b) : '';
  for (let b = 0; b < 256; b++) if (!keep(b)) toChar[b] = String.fromCharCode(256 + n++);
  return { toChar, toByte: new Map(toChar.map((c, b) => [c, b])) };
}

/** The text of a token setting in tokenizer_config.json: "x" or {"content": "x"}. */
export function tokenSetting(config: Json | undefined, key: string): string | undefined {
  const v = config?.[key];
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
}

/** `added_tokens` of a tokenizer.json, validated. */
export function addedTokens(json: Json, file: string): AddedTokenJson[] {
  const list = json.added_tokens ?? [];
  if (!Array.isArray(list)) throw new FormatError('added_tokens must be a list', file);
  return list.map((t: unknown, i) => {
    const o = t as Json;
    if (!o || typeof o.content !== 'string' || !Number.isInteger(o.id) || (o.id as number) < 0) {
      throw new FormatError(`added_tokens[${i}] needs an integer id and a string content`, file);
    }
    return { id: o.id as number, content: o.content, special: o.special === true };
  });
}

/**
 * A tokenizer.json whose model is BPE without merges over exactly the 256 ByteLevel characters at ids 0..255,
 * with no normalizer and no prefix space: its encode is the UTF-8 bytes, so it runs as a ByteTokenizer.
 */
export function asByteTokenizer(json: Json, config: Json | undefined, file: string): ByteTokenizer | undefined {
  const model = json.model as Json | undefined;
  const pre = json.pre_tokenizer as Json | null | undefined;
  if (!model || model.type !== 'BPE' || (Array.isArray(model.merges) && model.merges.length > 0)) return undefined;
  if (json.normalizer != null || json.post_processor != null || !pre || pre.type !== 'ByteLevel' || pre.add_prefix_space === true) return undefined;
  const vocab = model.vocab as Record<string, number> | undefined;
  if (!vocab || typeof vocab !== 'object') return undefined;
  const { toByte } = byteLevelMaps();
  const entries = Object.entries(vocab);
  if (entries.length !== 256) return undefined;
  for (const [tok, id] of entries) if (toByte.get(tok) !== id) return undefined;
  const specials = new Map<string, number>();
  for (const t of addedTokens(json, file)) {
    if (t.id < 256) return undefined;
    specials.set(t.content, t.id);
  }
  const { eos, bos } = specialIdsFromConfig(config, specials);
  return new ByteTokenizer(specials, eos === undefined ? [] : [eos], bos, config?.add_bos_token === true);
}

/** eos/bos ids named by tokenizer_config.json (eos_token / bos_token), looked up among the specials. */
export function specialIdsFromConfig(config: Json | undefined, specials: ReadonlyMap<string, number>): { eos?: number; bos?: number } {
  const eosName = tokenSetting(config, 'eos_token');
  const bosName = tokenSetting(config, 'bos_token');
  return { eos: eosName === undefined ? undefined : specials.get(eosName), bos: bosName === undefined ? undefined : specials.get(bosName) };
}

/** Checks prompt token ids against the model's vocabulary. */
export function checkTokenIds(ids: readonly number[], vocabSize: number, what = 'prompt'): void {
  for (const [i, id] of ids.entries()) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new InputError(`${what} token ${i} is ${id}, outside the vocabulary (0..${vocabSize - 1})`, 'tokens');
    }
  }
}
