/**
 * CheckpointFiles builders other than HTTP: a picked folder of `File`s (browser), memory, and a folder on disk
 * whose odd contents (a directory named config.json, a missing shard) still fail with typed errors.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { fileListFiles, openCheckpoint, readLinear } from '../../src/model/checkpoint.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { makeToyCheckpointInMemory } from '../../src/model/toy.js';

const tmp = mkdtempSync(join(tmpdir(), 'webmoe-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A File as a folder picker gives it (webkitRelativePath is read-only in browsers and absent in Node). */
function pickedFile(path: string, bytes: Uint8Array): File {
  const f = new File([bytes as Uint8Array<ArrayBuffer>], path.split('/').pop()!);
  Object.defineProperty(f, 'webkitRelativePath', { value: path });
  return f;
}

describe('fileListFiles (a picked folder)', () => {
  it('opens a sharded checkpoint from File objects, preferring top-level files over nested copies', async () => {
    const toy = await makeToyCheckpointInMemory('tiny', { shards: 2, seed: 4 });
    const files = [...toy.data].map(([name, bytes]) => pickedFile(`my-model/${name}`, bytes));
    // a stale nested copy with a different config must not win
    files.unshift(pickedFile('my-model/old/config.json', new TextEncoder().encode('{"broken": true}')));
    const ckpt = await openCheckpoint(fileListFiles(files));
    expect(ckpt.name).toBe('my-model');
    expect(ckpt.files.length).toBe(2);
    const w = await readLinear(ckpt, 'model.layers.0.self_attn.o_proj.weight');
    expect(w.rows).toBe(64);
    await expect(openCheckpoint(fileListFiles(files.filter((f) => !f.name.endsWith('00002-of-00002.safetensors'))))).rejects.toThrow(/not found in the picked folder/);
  });
});

describe('folderFiles (Node)', () => {
  it('turns unreadable files into FormatErrors naming them', async () => {
    const d = join(tmp, 'odd');
    mkdirSync(join(d, 'config.json'), { recursive: true }); // a directory where the config should be
    const err = await openCheckpointDir(d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/odd\/config\.json: cannot read: EISDIR/);
  });

  it('names a shard the index lists but the folder lacks', async () => {
    const toy = await makeToyCheckpointInMemory('tiny', { shards: 2 });
    const d = join(tmp, 'lacking');
    mkdirSync(d, { recursive: true });
    for (const [name, bytes] of toy.data) if (!name.startsWith('model-00002')) writeFileSync(join(d, name), bytes);
    const err = await openCheckpointDir(d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/model-00002-of-00002\.safetensors: cannot open: ENOENT/);
  });
});
