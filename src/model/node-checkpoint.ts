/** Node: a checkpoint folder on disk. */
import { readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { FormatError } from '../errors.js';
import { fileSource } from '../format/node-source.js';
import { openCheckpoint, type Checkpoint, type CheckpointFiles } from './checkpoint.js';

const MAX_TEXT_FILE_BYTES = 256 * 2 ** 20;

export function folderFiles(dir: string): CheckpointFiles {
  const root = resolve(dir);
  return {
    name: basename(root),
    async readText(file) {
      const path = join(root, file);
      try {
        // config.json, tokenizer.json, the index: checked before reading, so a huge file is refused, not loaded
        const { size } = await stat(path);
        if (size > MAX_TEXT_FILE_BYTES) throw new FormatError(`${size} bytes is too large for this text file`, path);
        return await readFile(path, 'utf8');
      } catch (err) {
        if (err instanceof FormatError) throw err;
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new FormatError(`cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, path);
      }
    },
    open: (file) => fileSource(join(root, file)),
  };
}

export function openCheckpointDir(dir: string): Promise<Checkpoint> {
  return openCheckpoint(folderFiles(dir));
}
