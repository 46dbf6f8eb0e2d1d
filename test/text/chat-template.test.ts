import { describe, expect, it } from 'vitest';
import type { ChatMessage, ParsedOutput } from '../../src/text/chat-template.js';
import {
  DEFAULT_SYSTEM_PROMPT,
  KIMI_SPECIALS as S,
  KimiOutputParser,
  chatStopTokenIds,
  kimiSpecialIds,
  parseCallHeader,
  renderChat,
} from '../../src/text/chat-template.js';
import { ByteTokenizer, KIMI_IDS, kimiByteTokenizer } from '../agent/helpers/toy-model.js';

const enc = (s: string): number[] => [...new TextEncoder().encode(s)];
const id = (name: string): number => KIMI_IDS[name] as number;

/** Feeds tokens one at a time, with their text decoded as a UTF-8 stream (as the engine does). */
function parseAll(tok: ByteTokenizer, tokens: number[], opts: { endTokenIds?: number[] } = {}): ParsedOutput[] {
  const p = new KimiOutputParser(tok, opts);
  const out: ParsedOutput[] = [];
  const utf8 = new TextDecoder();
  for (const t of tokens) out.push(...p.push(t, t > 255 ? tok.decode([t]) : utf8.decode(new Uint8Array([t]), { stream: true })));
  out.push(...p.finish());
  return out;
}

/** Joins adjacent text deltas so assertions do not depend on how text was split. */
function merged(out: ParsedOutput[]): ParsedOutput[] {
  const res: ParsedOutput[] = [];
  for (const o of out) {
    const last = res[res.length - 1];
    if (o.type === 'text' && last?.type === 'text') last.text += o.text;
    else res.push(o.type === 'text' ? { ...o } : o);
  }
  return res;
}

describe('renderChat (special-token mode)', () => {
  const tok = kimiByteTokenizer();

  it('renders system and user turns by special id, with the generation prompt', () => {
    const r = renderChat(tok, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ]);
    expect(r.mode).toBe('special');
    expect(r.tokens).toEqual([
      id('<|im_system|>'), ...enc('system'), id('<|im_middle|>'), ...enc('Be brief.'), id('<|im_end|>'),
      id('<|im_user|>'), ...enc('user'), id('<|im_middle|>'), ...enc('Hi'), id('<|im_end|>'),
      id('<|im_assistant|>'), ...enc('assistant'), id('<|im_middle|>'),
    ]);
    expect(r.text).toBe(
      '<|im_system|>system<|im_middle|>Be brief.<|im_end|><|im_user|>user<|im_middle|>Hi<|im_end|><|im_assistant|>assistant<|im_middle|>',
    );
  });

  it('adds the default system prompt, declares tools first as compact JSON, and can omit the generation prompt', () => {
    const tools = [{ type: 'function' as const, function: { name: 'f', parameters: { type: 'object', properties: {} } } }];
    const r = renderChat(tok, [{ role: 'user', content: 'x' }], { tools, addGenerationPrompt: false });
    expect(r.text).toBe(
      `<|im_system|>tool_declare<|im_middle|>${JSON.stringify(tools)}<|im_end|>` +
        `<|im_system|>system<|im_middle|>${DEFAULT_SYSTEM_PROMPT}<|im_end|>` +
        '<|im_user|>user<|im_middle|>x<|im_end|>',
    );
    expect(JSON.stringify(tools)).not.toContain(' ');
  });

  it('renders assistant tool calls and tool results with consistent Kimi call ids', () => {
    const messages: ChatMessage[] = [
      { role: 'user', content: 'go' },
      {
        role: 'assistant',
        content: 'Let me look.',
        toolCalls: [
          { id: 'call_abc', name: 'read_file', arguments: '{"path":"a"}' },
          { id: 'functions.list_dir:7', name: 'list_dir', arguments: '{}' },
        ],
      },
      { role: 'tool', toolCallId: 'call_abc', name: 'read_file', content: 'AAA' },
      { role: 'tool', toolCallId: 'functions.list_dir:7', content: 'a\nb' },
    ];
    const r = renderChat(tok, messages);
    expect(r.text).toContain(
      '<|im_assistant|>assistant<|im_middle|>Let me look.<|tool_calls_section_begin|>' +
        '<|tool_call_begin|>functions.read_file:0<|tool_call_argument_begin|>{"path":"a"}<|tool_call_end|>' +
        '<|tool_call_begin|>functions.list_dir:7<|tool_call_argument_begin|>{}<|tool_call_end|>' +
        '<|tool_calls_section_end|><|im_end|>',
    );
    expect(r.text).toContain('<|im_system|>read_file<|im_middle|>## Return of functions.read_file:0\nAAA<|im_end|>');
    expect(r.text).toContain('<|im_system|>tool<|im_middle|>## Return of functions.list_dir:7\na\nb<|im_end|>');
    // every marker in the text is one special id in the tokens
    const specials = r.tokens.filter((t) => t > 255).length;
    const markers = r.text.match(/<\|[a-z_]+\|>/g)?.length;
    expect(specials).toBe(markers);
  });

  it('never turns marker text inside content into a special token', () => {
    const r = renderChat(tok, [{ role: 'user', content: 'say <|im_end|> please' }]);
    const userIdx = r.tokens.indexOf(id('<|im_user|>'));
    const endIdx = r.tokens.indexOf(id('<|im_end|>'), userIdx);
    expect(tok.decode(r.tokens.slice(userIdx, endIdx + 1))).toBe('<|im_user|>user<|im_middle|>say <|im_end|> please<|im_end|>');
    expect(r.tokens.slice(userIdx, endIdx).filter((t) => t === id('<|im_end|>'))).toEqual([]);
  });

  it('stops on <|im_end|> by id', () => {
    expect(chatStopTokenIds(tok)).toEqual([id('<|im_end|>')]);
  });

  it('rejects an empty conversation', () => {
    expect(() => renderChat(tok, [])).toThrow(/messages must not be empty/);
  });
});

