/**
 * Kimi K2's tokenizer: tiktoken-style byte-level BPE (docs/model.md §10).
 *
 * Files: `tiktoken.model` (one `base64(token bytes) rank` per line; ranks 0..N-1) and tokenizer_config.json
 * (`added_tokens_decoder` names the specials). Specials are the 256 ids N..N+255; unnamed ones are
 * `<|reserved_token_{id}|>` (kimi-tok).
 *
 * Encoding, as kimi-tok's `encode`: cut the text every 400,000 characters and inside runs of more than 25,000
 * whitespace / non-whitespace characters; (allowSpecial) split out special-token text; split each piece with the
 * pre-tokenizer regex; a piece that is a token is that token, else byte-pair merge: repeatedly merge the
 * adjacent pair whose concatenation has the lowest rank, leftmost on ties (tiktoken's `_byte_pair_merge`).
 *
 * The regex needs the `v` flag: kimi-tok's character classes use intersection (`[\p{Lu}…\p{M}&&[^\p{Han}]]`),
 * written here as set difference `[[…]--\p{Script=Han}]`; `(?i:'s|…)` is spelled out as explicit case variants
 * because inline modifiers are not in Node 20's RegExp (ſ, U+017F, is case-equivalent to s).
 */
import { FormatError } from '../errors.js';
import { decodeWithBytes, specialIdsFromConfig, splitSpecials, type EncodeOptions, type Json, type Tokenizer } from './tokenizer.js';

const CONTRACTIONS = `(?:'[sS\u017f]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])`;
const UPPER = String.raw`[[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]--\p{Script=Han}]`;
const LOWER = String.raw`[[\p{Ll}\p{Lm}\p{Lo}\p{M}]--\p{Script=Han}]`;

/** kimi-tok's `pat_str`, for a JavaScript RegExp with the `v` flag. */
export const KIMI_PATTERN = [
  String.raw`[\p{Script=Han}]+`,
  String.raw`[^\r\n\p{L}\p{N}]?${UPPER}*${LOWER}+${CONTRACTIONS}?`,
  String.raw`[^\r\n\p{L}\p{N}]?${UPPER}+${LOWER}*${CONTRACTIONS}?`,
  String.raw`\p{N}{1,3}`,
  String.raw` ?[^\s\p{L}\p{N}]+[\r\n]*`,
  String.raw`\s*[\r\n]+`,
  String.raw`\s+(?!\S)`,
  String.raw`\s+`,
].join('|');

