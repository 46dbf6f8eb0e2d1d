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
