/** Streaming UTF-8 and stop-string holdback. */
import { describe, expect, it } from 'vitest';
import { StopStringFilter, Utf8Stream } from '../../src/text/utf8-stream.js';

const bytes = (s: string): number[] => [...new TextEncoder().encode(s)];

describe('Utf8Stream', () => {
  it('emits a 4-byte character split over four tokens once, whole, with the last byte', () => {
    const s = new Utf8Stream();
    expect(bytes('😀').map((b) => s.push(Uint8Array.of(b)))).toEqual(['', '', '', '😀']);
    expect(s.flush()).toBe('');
  });

  it('handles characters split across multi-byte tokens (CJK as 2 + 1 + ...)', () => {
    const b = bytes('你好!');
    const s = new Utf8Stream();
    const out = [s.push(Uint8Array.from(b.slice(0, 2))), s.push(Uint8Array.from(b.slice(2, 4))), s.push(Uint8Array.from(b.slice(4)))];
    expect(out).toEqual(['', '你', '好!']);
  });

  it('invalid bytes become U+FFFD; an unfinished sequence becomes U+FFFD at flush', () => {
    const s = new Utf8Stream();
    expect(s.push(Uint8Array.of(0x61, 0xff, 0x62))).toBe('a\uFFFDb');
    expect(s.push(Uint8Array.of(0xe4, 0xbd))).toBe('');
    expect(s.flush()).toBe('\uFFFD');
    expect(s.push(Uint8Array.of(0x63))).toBe('c');
  });

  it('keeps a leading BOM as text (a token may legitimately produce U+FEFF)', () => {
    expect(new Utf8Stream().push(Uint8Array.from(bytes('\uFEFFx')))).toBe('\uFEFFx');
  });
});

describe('StopStringFilter', () => {
  it('holds back a possible prefix and releases it when it turns out not to be one', () => {
    const f = new StopStringFilter(['</s>']);
    expect(f.push('ab<')).toEqual({ text: 'ab', stopped: false });
    expect(f.push('/')).toEqual({ text: '', stopped: false });
    expect(f.push('x')).toEqual({ text: '</x', stopped: false });
  });

  it('stops at the earliest stop string and drops it and what follows', () => {
    const f = new StopStringFilter(['END', 'STOP']);
    expect(f.push('one STO')).toEqual({ text: 'one ', stopped: false });
    expect(f.push('P and END')).toEqual({ text: '', stopped: true });
    const g = new StopStringFilter(['END', 'STOP']);
    expect(g.push('a END b STOP')).toEqual({ text: 'a ', stopped: true });
  });

  it('flush returns what was held back; no stops is a pass-through', () => {
    const f = new StopStringFilter(['abc']);
    f.push('xab');
    expect(f.flush()).toBe('ab');
    expect(new StopStringFilter([]).push('abc')).toEqual({ text: 'abc', stopped: false });
    expect(new StopStringFilter(['']).push('abc')).toEqual({ text: 'abc', stopped: false });
  });
});