export const KIMI_NUM_RESERVED_SPECIALS = 256;
const MAX_ENCODE_CHARS = 400_000;
const MAX_RUN_CHARS = 25_000;
/** Python's str.isspace(), which kimi-tok's run splitting uses (JavaScript's \s differs at U+001C-1F, U+FEFF). */
const PY_SPACE = /^[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/;

export interface TiktokenOptions {
  /** Pre-tokenizer regex source (compiled with flags `gv`). Default: KIMI_PATTERN. */
  pattern?: string;
  /** Special ids after the base vocabulary. Default 256 (docs/model.md §11 item 13). */
  numReservedSpecials?: number;
  /** For error messages. */
  file?: string;
}

/** Bytes as a JS string of char codes 0..255: a cheap Map key. */
function key(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

export class TiktokenTokenizer implements Tokenizer {
  readonly kind = 'tiktoken';
  readonly vocabSize: number;
  readonly eosTokenIds: readonly number[];
  readonly bosTokenId: number | undefined;
  /** Number of ordinary (BPE) tokens; specials start here. */
  readonly numBaseTokens: number;
  private readonly regex: RegExp;
  private readonly specials = new Map<string, number>();
  private readonly specialBytes = new Map<number, Uint8Array>();
  private readonly addBos: boolean;

  constructor(
    /** Token bytes (as a `key` string) → rank. */
    private readonly ranks: ReadonlyMap<string, number>,
    /** Rank → token bytes. */
    private readonly byRank: readonly Uint8Array[],
    config: Json | undefined,
    opts: TiktokenOptions = {},
  ) {
    const file = opts.file ?? 'tiktoken.model';
    this.numBaseTokens = byRank.length;
    for (let b = 0; b < 256; b++) {
      if (!ranks.has(String.fromCharCode(b))) throw new FormatError(`byte ${b} has no token: every single byte must be in the vocabulary`, file);
    }
    try {
      this.regex = new RegExp(opts.pattern ?? KIMI_PATTERN, 'gv');
    } catch (err) {
      throw new FormatError(`the pre-tokenizer pattern does not compile (${(err as Error).message})`, file);
    }
    const named = new Map<number, string>();
    const decoder = config?.added_tokens_decoder;
    if (decoder && typeof decoder === 'object') {
      for (const [id, t] of Object.entries(decoder as Record<string, Json>)) {
        if (typeof t?.content === 'string' && /^\d+$/.test(id)) named.set(Number(id), t.content);
      }
    }
    const reserved = opts.numReservedSpecials ?? KIMI_NUM_RESERVED_SPECIALS;
    const enc = new TextEncoder();
    for (let id = this.numBaseTokens; id < this.numBaseTokens + reserved; id++) {
      const name = named.get(id) ?? `<|reserved_token_${id}|>`;
      this.specials.set(name, id);
      this.specialBytes.set(id, enc.encode(name));
    }
    this.vocabSize = this.numBaseTokens + reserved;
    const { eos, bos } = specialIdsFromConfig(config, this.specials);
    this.eosTokenIds = eos === undefined ? [] : [eos];
    this.bosTokenId = bos;
    this.addBos = config?.add_bos_token === true;
  }

  /** Parses `tiktoken.model` text (and tokenizer_config.json). */
  static fromFiles(modelText: string, config?: Json, opts: TiktokenOptions = {}): TiktokenTokenizer {
    const file = opts.file ?? 'tiktoken.model';
    const ranks = new Map<string, number>();
    const byRank: Uint8Array[] = [];
    const lines = modelText.split('\n');
    for (const [i, raw] of lines.entries()) {
      const line = raw.trim();
      if (line === '') continue;
      const m = /^([A-Za-z0-9+/=]+) (\d+)$/.exec(line);
      if (!m) throw new FormatError(`line ${i + 1}: expected 'base64 rank', found ${JSON.stringify(line.slice(0, 60))}`, file);
      const bytes = base64Bytes(m[1]!);
      const rank = Number(m[2]);
      const k = key(bytes);
      if (ranks.has(k) || byRank[rank] !== undefined) throw new FormatError(`line ${i + 1}: duplicate token or rank ${rank}`, file);
      ranks.set(k, rank);
      byRank[rank] = bytes;
    }
    for (let r = 0; r < byRank.length; r++) {
      if (byRank[r] === undefined) throw new FormatError(`rank ${r} is missing: ranks must be 0..${byRank.length - 1}`, file);
    }
    return new TiktokenTokenizer(ranks, byRank, config, opts);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = opts.addSpecialTokens && this.addBos && this.bosTokenId !== undefined ? [this.bosTokenId] : [];
    for (const chunk of kimiChunks(text)) {
      const pieces = opts.allowSpecial ? splitSpecials(chunk, this.specials) : [{ text: chunk }];
      for (const p of pieces) {
        if ('id' in p) out.push(p.id);
        else this.encodeOrdinary(p.text, out);
      }
    }
    return out;
  }

  /** The pre-tokenizer's pieces. */
  split(text: string): string[] {
    return Array.from(text.matchAll(this.regex), (m) => m[0]);
  }

  /** Pre-tokenize and BPE-encode text with no special handling. */
  encodeOrdinary(text: string, out: number[] = []): number[] {
    const enc = new TextEncoder();
    for (const piece of this.split(text)) {
      const bytes = enc.encode(piece);
      const whole = this.ranks.get(key(bytes));
      if (whole !== undefined) out.push(whole);
      else out.push(...bytePairEncode(bytes, this.ranks));
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    return decodeWithBytes(this, ids);
  }

  tokenBytes(id: number): Uint8Array {
    return this.byRank[id] ?? this.specialBytes.get(id) ?? new Uint8Array(0);
  }

  isSpecial(id: number): boolean {
    return this.specialBytes.has(id);
  }

  specialTokenId(name: string): number | undefined {
    return this.specials.get(name);
  }
}

function base64Bytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * kimi-tok's cuts before encoding: every 400,000 characters, then inside runs of more than 25,000 whitespace or
 * non-whitespace characters (characters are code points, as in Python).
 */
export function kimiChunks(text: string, maxChars = MAX_ENCODE_CHARS, maxRun = MAX_RUN_CHARS): string[] {
  const cps = Array.from(text);
  const out: string[] = [];
  for (let i = 0; i < cps.length; i += maxChars) {
    const s = cps.slice(i, i + maxChars);
    let runLen = 0;
    let runSpace = s.length > 0 && PY_SPACE.test(s[0]!);
    let start = 0;
    for (let j = 0; j < s.length; j++) {
      const space = PY_SPACE.test(s[j]!);
      if (runSpace !== space) {
        runLen = 1;
        runSpace = space;
      } else if (++runLen > maxRun) {
        out.push(s.slice(start, j).join(''));
        start = j;
        runLen = 1;
      }
    }
    out.push(s.slice(start).join(''));
  }
  return out.filter((c) => c.length > 0);
}

/**
 * tiktoken's merge loop, O(n^2): the oracle for `bytePairEncode` and the fast path for short pieces.
 * `parts` holds the start of each part; the pair (i, i+1) spans parts[i]..parts[i+2].
 */
export function bytePairEncodeSimple(bytes: Uint8Array, ranks: ReadonlyMap<string, number>): number[] {
  const parts = Array.from({ length: bytes.length + 1 }, (_, i) => i);
  const rankOf = (i: number): number => (i + 2 < parts.length ? (ranks.get(key(bytes, parts[i]!, parts[i + 2]!)) ?? Infinity) : Infinity);
  const pairRanks = parts.map((_, i) => rankOf(i));
  for (;;) {
    let min = Infinity;
    let at = -1;
    for (let i = 0; i < pairRanks.length - 1; i++) {
      if (pairRanks[i]! < min) {
        min = pairRanks[i]!;
        at = i;
      }
    }
    if (at < 0) break;
    parts.splice(at + 1, 1);
    pairRanks.splice(at + 1, 1);
    pairRanks[at] = rankOf(at);
    if (at > 0) pairRanks[at - 1] = rankOf(at - 1);
  }
  const out: number[] = [];
  for (let i = 0; i + 1 < parts.length; i++) out.push(ranks.get(key(bytes, parts[i]!, parts[i + 1]!))!);
  return out;
}

/**
 * The same merge order with a heap and a linked list, O(n log n), for long pieces (a 25,000-character run
 * would take the simple loop minutes). Ties go to the leftmost pair: the heap orders by (rank, start).
 */
export function bytePairEncode(bytes: Uint8Array, ranks: ReadonlyMap<string, number>): number[] {
  const n = bytes.length;
  if (n < 64) return bytePairEncodeSimple(bytes, ranks);
  // node i = the part starting at byte i (alive while start[i] === i); next/prev link the parts
  const next = Int32Array.from({ length: n }, (_, i) => i + 1); // n = end
  const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
  const alive = new Uint8Array(n).fill(1);
  const heap = new MinHeap();
  const pairRank = (i: number): number => {
    const j = next[i]!;
    if (j >= n) return Infinity;
    return ranks.get(key(bytes, i, next[j]!)) ?? Infinity;
  };
  // an entry is valid if the left part still starts at i and still ends where it did (its `next` is unchanged)
  for (let i = 0; i + 1 < n; i++) {
    const r = pairRank(i);
    if (r !== Infinity) heap.push(r, i, next[i]!);
  }
  for (;;) {
    const e = heap.pop();
    if (!e) break;
    const [r, i, j] = e;
    if (!alive[i] || next[i] !== j || j >= n || pairRank(i) !== r) continue;
    // merge part j into part i
    alive[j] = 0;
    next[i] = next[j]!;
    if (next[i]! < n) prev[next[i]!] = i;
    const ri = pairRank(i);
    if (ri !== Infinity) heap.push(ri, i, next[i]!);
    const p = prev[i]!;
    if (p >= 0) {
      const rp = pairRank(p);
      if (rp !== Infinity) heap.push(rp, p, next[p]!);
    }
  }
  const out: number[] = [];
  for (let i = 0; i < n; i = next[i]!) out.push(ranks.get(key(bytes, i, next[i]!))!);
  return out;
}

/** A binary min-heap of (rank, start, end) ordered by rank, then start. */
class MinHeap {
  private items: [number, number, number][] = [];
  push(rank: number, start: number, end: number): void {
    const a = this.items;
    a.push([rank, start, end]);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): [number, number, number] | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l]!, a[m]!)) m = l;
        if (r < a.length && less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

function less(x: [number, number, number], y: [number, number, number]): boolean {
  return x[0] < y[0] || (x[0] === y[0] && x[1] < y[1]);
}
