/**
 * The weight table against checkpoints: every golden checkpoint validates; a wrong shape, a wrong dtype, a missing
 * tensor or scale fail naming the tensor with the expected and found values; MTP layers are ignored.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MissingTensorError, ShapeError } from '../../src/errors.js';
import { openSafetensors, readTensorBytes, type TensorInfo } from '../../src/format/safetensors.js';
import { memorySource } from '../../src/format/source.js';
import { encodeSafetensors, type TensorEntry } from '../../src/format/writer.js';
import { memoryFiles, openCheckpoint } from '../../src/model/checkpoint.js';
import { parseConfig } from '../../src/model/config.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { checkWeights, scaleShape, storedTensors, weightTable } from '../../src/model/weights.js';
import { golden, GOLDEN_NAMES, SHARED_DIR, sharedConfig } from '../format/shared-paths.js';

const tinyDir = golden('tiny');
const tinyConfigText = readFileSync(`${tinyDir}/config.json`, 'utf8');
const tinyConfig = parseConfig(JSON.parse(tinyConfigText));

/** The tiny golden tensors as writer entries with their bytes, for editing. */
async function tinyTensors(): Promise<(TensorEntry & { data: Uint8Array })[]> {
  const st = await openSafetensors(memorySource(new Uint8Array(readFileSync(`${tinyDir}/model.safetensors`))));
  const out: (TensorEntry & { data: Uint8Array })[] = [];
  for (const t of st.tensors.values()) out.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await readTensorBytes(t) });
  return out;
}

async function openEdited(edit: (ts: (TensorEntry & { data: Uint8Array })[]) => (TensorEntry & { data: Uint8Array })[]): Promise<unknown> {
  const bytes = encodeSafetensors(edit(await tinyTensors()));
  return openCheckpoint(memoryFiles('tiny-edit', { 'config.json': new TextEncoder().encode(tinyConfigText), 'model.safetensors': bytes })).catch((e: unknown) => e);
}

