/**
 * An HF `tokenizer.json` through `@huggingface/tokenizers` (pure JS, Node and browser), behind the Tokenizer
 * interface. The library does the encoding; this file adds what streaming and the chat template need:
 *   - `tokenBytes(id)` from the token's vocabulary string: ByteLevel (GPT-2 alphabet, DeepSeek-V3's decoder)
 *     maps characters back to bytes, `<0xNN>` byte-fallback tokens are one byte, Metaspace's "▁" is a space;
 *     other decoders fall back to the library's decode of the single token;
 *   - plain-text encoding (`allowSpecial: false`): normalizer → pre-tokenizer → model, skipping the library's
 *     added-token matching, which is HF's `split_special_tokens=True`.
 */
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { FormatError } from '../errors.js';
import { addedTokens, byteLevelMaps, decodeWithBytes, specialIdsFromConfig, type EncodeOptions, type Json, type Tokenizer } from './tokenizer.js';

const utf8 = new TextEncoder();
const EMPTY = new Uint8Array(0);

type DecoderKind = 'byte-level' | 'metaspace' | 'other';

function decoderKind(decoder: unknown): DecoderKind {
  const d = decoder as Json | null | undefined;
  if (!d || typeof d !== 'object') return 'other';
  if (d.type === 'ByteLevel') return 'byte-level';
  if (d.type === 'Metaspace') return 'metaspace';
  if (d.type === 'Sequence' && Array.isArray(d.decoders)) {
    const kinds = (d.decoders as unknown[]).map(decoderKind);
    if (kinds.includes('byte-level')) return 'byte-level';
    // SentencePiece-style Sequence: Replace("▁", " "), ByteFallback, Fuse, Strip
    if ((d.decoders as Json[]).some((x) => x?.type === 'Replace' || x?.type === 'ByteFallback')) return 'metaspace';
  }
  return 'other';
}

export class HfTokenizer implements Tokenizer {
  readonly kind = 'hf';
  readonly vocabSize: number;
  readonly eosTokenIds: readonly number[];
  readonly bosTokenId: number | undefined;
  private readonly specials = new Map<string, number>();
  private readonly specialIds = new Set<number>();
  private readonly addedById = new Map<number, string>();
  private readonly bytesCache = new Map<number, Uint8Array>();
  private readonly decoder: DecoderKind;
  private readonly toByte = byteLevelMaps().toByte;

  private constructor(
    private readonly lib: HfLibTokenizer,
    json: Json,
    config: Json | undefined,
    file: string,
  ) {
    let max = -1;
    for (const t of addedTokens(json, file)) {
      this.specials.set(t.content, t.id);
      this.addedById.set(t.id, t.content);
      if (t.special) this.specialIds.add(t.id);
      max = Math.max(max, t.id);
    }
    for (const id of lib.get_vocab(true).values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    this.decoder = decoderKind(json.decoder);
    const { eos, bos } = specialIdsFromConfig(config, this.specials);
    this.eosTokenIds = eos === undefined ? [] : [eos];
    this.bosTokenId = bos;
  }

  static create(json: Json, config: Json | undefined, file = 'tokenizer.json'): HfTokenizer {
    let lib: HfLibTokenizer;
    try {
      lib = new HfLibTokenizer(json, config ?? {});
    } catch (err) {
      throw new FormatError(`cannot build the tokenizer (${(err as Error).message})`, file);
    }
    return new HfTokenizer(lib, json, config, file);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const add = opts.addSpecialTokens ?? false;
    if (opts.allowSpecial) return this.lib.encode(text, { add_special_tokens: add }).ids;
    const lib = this.lib;
    let s = text;
    if (lib.normalizer) s = lib.normalizer(s);
    const words = lib.pre_tokenizer ? lib.pre_tokenizer(s) : [s];
    let tokens: string[] = lib.model ? lib.model(words) : words;
    if (lib.post_processor) tokens = (lib.post_processor(tokens, null, add) as { tokens: string[] }).tokens;
    const unk = lib.model?.unk_token_id;
    return tokens.map((t) => {
      const id = lib.token_to_id(t) ?? unk;
      if (id === undefined) throw new FormatError(`token '${t}' is not in the vocabulary and the tokenizer has no unk_token`, 'tokenizer.json');
      return id;
    });
  }

  decode(ids: readonly number[]): string {
    return decodeWithBytes(this, ids);
  }

  tokenBytes(id: number): Uint8Array {
    let b = this.bytesCache.get(id);
    if (!b) {
      b = this.computeBytes(id);
      this.bytesCache.set(id, b);
    }
    return b;
  }

  private computeBytes(id: number): Uint8Array {
    const added = this.addedById.get(id);
    if (added !== undefined) return utf8.encode(added);
    const tok = this.lib.id_to_token(id);
    if (tok === undefined) return EMPTY;
    const fallback = /^<0x([0-9A-Fa-f]{2})>$/.exec(tok);
    if (fallback) return Uint8Array.of(parseInt(fallback[1]!, 16));
    if (this.decoder === 'byte-level') {
      const out: number[] = [];
      for (const ch of tok) {
        const b = this.toByte.get(ch);
        if (b !== undefined) out.push(b);
        else out.push(...utf8.encode(ch));
      }
      return Uint8Array.from(out);
    }
    if (this.decoder === 'metaspace') return utf8.encode(tok.replaceAll('\u2581', ' '));
    return utf8.encode(this.lib.decode([id], { clean_up_tokenization_spaces: false }));
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  specialTokenId(name: string): number | undefined {
    return this.specials.get(name);
  }
}
