/**
 * The Kimi K2 chat template and its streaming tool-call parser (docs/model.md §10).
 *
 * Rendering (special-token mode, the normal case):
 *   [<|im_system|>tool_declare<|im_middle|>{tools JSON, compact}<|im_end|>]
 *   <|im_system|>system<|im_middle|>{system prompt, default DEFAULT_SYSTEM_PROMPT}<|im_end|>
 *   <|im_user|>user<|im_middle|>{content}<|im_end|>
 *   <|im_assistant|>assistant<|im_middle|>{content}[<|tool_calls_section_begin|>
 *       <|tool_call_begin|>functions.{name}:{idx}<|tool_call_argument_begin|>{json}<|tool_call_end|> ...
 *     <|tool_calls_section_end|>]<|im_end|>
 *   <|im_system|>{name or "tool"}<|im_middle|>## Return of {tool_call_id}\n{content}<|im_end|>
 *   <|im_assistant|>assistant<|im_middle|>          ← generation prompt; no BOS
 * Special tokens are emitted by id, never by encoding their text, so message content can never forge one
 * (the tokenizer's `encode` must treat its input as plain text).
 *
 * Text fallback mode: a tokenizer that lacks any of the ten Kimi specials (a toy byte-level tokenizer, say)
 * gets the *same* template as one string, the markers written out literally ("<|im_end|>" as 10 characters),
 * encoded in one piece; the parser then finds the markers in the decoded text. In this mode content that
 * contains marker text is indistinguishable from a real marker: acceptable for toy models, not for production.
 */
import { InputError } from '../errors.js';

/** What the template needs from a tokenizer. `encode` must not turn special-token text into special ids. */
export interface ChatTokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
  /** The id of a special token by its exact name (e.g. "<|im_end|>"), or undefined if the vocabulary lacks it. */
  specialTokenId(name: string): number | undefined;
}

/** One tool call. `arguments` is the JSON text the model wrote (not parsed: it may be invalid). */
export interface ChatToolCall {
  id: string;
  name: string;
  arguments: string;
}

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string | null; toolCalls?: ChatToolCall[] }
  | { role: 'tool'; content: string; toolCallId: string; name?: string };

/** A tool declaration in the OpenAI `tools` format; rendered verbatim (compact JSON) into the template. */
export interface ToolDefinition {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
}

export const DEFAULT_SYSTEM_PROMPT = 'You are Kimi, an AI assistant created by Moonshot AI.';

/** The Kimi special tokens the template and the parser use, by name. */
export const KIMI_SPECIALS = {
  imSystem: '<|im_system|>',
  imUser: '<|im_user|>',
  imAssistant: '<|im_assistant|>',
  imMiddle: '<|im_middle|>',
  imEnd: '<|im_end|>',
  sectionBegin: '<|tool_calls_section_begin|>',
  sectionEnd: '<|tool_calls_section_end|>',
  callBegin: '<|tool_call_begin|>',
  argBegin: '<|tool_call_argument_begin|>',
  callEnd: '<|tool_call_end|>',
} as const;

export type KimiSpecial = keyof typeof KIMI_SPECIALS;
const SPECIAL_KEYS = Object.keys(KIMI_SPECIALS) as KimiSpecial[];

/** Special ids when the tokenizer has all ten Kimi specials; undefined means text fallback mode. */
export function kimiSpecialIds(tokenizer: ChatTokenizer): Record<KimiSpecial, number> | undefined {
  const ids: Partial<Record<KimiSpecial, number>> = {};
  for (const key of SPECIAL_KEYS) {
    const id = tokenizer.specialTokenId(KIMI_SPECIALS[key]);
    if (id === undefined) return undefined;
    ids[key] = id;
  }
  return ids as Record<KimiSpecial, number>;
}

export interface RenderOptions {
  tools?: ToolDefinition[];
  /** Append `<|im_assistant|>assistant<|im_middle|>` (default true). */
  addGenerationPrompt?: boolean;
}

export interface RenderedPrompt {
  tokens: number[];
  /** The same prompt as text, markers written out (for logs and tests). */
  text: string;
  mode: 'special' | 'text';
}

/** A rendered prompt as a sequence of markers and plain-text pieces; the one source of both outputs. */
type Piece = { special: KimiSpecial } | { text: string };

const KIMI_CALL_ID = /^functions\.[^:\s]+:\d+$/;

/**
 * Kimi expects call ids of the form `functions.{name}:{idx}` with a conversation-wide counter, and the tool
 * result quotes the same id. Ids from elsewhere (an OpenAI client's `call_abc`) are mapped consistently.
 */
function kimiCallIds(messages: ChatMessage[]): Map<string, string> {
  const map = new Map<string, string>();
  let idx = 0;
  for (const m of messages) {
    if (m.role !== 'assistant' || !m.toolCalls) continue;
    for (const call of m.toolCalls) {
      if (!map.has(call.id)) map.set(call.id, KIMI_CALL_ID.test(call.id) ? call.id : `functions.${call.name}:${idx}`);
      idx++;
    }
  }
  return map;
}

