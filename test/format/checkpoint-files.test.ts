/**
 * CheckpointFiles builders other than HTTP: a picked folder of `File`s (browser), memory, and a folder on disk
 * whose odd contents (a directory named config.json, a missing shard) still fail with typed errors.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { fileListFiles, memoryFiles, openCheckpoint, readLinear } from '../../src/model/checkpoint.js';
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

describe('the shard index', () => {
  it('must agree with the shards: a tensor listed in the wrong shard, or listed but absent, is named', async () => {
    const toy = await makeToyCheckpointInMemory('tiny', { shards: 2 });
    const index = JSON.parse(new TextDecoder().decode(toy.data.get('model.safetensors.index.json'))) as { weight_map: Record<string, string> };
    const edit = (f: (m: Record<string, string>) => void): Map<string, Uint8Array> => {
      const idx = structuredClone(index);
      f(idx.weight_map);
      return new Map([...toy.data, ['model.safetensors.index.json', new TextEncoder().encode(JSON.stringify(idx))]]);
    };
    const moved = 'model.norm.weight';
    const other = index.weight_map[moved] === 'model-00001-of-00002.safetensors' ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors';
    await expect(openCheckpoint(memoryFiles('t', edit((m) => (m[moved] = other))))).rejects.toThrow(/tensor 'model\.norm\.weight': model\.safetensors\.index\.json puts this tensor in/);
    await expect(openCheckpoint(memoryFiles('t', edit((m) => (m['model.ghost.weight'] = other))))).rejects.toThrow(/tensor 'model\.ghost\.weight'.*does not hold it/);
    await expect(openCheckpoint(memoryFiles('t', edit((m) => (m[moved] = '../x.safetensors'))))).rejects.toThrow(/must be a file name in the folder/);
  });
});
