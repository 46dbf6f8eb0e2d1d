/** Node: a checkpoint folder on disk. */
import { basename, join, resolve } from 'node:path';
import { fileSource, readTextFile } from '../format/node-source.js';
import { openCheckpoint, type Checkpoint, type CheckpointFiles } from './checkpoint.js';

const MAX_TEXT_FILE_BYTES = 256 * 2 ** 20;

export function folderFiles(dir: string): CheckpointFiles {
  const root = resolve(dir);
  return {
    name: basename(root),
    // config.json, tokenizer.json, the index: a regular file (a FIFO would hang), size checked before reading
    readText: (file) => readTextFile(join(root, file), MAX_TEXT_FILE_BYTES),
    open: (file) => fileSource(join(root, file)),
  };
}

export function openCheckpointDir(dir: string): Promise<Checkpoint> {
  return openCheckpoint(folderFiles(dir));
}
