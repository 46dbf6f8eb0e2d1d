/**
 * Node-only byte sources: positioned reads on a file handle (never reads the whole file at once), and small text
 * files. Every file is opened with O_NONBLOCK and checked with fstat before a byte is read: a FIFO (or a device)
 * named `config.json` or `model.safetensors` would otherwise block open() or read() forever. The check
 * is on the opened descriptor, so the file cannot be swapped between the check and the read.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { FormatError } from '../errors.js';
import { checkRange, type ByteSource } from './source.js';

/** What a non-regular file is, for the error message. */
function kindOf(st: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Opens `path` for reading without blocking, and returns it with its size only when it is a regular file;
 * otherwise a FormatError. Open failures are thrown as they are (callers decide what ENOENT means).
 */
export async function openRegularFile(path: string): Promise<{ handle: FileHandle; size: number }> {
  // O_NONBLOCK: opening a FIFO for reading must not wait for a writer; it has no effect on regular files
  const handle = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new FormatError(`cannot read: ${st.isDirectory() ? 'EISDIR: ' : ''}it is ${kindOf(st)}, not a regular file`, path);
    return { handle, size: st.size };
  } catch (err) {
    await handle.close().catch(() => {});
    if (err instanceof FormatError) throw err;
    throw new FormatError(`cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, path);
  }
}

/** A small text file (config, tokenizer, index), refused past `maxBytes`; undefined when it does not exist. */
export async function readTextFile(path: string, maxBytes: number): Promise<string | undefined> {
  let f: { handle: FileHandle; size: number };
  try {
    f = await openRegularFile(path);
  } catch (err) {
    if (err instanceof FormatError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FormatError(`cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, path);
  }
  try {
    if (f.size > maxBytes) throw new FormatError(`${f.size} bytes is too large for this text file`, path);
    return await f.handle.readFile('utf8');
  } catch (err) {
    if (err instanceof FormatError) throw err;
    throw new FormatError(`cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, path);
  } finally {
    await f.handle.close().catch(() => {});
  }
}

export async function fileSource(path: string): Promise<ByteSource> {
  let f: { handle: FileHandle; size: number };
  try {
    f = await openRegularFile(path);
  } catch (err) {
    if (err instanceof FormatError) throw err;
    throw new FormatError(`cannot open: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, path);
  }
  const { handle, size } = f;
  return {
    name: path,
    size: async () => size,
    async read(offset, length) {
      checkRange(path, offset, length, size);
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new FormatError(`short read at offset ${offset + done}: file truncated`, path);
        done += bytesRead;
      }
      return buf;
    },
    close: () => handle.close(),
  };
}