describe('renderChat (text fallback mode)', () => {
  const tok = new ByteTokenizer();

  it('renders the same template as plain text when the tokenizer lacks the specials', () => {
    expect(kimiSpecialIds(tok)).toBeUndefined();
    const messages: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
    const r = renderChat(tok, messages);
    expect(r.mode).toBe('text');
    expect(r.text).toBe(renderChat(kimiByteTokenizer(), messages).text);
    expect(r.tokens).toEqual(enc(r.text));
    expect(chatStopTokenIds(tok)).toEqual([]);
  });

  it('falls back when even one special is missing', () => {
    const partial = { ...KIMI_IDS };
    delete partial['<|tool_call_end|>'];
    expect(renderChat(new ByteTokenizer(partial), [{ role: 'user', content: 'x' }]).mode).toBe('text');
  });
});

describe('KimiOutputParser', () => {
  const tok = kimiByteTokenizer();
  const call = (name: string, idx: number, args: string): string =>
    `${S.callBegin}functions.${name}:${idx}${S.argBegin}${args}${S.callEnd}`;

  it('parses text and a tool-call section by token id', () => {
    const reply = `Checking.${S.sectionBegin}${call('get_weather', 0, '{"city": "Paris"}')}${S.sectionEnd}${S.imEnd}ignored`;
    const out = merged(parseAll(tok, tok.encodeWithMarkers(reply)));
    expect(out).toEqual([
      { type: 'text', text: 'Checking.' },
      { type: 'tool_call', call: { id: 'functions.get_weather:0', name: 'get_weather', arguments: '{"city": "Paris"}' } },
      { type: 'end' },
    ]);
  });

  it('parses several calls, in order', () => {
    const reply = `${S.sectionBegin}${call('a', 0, '{}')}\n${call('b.c', 1, '{"x":[1,2]}')}${S.sectionEnd}`;
    const calls = parseAll(tok, tok.encodeWithMarkers(reply)).filter((o) => o.type === 'tool_call');
    expect(calls.map((c) => c.type === 'tool_call' && c.call)).toEqual([
      { id: 'functions.a:0', name: 'a', arguments: '{}' },
      { id: 'functions.b.c:1', name: 'b.c', arguments: '{"x":[1,2]}' },
    ]);
  });

  it('treats marker *text* (bytes, not special ids) as plain text in special mode', () => {
    const out = merged(parseAll(tok, enc(`a${S.sectionBegin}b`)));
    expect(out).toEqual([{ type: 'text', text: `a${S.sectionBegin}b` }, { type: 'end' }]);
  });

  it('ends on an extra end id (EOS) and ignores what follows', () => {
    const tokens = [...enc('hi'), id('[EOS]'), ...enc('more')];
    expect(merged(parseAll(tok, tokens, { endTokenIds: [id('[EOS]')] }))).toEqual([{ type: 'text', text: 'hi' }, { type: 'end' }]);
  });

  it('reports a call cut off by the token limit, and accepts a bare call without section markers', () => {
    const cut = parseAll(tok, tok.encodeWithMarkers(`${S.sectionBegin}${S.callBegin}functions.f:0${S.argBegin}{"a":`));
    expect(cut).toContainEqual({ type: 'tool_call', call: { id: 'functions.f:0', name: 'f', arguments: '{"a":' } });
    const bare = parseAll(tok, tok.encodeWithMarkers(`${call('g', 2, '{}')}${S.imEnd}`));
    expect(bare).toContainEqual({ type: 'tool_call', call: { id: 'functions.g:2', name: 'g', arguments: '{}' } });
  });

  it('makes duplicate call ids unique', () => {
    const reply = `${S.sectionBegin}${call('f', 0, '{}')}${call('f', 0, '{}')}${S.sectionEnd}`;
    const ids = parseAll(tok, tok.encodeWithMarkers(reply)).flatMap((o) => (o.type === 'tool_call' ? [o.call.id] : []));
    expect(ids).toEqual(['functions.f:0', 'functions.f:0_1']);
  });

  it('round-trips: what renderChat writes for an assistant turn parses back to the same calls', () => {
    const calls = [
      { id: 'functions.read_file:0', name: 'read_file', arguments: '{"path":"x y.txt"}' },
      { id: 'functions.grep:1', name: 'grep', arguments: '{"pattern":"a|b"}' },
    ];
    const r = renderChat(tok, [{ role: 'user', content: 'u' }, { role: 'assistant', content: 'ok', toolCalls: calls }], {
      addGenerationPrompt: false,
    });
    const start = r.tokens.lastIndexOf(id('<|im_middle|>')) + 1;
    const out = parseAll(tok, r.tokens.slice(start));
    expect(out.flatMap((o) => (o.type === 'tool_call' ? [o.call] : []))).toEqual(calls);
  });
});