function templatePieces(messages: ChatMessage[], opts: RenderOptions): Piece[] {
  const out: Piece[] = [];
  const turn = (open: KimiSpecial, role: string, body: Piece[]): void => {
    out.push({ special: open }, { text: role }, { special: 'imMiddle' }, ...body, { special: 'imEnd' });
  };
  if (opts.tools && opts.tools.length > 0) turn('imSystem', 'tool_declare', [{ text: JSON.stringify(opts.tools) }]);
  if (messages[0]?.role !== 'system') turn('imSystem', 'system', [{ text: DEFAULT_SYSTEM_PROMPT }]);
  const ids = kimiCallIds(messages);
  for (const m of messages) {
    switch (m.role) {
      case 'system':
        turn('imSystem', 'system', [{ text: m.content }]);
        break;
      case 'user':
        turn('imUser', 'user', [{ text: m.content }]);
        break;
      case 'assistant': {
        const body: Piece[] = m.content ? [{ text: m.content }] : [];
        if (m.toolCalls && m.toolCalls.length > 0) {
          body.push({ special: 'sectionBegin' });
          for (const c of m.toolCalls) {
            body.push({ special: 'callBegin' }, { text: ids.get(c.id) ?? c.id }, { special: 'argBegin' });
            body.push({ text: c.arguments }, { special: 'callEnd' });
          }
          body.push({ special: 'sectionEnd' });
        }
        turn('imAssistant', 'assistant', body);
        break;
      }
      case 'tool':
        turn('imSystem', m.name ?? 'tool', [{ text: `## Return of ${ids.get(m.toolCallId) ?? m.toolCallId}\n${m.content}` }]);
        break;
    }
  }
  if (opts.addGenerationPrompt !== false) out.push({ special: 'imAssistant' }, { text: 'assistant' }, { special: 'imMiddle' });
  return out;
}

/** Renders messages (and tool declarations) into prompt token ids with the Kimi K2 template. */
export function renderChat(tokenizer: ChatTokenizer, messages: ChatMessage[], opts: RenderOptions = {}): RenderedPrompt {
  if (messages.length === 0) throw new InputError('messages must not be empty', 'messages');
  const pieces = templatePieces(messages, opts);
  const text = pieces.map((p) => ('special' in p ? KIMI_SPECIALS[p.special] : p.text)).join('');
  const ids = kimiSpecialIds(tokenizer);
  if (!ids) return { tokens: tokenizer.encode(text), text, mode: 'text' };
  const tokens: number[] = [];
  // Merge adjacent text pieces so BPE sees the same runs it would see in the string with specials split out.
  let run = '';
  for (const p of pieces) {
    if ('text' in p) {
      run += p.text;
      continue;
    }
    if (run) tokens.push(...tokenizer.encode(run));
    run = '';
    tokens.push(ids[p.special]);
  }
  if (run) tokens.push(...tokenizer.encode(run));
  return { tokens, text, mode: 'special' };
}

/**
 * Token ids that end an assistant turn: `<|im_end|>`. Empty in text fallback mode, where the consumer stops
 * when `KimiOutputParser` reports `end` (a stop *string* would hide the marker from the parser).
 */
export function chatStopTokenIds(tokenizer: ChatTokenizer): number[] {
  const ids = kimiSpecialIds(tokenizer);
  return ids ? [ids.imEnd] : [];
}

// ---------------------------------------------------------------------------------------------------------
// Streaming output parser

export type ParsedOutput =
  | { type: 'text'; text: string }
  | { type: 'tool_call'; call: ChatToolCall }
  /** `<|im_end|>` or an extra end id arrived: the turn is over; later input is ignored. */
  | { type: 'end' };

/**
 * Parses an assistant turn as it streams, one token at a time. Outside a tool-call section, text is passed
 * through as deltas; a section yields one `tool_call` per `<|tool_call_begin|>…<|tool_call_end|>`.
 * Markers are recognised by token id when the tokenizer has the Kimi specials, else by their text
 * (holding back any text that might be the start of a marker until it is decided).
 */
export class KimiOutputParser {
  private readonly ids: Record<KimiSpecial, number> | undefined;
  private readonly idToSpecial = new Map<number, KimiSpecial>();
  private readonly endIds: Set<number>;
  private state: 'text' | 'section' | 'name' | 'args' | 'ended' = 'text';
  private pending = ''; // text-mode holdback
  private name = '';
  private args = '';
  private readonly seenIds = new Set<string>();
  /** Number of tool calls emitted so far. */
  callCount = 0;

  constructor(tokenizer: ChatTokenizer, opts: { endTokenIds?: number[] } = {}) {
    this.ids = kimiSpecialIds(tokenizer);
    if (this.ids) for (const key of SPECIAL_KEYS) this.idToSpecial.set(this.ids[key], key);
    this.endIds = new Set(opts.endTokenIds ?? []);
  }

