/** Node-only: a FolderSink over a directory on disk (positioned writes on file handles). */
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import type { FolderSink } from './writer.js';

export async function nodeFolder(dir: string): Promise<FolderSink> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new InputError(`cannot create output folder ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'out');
  }
  return {
    async create(file, size) {
      const path = join(dir, file);
      const handle = await open(path, 'w');
      await handle.truncate(size);
      return {
        async writeAt(offset, bytes) {
          if (offset < 0 || offset + bytes.length > size) throw new InputError(`write of ${bytes.length} bytes at ${offset} is outside ${path} (${size} bytes)`);
          let done = 0;
          while (done < bytes.length) {
            const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, offset + done);
            done += bytesWritten;
          }
        },
        close: () => handle.close(),
      };
    },
    writeText: (file, text) => writeFile(join(dir, file), text, 'utf8'),
  };
}
