/** Node: a checkpoint folder on disk. */
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileSource } from '../format/node-source.js';
import { openCheckpoint, type Checkpoint, type CheckpointFiles } from './checkpoint.js';

export function folderFiles(dir: string): CheckpointFiles {
  const root = resolve(dir);
  return {
    name: basename(root),
    async readText(file) {
      try {
        return await readFile(join(root, file), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    open: (file) => fileSource(join(root, file)),
  };
}

export function openCheckpointDir(dir: string): Promise<Checkpoint> {
  return openCheckpoint(folderFiles(dir));
}
