/**
 * INT4 checkpoints (docs/model.md §13) through the weight tree: the golden int4 fixture validates with every routed expert
 * INT4 and every other linear BF16; corrupt INT4 tensors and unsupported schemes are typed errors naming the
 * tensor or field; a config alone assumes INT4 by quantization_config's targets and ignore list; the Kimi K2.5
 * wrapper (text_config, `language_model.` prefixes, vision tensors, six-digit shard totals) loads and gives the
 * same logits as its flat twin on the CPU reference.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, FormatError, MissingTensorError, ShapeError } from '../../src/errors.js';
import { openSafetensors, readTensorBytes } from '../../src/format/safetensors.js';
import { memorySource } from '../../src/format/source.js';
import { encodeSafetensors, type TensorEntry } from '../../src/format/writer.js';
import { memoryFiles, openCheckpoint, readLinear, readStoredLinear, type Checkpoint } from '../../src/model/checkpoint.js';
import { parseConfig } from '../../src/model/config.js';
import { loadCpuWeights } from '../../src/model/cpu-weights.js';
import { inspectCheckpoint, inspectConfig } from '../../src/model/inspect.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { referenceForward } from '../../src/model/reference.js';
import { makeToyCheckpointInMemory, toyLayoutJson } from '../../src/model/toy.js';
import { configFormat, storedTensors, weightSpecs, weightTable } from '../../src/model/weights.js';
import { golden } from '../format/shared-paths.js';

const dir = golden('int4');
const configText = readFileSync(`${dir}/config.json`, 'utf8');
const configJson = JSON.parse(configText) as Record<string, unknown>;
type Entry = TensorEntry & { data: Uint8Array };

async function fixtureTensors(): Promise<Entry[]> {
  const st = await openSafetensors(memorySource(new Uint8Array(readFileSync(`${dir}/model.safetensors`))));
  const out: Entry[] = [];
  for (const t of st.tensors.values()) out.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await readTensorBytes(t) });
  return out;
}

async function openEdited(edit: (ts: Entry[]) => Entry[], config: string = configText): Promise<Checkpoint> {
  const bytes = encodeSafetensors(edit(await fixtureTensors()));
  return openCheckpoint(memoryFiles('int4-edit', { 'config.json': new TextEncoder().encode(config), 'model.safetensors': bytes }));
}
const fail = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

const M = 'model.layers.1.mlp.experts.5.up_proj';

describe('INT4 checkpoints (the golden int4 fixture)', () => {
  it('validates: routed experts INT4, every other linear BF16, nothing ignored or unexpected', async () => {
    const ckpt = await openCheckpointDir(dir);
    expect(ckpt.unexpected).toEqual([]);
    expect(ckpt.ignored).toEqual([]);
    expect(ckpt.weights.length).toBe(weightTable(ckpt.config).length);
    expect(ckpt.tensors.size).toBe(storedTensors(ckpt.config).length);
    for (const w of ckpt.weights) {
      const want = w.spec.kind !== 'linear' ? w.spec.kind : w.spec.role === 'routed_expert' ? 'int4' : 'bf16';
      expect(w.format, w.spec.name).toBe(want);
      expect(configFormat(ckpt.config, w.spec), w.spec.name).toBe(want); // Kimi's targets / ignore list agree
    }
    const w = await readStoredLinear(ckpt, `${M}.weight`);
    expect(w).toMatchObject({ format: 'int4', rows: 96, cols: 256, groupSize: 32 });
    // the FP8/BF16-only reader refuses, naming the tensor
    await expect(readLinear(ckpt, `${M}.weight`)).rejects.toThrow(/experts\.5\.up_proj\.weight.*stored INT4/);
    await ckpt.close();
  });

  const corrupt: [string, (ts: Entry[]) => Entry[], new (...a: never[]) => Error, RegExp][] = [
    ['a wrong packed width', (ts) => ts.map((t) => (t.name === `${M}.weight_packed` ? { ...t, shape: [96, 16], data: t.data.subarray(0, 96 * 16 * 4) } : t)), ShapeError, /weight_packed.*expected shape \[96, 32\], found \[96, 16\]/],
    ['a packed dtype other than I32', (ts) => ts.map((t) => (t.name === `${M}.weight_packed` ? { ...t, dtype: 'U32' as const } : t)), ShapeError, /weight_packed.*expected dtype I32, found U32/],
    ['a wrong scale shape', (ts) => ts.map((t) => (t.name === `${M}.weight_scale` ? { ...t, shape: [96, 4], data: t.data.subarray(0, 96 * 4 * 2) } : t)), ShapeError, /weight_scale.*expected shape \[96, 8\], found \[96, 4\]/],
    ['a scale dtype that is not a float', (ts) => ts.map((t) => (t.name === `${M}.weight_scale` ? { ...t, dtype: 'I16' as const } : t)), ShapeError, /weight_scale.*expected dtype BF16 or F16 or F32, found I16/],
    ['a weight_shape of the wrong dtype', (ts) => ts.map((t) => (t.name === `${M}.weight_shape` ? { ...t, dtype: 'F32' as const } : t)), ShapeError, /weight_shape.*expected dtype I32 or I64, found F32/],
    ['a missing weight_scale', (ts) => ts.filter((t) => t.name !== `${M}.weight_scale`), MissingTensorError, /missing tensor 'model\.layers\.1\.mlp\.experts\.5\.up_proj\.weight_scale'/],
    ['a missing expert', (ts) => ts.filter((t) => !t.name.startsWith(`${M}.`)), MissingTensorError, /missing tensor 'model\.layers\.1\.mlp\.experts\.5\.up_proj\.weight_packed'/],
    ['a zero point', (ts) => [...ts, { name: `${M}.weight_zero_point`, dtype: 'I32', shape: [96, 1], data: new Uint8Array(96 * 4) }], FormatError, /weight_zero_point.*is stored: only symmetric INT4/],
    ['a g_idx', (ts) => [...ts, { name: `${M}.weight_g_idx`, dtype: 'I32', shape: [256], data: new Uint8Array(256 * 4) }], FormatError, /weight_g_idx.*is stored/],
    ['both weight and weight_packed', (ts) => [...ts, { name: `${M}.weight`, dtype: 'BF16', shape: [96, 256], data: new Uint8Array(96 * 256 * 2) }], FormatError, /either INT4 or not/],
  ];
  for (const [what, edit, type, msg] of corrupt) {
    it(`${what} is a typed error naming the tensor`, async () => {
      const err = await fail(openEdited(edit));
      expect(err).toBeInstanceOf(type);
      expect((err as Error).message).toMatch(msg);
    });
  }

  it('a weight_shape that disagrees with the config is a ShapeError when the leaf is read (I64 accepted)', async () => {
    const wrong = await openEdited((ts) => ts.map((t) => (t.name === `${M}.weight_shape` ? { ...t, data: new Uint8Array(new Int32Array([96, 255]).buffer) } : t)));
    const err = await fail(loadCpuWeights(wrong));
    expect(err).toBeInstanceOf(ShapeError);
    expect((err as Error).message).toMatch(/experts\.5\.up_proj\.weight_shape.*holds \[96, 255\], but the config needs \[96, 256\]/);
    const i64 = await openEdited((ts) => ts.map((t) => (t.name === `${M}.weight_shape` ? { ...t, dtype: 'I64', data: new Uint8Array(new BigInt64Array([96n, 256n]).buffer) } : t)));
    expect(await readStoredLinear(i64, `${M}.weight`)).toMatchObject({ format: 'int4', rows: 96, cols: 256 });
  });

  it('F32 and F16 group scales are read too (the model dtype), to the same weights', async () => {
    const base = await loadCpuWeights(await openCheckpointDir(dir));
    for (const dtype of ['F32', 'F16'] as const) {
      const ckpt = await openEdited((ts) => ts.map((t) => {
        if (t.name !== `${M}.weight_scale`) return t;
        const bf = new Uint16Array(t.data.slice().buffer);
        const f32 = new Float32Array(bf.length);
        new Uint32Array(f32.buffer).set(Array.from(bf, (b) => b << 16));
        if (dtype === 'F32') return { ...t, dtype, data: new Uint8Array(f32.buffer) };
        // these scales are exact in F16 too (|scale| in F16's normal range, <= 11 significant bits)
        const h = new Uint16Array(f32.length);
        const dv = new DataView(new ArrayBuffer(2));
        for (let k = 0; k < f32.length; k++) {
          const v = f32[k]!;
          const e = Math.floor(Math.log2(Math.abs(v)));
          const m = Math.round((Math.abs(v) / 2 ** e - 1) * 1024);
          dv.setUint16(0, (v < 0 ? 0x8000 : 0) | ((e + 15) << 10) | m);
          h[k] = dv.getUint16(0);
        }
        return { ...t, dtype, data: new Uint8Array(h.buffer) };
      }));
      const w = await loadCpuWeights(ckpt);
      const e5 = w.layers[1]!.moe!.experts[5]!.up.data;
      expect(Array.from(e5), dtype).toEqual(Array.from(base.layers[1]!.moe!.experts[5]!.up.data));
    }
  });

  it('INT4 tensors without a compressed-tensors config are refused (the group size comes from it)', async () => {
    const { quantization_config: _q, ...bf16 } = configJson;
    void _q;
    const err = await fail(openEdited((ts) => ts, JSON.stringify(bf16)));
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/weight_packed needs a compressed-tensors pack-quantized quantization_config/);
  });

  const schemes: [string, (q: Record<string, any>) => void, string][] = [
    ['asymmetric', (q) => (q.config_groups.group_0.weights.symmetric = false), 'quantization_config.config_groups.group_0.weights.symmetric'],
    ['activation-quantised', (q) => (q.config_groups.group_0.input_activations = { num_bits: 8, type: 'float' }), 'quantization_config.config_groups.group_0.input_activations'],
    ['activation ordering (g_idx)', (q) => (q.config_groups.group_0.weights.actorder = 'group'), 'quantization_config.config_groups.group_0.weights.actorder'],
    ['8-bit', (q) => (q.config_groups.group_0.weights.num_bits = 8), 'quantization_config.config_groups.group_0.weights.num_bits'],
    ['a zero-point dtype', (q) => (q.config_groups.group_0.weights.zp_dtype = 'int8'), 'quantization_config.config_groups.group_0.weights.zp_dtype'],
    ['another format', (q) => (q.format = 'int-quantized'), 'quantization_config.format'],
    ['a channel strategy', (q) => (q.config_groups.group_0.weights.strategy = 'channel'), 'quantization_config.config_groups.group_0.weights.strategy'],
  ];
  for (const [what, edit, field] of schemes) {
    it(`a ${what} scheme is a ConfigError naming ${field.split('.').pop()}`, () => {
      const j = structuredClone(configJson);
      edit(j.quantization_config as Record<string, any>);
      let err: unknown;
      try {
        parseConfig(j);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).field).toBe(field);
    });
  }

  it('a config alone assumes INT4 for the targets outside the ignore list (docs/model.md §13)', () => {
    const c = parseConfig(configJson);
    const r = inspectConfig(c, 'int4');
    const ckptBytes = readFileSync(`${dir}/model.safetensors`);
    const headerLen = Number(ckptBytes.readBigUInt64LE(0));
    expect(r.bytes.tensorData).toBe(ckptBytes.length - 8 - headerLen);
    expect(r.bytes.byFormat.int4.leaves).toBe(2 * 16 * 3);
    expect(r.bytes.byFormat.int4.params).toBe(2 * 16 * 3 * 96 * 256);
    // a token reads top-4 of 16 experts: (packed + scales) per expert
    const expert = 3 * (96 * 256 / 2 + 96 * 256 / 32 * 2);
    const rest = r.bytes.gpu.total - r.bytes.gpu.int4 - 512 * 256 * 2 + 256 * 2; // embedding: one row
    expect(r.bytes.gpu.readPerToken).toBe(rest + 2 * 4 * expert);
    for (const s of weightSpecs(c)) if (s.kind === 'linear') expect(configFormat(c, s), s.name).toBe(s.role === 'routed_expert' ? 'int4' : 'bf16');
  });
});

describe('Kimi K2.5 wrapper (docs/model.md §13)', () => {
  it('a K2.5-wrapped, sharded INT4 toy gives the same logits as its flat twin; vision tensors are listed and ignored', async () => {
    const flat = await makeToyCheckpointInMemory('small', { seed: 7, quant: 'int4' });
    const k25 = await makeToyCheckpointInMemory('small', { seed: 7, quant: 'int4', k25: true, shards: 3 });
    expect([...k25.data.keys()].filter((f) => f.endsWith('.safetensors')).sort()).toEqual([
      'model-00001-of-000003.safetensors', 'model-00002-of-000003.safetensors', 'model-00003-of-000003.safetensors',
    ]);
    const cfg = JSON.parse(new TextDecoder().decode(k25.data.get('config.json'))) as Record<string, unknown>;
    expect(cfg.architectures).toEqual(['KimiK25ForConditionalGeneration']);
    expect(cfg.hidden_size).toBeUndefined();
    expect((cfg.text_config as Record<string, unknown>).hidden_size).toBe(256);
    const index = JSON.parse(new TextDecoder().decode(k25.data.get('model.safetensors.index.json'))) as { weight_map: Record<string, string> };
    expect(Object.keys(index.weight_map).every((n) => /^(language_model\.|vision_tower\.|mm_projector\.)/.test(n))).toBe(true);

    const a = await openCheckpoint(memoryFiles('flat', flat.data));
    const b = await openCheckpoint(memoryFiles('k25', k25.data));
    expect(b.config.derived.tensorPrefix).toBe('language_model.');
    expect(b.unexpected).toEqual([]);
    expect(b.ignored.sort()).toEqual(['mm_projector.proj.0.weight', 'vision_tower.encoder.blocks.0.norm0.weight', 'vision_tower.patch_embed.proj.weight']);
    expect(b.tensors.get('model.embed_tokens.weight')!.name).toBe('language_model.model.embed_tokens.weight');
    const tokens = [1, 300, 17, 42, 511, 0, 256];
    const la = referenceForward(await loadCpuWeights(a), tokens);
    const lb = referenceForward(await loadCpuWeights(b), tokens);
    expect(Array.from(lb)).toEqual(Array.from(la));

    const report = await inspectCheckpoint(b);
    expect(report.tensors!.filter((t) => t.status === 'ignored').map((t) => t.name).sort()).toEqual(b.ignored.sort());
    expect(report.tensors!.filter((t) => t.status === 'used').every((t) => t.name.startsWith('language_model.'))).toBe(true);
    expect(report.bytes.byFormat.int4.leaves).toBe(2 * 32 * 3);
    await a.close();
    await b.close();
  });

  it('reads the wrapper config: text_config first, then the top level; KimiK25 without text_config is refused', () => {
    const j = toyLayoutJson('small', { quant: 'int4', k25: true });
    const c = parseConfig(j);
    expect(c.model_type).toBe('kimi_k2');
    expect(c.quantization_config?.quant_method).toBe('compressed-tensors');
    expect(c.derived.tensorPrefix).toBe('language_model.');
    const { text_config, ...top } = j as { text_config: Record<string, unknown> };
    const { rms_norm_eps, ...text } = text_config;
    expect(parseConfig({ ...top, rms_norm_eps: 1e-5, text_config: text }).rms_norm_eps).toBe(1e-5); // top-level fallback
    void rms_norm_eps;
    expect(() => parseConfig({ ...top })).toThrow(ConfigError);
  });

  it('a K2.5 config over unprefixed tensors is read too (as mlx-lm strips the prefix); one tensor stored both ways is refused', async () => {
    const flat = await makeToyCheckpointInMemory('tiny', { seed: 1, quant: 'bf16' });
    const files = new Map(flat.data).set('config.json', new TextEncoder().encode(JSON.stringify(toyLayoutJson('tiny', { quant: 'bf16', k25: true }))));
    const ckpt = await openCheckpoint(memoryFiles('mixed', files));
    expect(ckpt.unexpected).toEqual([]);
    const st = await openSafetensors(memorySource(flat.data.get('model.safetensors')!));
    const ts: Entry[] = [];
    for (const t of st.tensors.values()) ts.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await readTensorBytes(t) });
    const norm = ts.find((t) => t.name === 'model.norm.weight')!;
    files.set('model.safetensors', encodeSafetensors([...ts, { ...norm, name: 'language_model.model.norm.weight' }]));
    const err = await fail(openCheckpoint(memoryFiles('twice', files)));
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/stored twice, as '(language_model\.)?model\.norm\.weight' and '(language_model\.)?model\.norm\.weight'/);
  });
});

describe('stack formats (for the GPU upload)', () => {
  it('expertFormat gives a layer\'s one expert format; a mixed stack is a FormatError naming the odd leaf', async () => {
    const { expertFormat, stackFormat } = await import('../../src/model/checkpoint.js');
    const ckpt = await openCheckpointDir(dir);
    expect(expertFormat(ckpt, 1)).toBe('int4');
    expect(stackFormat(ckpt, ['model.layers.1.mlp.shared_experts.gate_proj.weight', 'model.layers.1.mlp.shared_experts.up_proj.weight'])).toBe('bf16');
    expect(() => stackFormat(ckpt, [`${M}.weight`, 'model.layers.1.mlp.shared_experts.up_proj.weight'])).toThrow(/shared_experts\.up_proj\.weight.*stored BF16 but .* is INT4/);
    await ckpt.close();
  });
});