  get ended(): boolean {
    return this.state === 'ended';
  }

  /** Feeds one generated token (its id and the text it decodes to). */
  push(token: number, text: string): ParsedOutput[] {
    if (this.state === 'ended') return [];
    const out: ParsedOutput[] = [];
    if (this.endIds.has(token)) {
      if (!this.ids) this.scanText(out, true);
      this.end(out);
      return out;
    }
    if (this.ids) {
      const special = this.idToSpecial.get(token);
      if (special) this.onMarker(special, out);
      else this.onText(text, out);
      return out;
    }
    this.pending += text;
    this.scanText(out, false);
    return out;
  }

  /** Call when generation stops without an end marker: flushes held-back text and an unfinished call. */
  finish(): ParsedOutput[] {
    const out: ParsedOutput[] = [];
    if (this.state === 'ended') return out;
    if (!this.ids) this.scanText(out, true);
    this.end(out);
    return out;
  }

  private end(out: ParsedOutput[]): void {
    // A call cut off by the token limit is still reported: its arguments are likely invalid JSON, which the
    // consumer reports back to the model rather than silently dropping what it asked for.
    if ((this.state === 'name' || this.state === 'args') && this.name.trim()) this.emitCall(out);
    this.state = 'ended';
    out.push({ type: 'end' });
  }

  /** Text mode: split `pending` at markers; keep a suffix that may be the start of a marker unless `flush`. */
  private scanText(out: ParsedOutput[], flush: boolean): void {
    while (this.state !== 'ended') {
      let best = -1;
      let bestKey: KimiSpecial | undefined;
      for (const key of SPECIAL_KEYS) {
        const at = this.pending.indexOf(KIMI_SPECIALS[key]);
        if (at >= 0 && (best < 0 || at < best)) [best, bestKey] = [at, key];
      }
      if (bestKey === undefined) break;
      this.onText(this.pending.slice(0, best), out);
      this.pending = this.pending.slice(best + KIMI_SPECIALS[bestKey].length);
      this.onMarker(bestKey, out);
    }
    if (this.state === 'ended') return;
    const keep = flush ? 0 : markerPrefixLength(this.pending);
    this.onText(this.pending.slice(0, this.pending.length - keep), out);
    this.pending = this.pending.slice(this.pending.length - keep);
  }

  private onText(text: string, out: ParsedOutput[]): void {
    if (!text) return;
    if (this.state === 'text') out.push({ type: 'text', text });
    else if (this.state === 'name') this.name += text;
    else if (this.state === 'args') this.args += text;
    // whitespace between calls inside a section is dropped
  }

  private onMarker(key: KimiSpecial, out: ParsedOutput[]): void {
    switch (key) {
      case 'imEnd':
        this.end(out);
        return;
      case 'sectionBegin':
        if (this.state === 'text') this.state = 'section';
        return;
      case 'sectionEnd':
        if (this.state === 'name' || this.state === 'args') this.emitCall(out);
        this.state = 'text';
        return;
      case 'callBegin':
        // Some checkpoints omit the section markers around a single call; accept a bare call.
        if (this.state === 'name' || this.state === 'args') this.emitCall(out);
        this.state = 'name';
        this.name = '';
        this.args = '';
        return;
      case 'argBegin':
        if (this.state === 'name') this.state = 'args';
        return;
      case 'callEnd':
        if (this.state === 'name' || this.state === 'args') this.emitCall(out);
        this.state = 'section';
        return;
      default:
        // Turn-structure markers inside an answer are not text the user should see.
        return;
    }
  }

  private emitCall(out: ParsedOutput[]): void {
    const { name, id } = parseCallHeader(this.name, this.callCount);
    let uniqueId = id;
    for (let n = 1; this.seenIds.has(uniqueId); n++) uniqueId = `${id}_${n}`;
    this.seenIds.add(uniqueId);
    out.push({ type: 'tool_call', call: { id: uniqueId, name, arguments: this.args.trim() } });
    this.callCount++;
    this.name = '';
    this.args = '';
    this.state = 'section';
  }
}

/** `functions.read_file:3` → name `read_file`, id as written; a bare `read_file` gets `functions.read_file:{n}`. */
export function parseCallHeader(header: string, fallbackIdx: number): { name: string; id: string } {
  const raw = header.trim();
  const m = /^(?:functions\.)?(.+?)(?::(\d+))?$/s.exec(raw);
  const name = m?.[1]?.trim() ?? raw;
  const id = m?.[2] !== undefined && raw.startsWith('functions.') ? raw : `functions.${name}:${fallbackIdx}`;
  return { name, id };
}

/** Length of the longest suffix of `s` that is a proper prefix of some marker. */
function markerPrefixLength(s: string): number {
  let best = 0;
  for (const key of SPECIAL_KEYS) {
    const marker = KIMI_SPECIALS[key];
    for (let n = Math.min(marker.length - 1, s.length); n > best; n--) {
      if (s.endsWith(marker.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}
