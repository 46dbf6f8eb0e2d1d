/** Node-only: a FolderSink over a directory on disk (positioned writes on file handles). */
import { mkdir, open, readdir, rm, writeFile } from 'node:fs/promises';
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

/** Files of an HF checkpoint folder that a new checkpoint replaces (a stale index would shadow a new single file). */
export const CHECKPOINT_FILE = /^(config\.json|model.*\.safetensors|model\.safetensors\.index\.json|tokenizer\.json|tokenizer_config\.json|generation_config\.json)$/;

/** The checkpoint files in `dir` (none when it does not exist). */
export async function checkpointFilesIn(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => CHECKPOINT_FILE.test(n));
  } catch {
    return [];
  }
}

/** Removes the checkpoint files of `dir` (and nothing else). */
export async function removeCheckpointFiles(dir: string): Promise<void> {
  await Promise.all((await checkpointFilesIn(dir)).map((n) => rm(join(dir, n))));
}
