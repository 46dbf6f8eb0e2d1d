/** Node-only byte source: positioned reads on a file handle (never reads the whole file at once). */
import { open, type FileHandle } from 'node:fs/promises';
import { FormatError } from '../errors.js';
import { checkRange, type ByteSource } from './source.js';

export async function fileSource(path: string): Promise<ByteSource> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new FormatError(`cannot open: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, path);
  }
  let size: number;
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
    size = st.size;
  } catch (err) {
    await handle.close().catch(() => {});
    throw new FormatError(`cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, path);
  }
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