describe('weight table (needs the golden checkpoints)', () => {
  it('validates every golden checkpoint with nothing missing, ignored or unexpected', async () => {
    for (const name of GOLDEN_NAMES) {
      const ckpt = await openCheckpointDir(golden(name));
      expect(ckpt.ignored, name).toEqual([]);
      expect(ckpt.unexpected, name).toEqual([]);
      expect(ckpt.weights.length).toBe(weightTable(ckpt.config).length);
      expect(ckpt.tensors.size).toBe(storedTensors(ckpt.config).length);
      await ckpt.close();
    }
  });

  it('gives scale shapes [ceil(out/128), ceil(in/128)] (docs/model.md §3.3 production example)', () => {
    expect(scaleShape(576, 7168)).toEqual([5, 56]);
    expect(scaleShape(72, 200)).toEqual([1, 2]);
    expect(scaleShape(128, 129)).toEqual([1, 2]);
  });

  it('names a tensor with a wrong shape, with the expected and found shapes', async () => {
    const name = 'model.layers.1.mlp.experts.3.up_proj.weight';
    const err = await openEdited((ts) => ts.map((t) => (t.name === name ? { ...t, shape: [16, 64], data: t.data.subarray(0, 1024) } : t)));
    expect(err).toBeInstanceOf(ShapeError);
    expect((err as ShapeError).tensor).toBe(name);
    expect((err as Error).message).toContain(`'${name}'`);
    expect((err as Error).message).toContain('expected shape [32, 64], found [16, 64]');
  });

  it('names a tensor with a wrong dtype', async () => {
    const name = 'model.layers.0.input_layernorm.weight';
    const err = await openEdited((ts) => ts.map((t) => (t.name === name ? { ...t, dtype: 'F16' as const } : t)));
    expect(err).toBeInstanceOf(ShapeError);
    expect((err as Error).message).toContain(`'${name}'`);
    expect((err as Error).message).toContain('expected dtype BF16, found F16');
  });

  it('names a missing tensor and a missing scale', async () => {
    for (const name of ['model.layers.1.mlp.gate.e_score_correction_bias', 'model.layers.0.self_attn.o_proj.weight_scale_inv', 'lm_head.weight']) {
      const err = await openEdited((ts) => ts.filter((t) => t.name !== name));
      expect(err).toBeInstanceOf(MissingTensorError);
      expect((err as MissingTensorError).tensor).toBe(name);
      expect((err as Error).message).toContain(`missing tensor '${name}'`);
    }
  });

  it('names a scale with the wrong grid', async () => {
    const name = 'model.layers.0.mlp.down_proj.weight_scale_inv';
    const err = await openEdited((ts) => ts.map((t) => (t.name === name ? { ...t, shape: [1, 2], data: new Uint8Array(8) } : t)));
    expect(err).toBeInstanceOf(ShapeError);
    expect((err as Error).message).toContain('expected shape [1, 1], found [1, 2]');
  });

  it('ignores MTP layers (>= num_hidden_layers) and reports other extras as unexpected', async () => {
    const ckpt = (await openEdited((ts) => [
      ...ts,
      { name: 'model.layers.2.mlp.experts.0.up_proj.weight', dtype: 'F8_E4M3', shape: [2, 2], data: new Uint8Array(4) },
      { name: 'model.layers.2.eh_proj.weight', dtype: 'BF16', shape: [2], data: new Uint8Array(4) },
      { name: 'model.rotary_emb.inv_freq', dtype: 'F32', shape: [1], data: new Uint8Array(4) },
    ])) as Awaited<ReturnType<typeof openCheckpoint>>;
    expect(ckpt.ignored.sort()).toEqual(['model.layers.2.eh_proj.weight', 'model.layers.2.mlp.experts.0.up_proj.weight']);
    expect(ckpt.unexpected).toEqual(['model.rotary_emb.inv_freq']);
  });

  it('expects BF16 linear weights and no scales without quantization_config', () => {
    const { quantization_config, ...raw } = JSON.parse(tinyConfigText) as Record<string, unknown>;
    void quantization_config;
    const c = parseConfig(raw);
    const stored = storedTensors(c);
    expect(stored.some((t) => t.role === 'scale')).toBe(false);
    expect(stored.find((t) => t.name === 'model.layers.0.self_attn.o_proj.weight')?.dtype).toBe('BF16');
    const fake = new Map<string, TensorInfo>(stored.map((t) => [t.name, { name: t.name, dtype: t.dtype, shape: t.shape, offset: 0, byteLength: 0, source: memorySource(new Uint8Array(0), 'x') }]));
    expect(checkWeights(c, fake).checked.length).toBe(weightTable(c).length);
    expect(() => checkWeights(tinyConfig, fake)).toThrow(/expected dtype F8_E4M3, found BF16/);
  });
});

describe('the weight tree', () => {
  it('groups expand to the table; routed experts are one group per layer; (role, layer, expert, slot) is unique', async () => {
    const { weightGroups } = await import('../../src/model/weights.js');
    for (const name of GOLDEN_NAMES) {
      const c = parseConfig(JSON.parse(readFileSync(`${golden(name)}/config.json`, 'utf8')));
      const groups = [...weightGroups(c)];
      const expanded = groups.flatMap((g) => Array.from({ length: g.count }, (_, i) => g.leaves(i)).flat());
      expect(expanded.map((s) => s.name)).toEqual(weightTable(c).map((s) => s.name));
      const moe = c.derived.moeLayers.filter(Boolean).length;
      expect(groups.filter((g) => g.count > 1)).toHaveLength(moe);
      const keys = expanded.map((s) => `${s.role}|${s.layer}|${s.expert ?? ''}|${s.slot}`);
      expect(new Set(keys).size, name).toBe(keys.length);
    }
  });

  it('iterates a Kimi K2 config lazily: the first leaves come without building all 69,975', async () => {
    const { weightSpecs } = await import('../../src/model/weights.js');
    const c = parseConfig(JSON.parse(readFileSync(sharedConfig('kimi-k2.json'), 'utf8')));
    const it = weightSpecs(c);
    expect(it.next().value?.name).toBe('model.embed_tokens.weight');
    let n = 1;
    for (const _ of it) n++;
    expect(n).toBe(weightTable(c).length);
    expect(n).toBe(69_975);
  });
});
