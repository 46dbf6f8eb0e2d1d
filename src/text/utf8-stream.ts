/**
 * Streaming UTF-8: token bytes in, text deltas out. A character whose bytes are split across tokens (an emoji
 * as four byte tokens, a CJK character as a merge plus a byte) comes out once, whole, with the token that
 * completes it; bytes that can never form a character become U+FFFD, as in any UTF-8 decoder.
 * `TextDecoder` with `{stream: true}` keeps the unfinished sequence itself (style.md point 14).
 */
export class Utf8Stream {
  private decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

  /** The text these bytes complete (may be ''). */
  push(bytes: Uint8Array): string {
    return this.decoder.decode(bytes, { stream: true });
  }

  /** Ends the stream: an unfinished sequence becomes U+FFFD. The stream can be reused afterwards. */
  flush(): string {
    return this.decoder.decode();
  }
}

/**
 * Holds back text that might be the start of a stop string, so a stop string is never partly emitted.
 * `push` returns the text that is safe to emit and whether a stop string was found (the text before it is
 * emitted; the stop string and everything after it are dropped).
 */
export class StopStringFilter {
  private pending = '';
  private readonly stops: string[];

  constructor(stops: readonly string[] = []) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  push(text: string): { text: string; stopped: boolean } {
    if (this.stops.length === 0) return { text, stopped: false };
    this.pending += text;
    let at = -1;
    for (const s of this.stops) {
      const i = this.pending.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      const out = this.pending.slice(0, at);
      this.pending = '';
      return { text: out, stopped: true };
    }
    const keep = this.heldBack();
    const out = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    return { text: out, stopped: false };
  }

  /** Text held back when generation ends for another reason. */
  flush(): string {
    const out = this.pending;
    this.pending = '';
    return out;
  }

  /** Length of the longest suffix of `pending` that is a proper prefix of a stop string. */
  private heldBack(): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.pending.length); n > best; n--) {
        if (this.pending.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