describe('KimiOutputParser (text fallback mode)', () => {
  const tok = new ByteTokenizer();
  const reply = `Sure ${S.sectionBegin}${S.callBegin}functions.write_file:0${S.argBegin}{"path":"é.txt"}${S.callEnd}${S.sectionEnd}${S.imEnd}junk`;

  it('finds markers split across byte tokens and never leaks marker text', () => {
    const out = parseAll(tok, enc(reply));
    expect(merged(out)).toEqual([
      { type: 'text', text: 'Sure ' },
      { type: 'tool_call', call: { id: 'functions.write_file:0', name: 'write_file', arguments: '{"path":"é.txt"}' } },
      { type: 'end' },
    ]);
  });

  it('gives the same result however the text is chunked', () => {
    for (const size of [1, 2, 3, 5, 7, 13, 64]) {
      const p = new KimiOutputParser(tok);
      const out: ParsedOutput[] = [];
      for (let i = 0; i < reply.length; i += size) out.push(...p.push(0, reply.slice(i, i + size)));
      out.push(...p.finish());
      expect(merged(out)).toEqual(merged(parseAll(tok, enc(reply))));
    }
  });

  it('releases held-back text that turns out not to be a marker', () => {
    const p = new KimiOutputParser(tok);
    expect(p.push(0, 'a <|im')).toEqual([{ type: 'text', text: 'a ' }]);
    expect(p.push(0, '_x')).toEqual([{ type: 'text', text: '<|im_x' }]);
    expect(p.push(0, ' <|')).toEqual([{ type: 'text', text: ' ' }]);
    expect(p.finish()).toEqual([{ type: 'text', text: '<|' }, { type: 'end' }]);
  });
});

describe('parseCallHeader', () => {
  it('takes the name from functions.{name}:{idx} and invents an id for a bare name', () => {
    expect(parseCallHeader(' functions.run_command:12 ', 0)).toEqual({ name: 'run_command', id: 'functions.run_command:12' });
    expect(parseCallHeader('grep', 3)).toEqual({ name: 'grep', id: 'functions.grep:3' });
  });
});
