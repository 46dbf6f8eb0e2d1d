/**
 * On a terminal, control characters a model emits (ESC above all) would be interpreted as terminal commands:
 * show them as Unicode control pictures (␛, ␀...) instead; newlines and tabs pass. Pipes get the text as is.
 */
export function visibleControls(s: string): string {
  return s.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => String.fromCharCode(c === '\x7f' ? 0x2421 : 0x2400 + c.charCodeAt(0)));
}

/**
 * `webmoe generate ... | head -c 10`: once the reader closes the pipe, a write to stdout fails with EPIPE, which
 * Node emits as an 'error' event, and an unhandled one crashes with a stack trace. The reader has
 * all it wanted, so exit quietly with 0, as a command killed by SIGPIPE would stop (and `set -o pipefail`
 * scripts do not fail for it). Other stream errors are not ours to hide: rethrown.
 */
export function exitQuietlyOnBrokenPipe(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr], exit: (code: number) => void = (c) => process.exit(c)): void {
  for (const s of streams) {
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') exit(0);
      else throw err;
    });
  }
}
