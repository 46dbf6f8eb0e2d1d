/**
 * The weight tree: every tensor the forward pass reads, as typed leaf specs built from the config (docs/model.md §2.3,
 * §13), and the check of a checkpoint's headers against it (run before any GPU memory is allocated). A leaf's
 * stored format is what the checkpoint stores; without weights, what the config's quantization_config implies.
 *
 * API (the CPU loader, the GPU loader, make-toy, inspect and convert all walk this tree):
 *   weightGroups(c)      lazy, O(layers): one group per leaf, per layer's routed experts (`count` = E,
 *                        `leaves(e)` = expert e's gate, up, down) and per shared expert (gate, up, down);
 *                        `module` names the group (labels of the GPU's expert stacks); counting multiplies, it
 *                        never expands experts
 *   weightSpecs(c)       lazy: every leaf (WeightSpec: name, kind, role, slot, shape [out, in], layer, expert);
 *                        loaders place a leaf by its position (role, layer, expert, slot; leafKey), never by
 *                        parsing its name (the loaders spell no tensor name: the names are made here)
 *   weightTable(c)       the same as an array (toy-sized configs only)
 *   configFormat(c, s)   LeafFormat a leaf has when nothing is stored: 'fp8' | 'bf16' | 'int4' | 'f32'
 *   storedParts(c, s, f) the tensors that hold leaf s in format f (name, dtype, shape, part):
 *                          fp8   `<m>.weight` F8_E4M3 [out, in] + `<m>.weight_scale_inv` F32 [⌈out/128⌉, ⌈in/128⌉]
 *                          bf16  `<m>.weight` BF16 (also norms, embeddings, router); f32: `<m>` F32 (router bias)
 *                          int4  `<m>.weight_packed` I32 [out, ⌈in/8⌉] + `<m>.weight_scale` BF16 [out, ⌈in/G⌉]
 *                                + `<m>.weight_shape` I32 [2] (G = quantization_config group_size, 32)
 *                        where `<m>` is the module name (the leaf name without `.weight`)
 *   storedTensors(c) / iterStoredTensors(c)   every stored tensor of a checkpoint of this config (config formats)
 *   checkWeights(c, tensors) -> CheckedTensor[] {spec, format, weight, scale?, shape?}: the format of each leaf
 *                        from what is stored (`<m>.weight_packed` present means INT4), strictly validated;
 *                        storedBytes(t) is what reading a checked leaf reads (load progress)
 * Names here are the logical HF names (`model.layers.0...`); a Kimi K2.5 checkpoint stores them with the
 * `language_model.` prefix (config.derived.tensorPrefix), which checkpoint.ts strips when it opens the files.
 *
 * Legend: D hidden, H heads, Dq = Dn + Dr, Rq q_lora_rank, R kv_lora_rank, Dv v head dim, I dense intermediate,
 * F expert intermediate, S shared experts, E routed experts, V vocab, G INT4 group size.
 */
import { FormatError, MissingTensorError, ShapeError } from '../errors.js';
import type { Dtype, TensorInfo } from '../format/safetensors.js';
import type { ModelConfig } from './config.js';

/** 'linear': a projection W[out, in] (FP8, BF16 or INT4 as stored). 'bf16' / 'f32': stored as such. */
export type WeightKind = 'linear' | 'bf16' | 'f32';

/** What a leaf is in the model. */
export type WeightRole = 'embed' | 'norm' | 'attention' | 'dense_mlp' | 'router' | 'router_bias' | 'routed_expert' | 'shared_expert' | 'lm_head';

/** How a leaf is stored: block FP8 + scales, BF16, INT4 pack-quantized + group scales, or F32. */
export type LeafFormat = 'fp8' | 'bf16' | 'int4' | 'f32';

/**
 * Where a leaf goes in the loaded model: the NAME of its field in CpuWeights / GpuWeights, in the container its role
 * and layer pick (the model, the layer, its attention, MLP, router or expert; on the GPU an expert's gate, up and
 * down are matrices of its expert stacks instead). Loaders place leaves by (role,
 * layer, expert, slot) and never parse names; a new slot needs its field in both structs (docs/architecture.md §7).
 */
export type WeightSlot =
  | 'embed' | 'norm' | 'lmHead' // global
  | 'inputNorm' | 'postNorm' // per layer
  | 'qA' | 'qANorm' | 'qB' | 'q' | 'kvA' | 'kvANorm' | 'kvB' | 'o' // attention
  | 'router' | 'bias' // MoE router
  | 'gate' | 'up' | 'down'; // an FFN: dense MLP, routed expert, shared expert

export interface WeightSpec {
  name: string;
  kind: WeightKind;
  role: WeightRole;
  slot: WeightSlot;
  /** [out, in] for linear weights. */
  shape: number[];
  /** -1 for global tensors. */
  layer: number;
  /** The routed expert's index (role 'routed_expert'). */
  expert?: number;
}

/** A leaf's place in the loaded model; unique per leaf (test/model/weights.test.ts). */
export type WeightPosition = Pick<WeightSpec, 'role' | 'layer' | 'slot' | 'expert'>;

/** The key of a position (`role|layer|expert|slot`), for indexes of a checkpoint's leaves (model/checkpoint.ts leafAt). */
export function leafKey(p: WeightPosition): string {
  return `${p.role}|${p.layer}|${p.expert ?? ''}|${p.slot}`;
}

/**
 * Leaves loaded together: a layer's routed experts are one group of `count` = E instances of (gate, up, down),
 * a shared expert one group of one instance (gate, up, down), every other leaf a group of its own.
 */
export interface WeightGroup {
  role: WeightRole;
  layer: number;
  /** Instances: E for routed experts, else 1. */
  count: number;
  /**
   * The module that holds the group: the leaf's module (moduleName) for a single leaf, `model.layers.i.mlp.experts`
   * for routed experts, `model.layers.i.mlp.shared_experts` for a shared expert (the GPU loader labels its expert
   * stacks with it).
   */
  module: string;
  /** The leaves of instance i (expert i's gate, up, down; or the group's leaves). */
  leaves(i: number): WeightSpec[];
}

/** Every leaf group, in load order, lazily (a 1T-parameter config yields ~20 groups per layer). */
export function* weightGroups(c: ModelConfig): Generator<WeightGroup> {
  const D = c.hidden_size;
  const d = c.derived;
  const one = (spec: WeightSpec): WeightGroup => ({ role: spec.role, layer: spec.layer, count: 1, module: moduleName(spec), leaves: () => [spec] });
  yield one({ name: 'model.embed_tokens.weight', kind: 'bf16', role: 'embed', slot: 'embed', shape: [c.vocab_size, D], layer: -1 });
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    const leaf = (name: string, kind: WeightKind, role: WeightRole, slot: WeightSlot, shape: number[]): WeightGroup => one({ name: p + name, kind, role, slot, shape, layer: i });
    yield leaf('input_layernorm.weight', 'bf16', 'norm', 'inputNorm', [D]);
    if (c.q_lora_rank === null) {
      yield leaf('self_attn.q_proj.weight', 'linear', 'attention', 'q', [d.qWidth, D]);
    } else {
      yield leaf('self_attn.q_a_proj.weight', 'linear', 'attention', 'qA', [c.q_lora_rank, D]);
      yield leaf('self_attn.q_a_layernorm.weight', 'bf16', 'attention', 'qANorm', [c.q_lora_rank]);
      yield leaf('self_attn.q_b_proj.weight', 'linear', 'attention', 'qB', [d.qWidth, c.q_lora_rank]);
    }
    yield leaf('self_attn.kv_a_proj_with_mqa.weight', 'linear', 'attention', 'kvA', [d.kvAWidth, D]);
    yield leaf('self_attn.kv_a_layernorm.weight', 'bf16', 'attention', 'kvANorm', [c.kv_lora_rank]);
    yield leaf('self_attn.kv_b_proj.weight', 'linear', 'attention', 'kvB', [d.kvBWidth, c.kv_lora_rank]);
    yield leaf('self_attn.o_proj.weight', 'linear', 'attention', 'o', [D, d.oWidth]);
    yield leaf('post_attention_layernorm.weight', 'bf16', 'norm', 'postNorm', [D]);
    if (d.moeLayers[i]) {
      yield leaf('mlp.gate.weight', 'bf16', 'router', 'router', [c.n_routed_experts, D]);
      yield leaf('mlp.gate.e_score_correction_bias', 'f32', 'router_bias', 'bias', [c.n_routed_experts]);
      const F = c.moe_intermediate_size;
      yield { role: 'routed_expert', layer: i, count: c.n_routed_experts, module: `${p}mlp.experts`, leaves: (e) => ffn(`${p}mlp.experts.${e}.`, F, D, 'routed_expert', i, e) };
      if (c.n_shared_experts > 0) {
        const shared = ffn(p + 'mlp.shared_experts.', d.sharedIntermediate, D, 'shared_expert', i);
        yield { role: 'shared_expert', layer: i, count: 1, module: `${p}mlp.shared_experts`, leaves: () => shared };
      }
    } else {
      for (const s of ffn(p + 'mlp.', c.intermediate_size, D, 'dense_mlp', i)) yield one(s);
    }
  }
  yield one({ name: 'model.norm.weight', kind: 'bf16', role: 'norm', slot: 'norm', shape: [D], layer: -1 });
  yield one({ name: 'lm_head.weight', kind: 'bf16', role: 'lm_head', slot: 'lmHead', shape: [c.vocab_size, D], layer: -1 });
}

function ffn(prefix: string, inter: number, D: number, role: WeightRole, layer: number, expert?: number): WeightSpec[] {
  const e = expert === undefined ? {} : { expert };
  return [
    { name: prefix + 'gate_proj.weight', kind: 'linear', role, slot: 'gate', shape: [inter, D], layer, ...e },
    { name: prefix + 'up_proj.weight', kind: 'linear', role, slot: 'up', shape: [inter, D], layer, ...e },
    { name: prefix + 'down_proj.weight', kind: 'linear', role, slot: 'down', shape: [D, inter], layer, ...e },
  ];
}

/** Every leaf the forward pass reads, in load order, lazily. */
export function* weightSpecs(c: ModelConfig): Generator<WeightSpec> {
  for (const g of weightGroups(c)) for (let i = 0; i < g.count; i++) yield* g.leaves(i);
}

/** Every leaf as an array (toy-sized configs; Kimi K2 has ~70k). Scale tensors are implied by 'linear' entries. */
export function weightTable(c: ModelConfig): WeightSpec[] {
  return [...weightSpecs(c)];
}

/** A linear leaf's module name: the leaf name without `.weight` (`<m>` in the stored tensor names). */
export function moduleName(spec: WeightSpec): string {
  return spec.name.endsWith('.weight') ? spec.name.slice(0, -'.weight'.length) : spec.name;
}

/**
 * The format a leaf has by the config alone (no weights): FP8 under an fp8 quantization_config; INT4 for the
 * linears a compressed-tensors config targets and does not ignore (docs/model.md §13: `re:` patterns match like Python's
 * re.match, anchored at the start; other entries match the full module name; the class target "Linear" matches
 * every linear; lm_head, embeddings, norms and the router are never quantised); else BF16 (F32 router bias).
 */
export function configFormat(c: ModelConfig, spec: WeightSpec): LeafFormat {
  if (spec.kind !== 'linear') return spec.kind;
  const q = c.quantization_config;
  if (!q) return 'bf16';
  if (q.quant_method === 'fp8') return 'fp8';
  const m = moduleName(spec);
  const names = c.derived.tensorPrefix ? [m, c.derived.tensorPrefix + m] : [m];
  const hit = (pats: string[], cls: boolean): boolean => pats.some((p) => (cls && p === 'Linear') || names.some((n) => matchModule(p, n)));
  return hit(q.targets, true) && !hit(q.ignore, false) ? 'int4' : 'bf16';
}

const patternCache = new Map<string, RegExp>();

/** compressed-tensors' match: `re:PATTERN` with Python re.match semantics (anchored at the start), else equality. */
export function matchModule(pattern: string, name: string): boolean {
  if (!pattern.startsWith('re:')) return pattern === name;
  let re = patternCache.get(pattern);
  if (!re) patternCache.set(pattern, (re = new RegExp('^(?:' + pattern.slice(3) + ')')));
  return re.test(name);
}

/** A tensor as it is stored. */
export interface StoredTensorSpec {
  name: string;
  dtype: Dtype;
  shape: number[];
  layer: number;
  /** 'scale' for `*.weight_scale_inv` / `*.weight_scale`, 'shape' for `*.weight_shape`, else the leaf's kind. */
  role: WeightKind | 'scale' | 'shape';
  /** The leaf it belongs to, and that leaf's format. */
  leaf: WeightSpec;
  format: LeafFormat;
  /** Parameters it holds (out x in for a weight or packed weight; 0 for scales and shapes). */
  params: number;
}

/** Shape of the `weight_scale_inv` of a [rows, cols] FP8 weight. */
export function scaleShape(rows: number, cols: number, block: [number, number] = [128, 128]): [number, number] {
  return [Math.ceil(rows / block[0]), Math.ceil(cols / block[1])];
}

/** Shapes of an INT4 leaf [rows, cols]: packed I32 [rows, ⌈cols/8⌉], group scales [rows, ⌈cols/G⌉]. */
export function int4Shapes(rows: number, cols: number, groupSize = 32): { packed: [number, number]; scale: [number, number] } {
  return { packed: [rows, Math.ceil(cols / 8)], scale: [rows, Math.ceil(cols / groupSize)] };
}

/** The stored tensors of one leaf in `format`, weight first. */
export function storedParts(c: ModelConfig, spec: WeightSpec, format: LeafFormat): StoredTensorSpec[] {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const base = { layer: spec.layer, leaf: spec, format };
  if (format === 'int4') {
    const m = moduleName(spec);
    const [rows, cols] = spec.shape as [number, number];
    const s = int4Shapes(rows, cols, c.derived.int4GroupSize);
    return [
      { ...base, name: m + '.weight_packed', dtype: 'I32', shape: s.packed, role: 'linear', params: n },
      { ...base, name: m + '.weight_scale', dtype: 'BF16', shape: s.scale, role: 'scale', params: 0 },
      { ...base, name: m + '.weight_shape', dtype: 'I32', shape: [2], role: 'shape', params: 0 },
    ];
  }
  if (format === 'fp8') {
    const [rows, cols] = spec.shape as [number, number];
    return [
      { ...base, name: spec.name, dtype: 'F8_E4M3', shape: spec.shape, role: spec.kind, params: n },
      { ...base, name: spec.name + '_scale_inv', dtype: 'F32', shape: scaleShape(rows, cols, c.derived.blockSize), role: 'scale', params: 0 },
    ];
  }
  return [{ ...base, name: spec.name, dtype: format === 'f32' ? 'F32' : 'BF16', shape: spec.shape, role: spec.kind, params: n }];
}

/** Every tensor a checkpoint of this config holds (formats by the config), in load order, lazily. */
export function* iterStoredTensors(c: ModelConfig): Generator<StoredTensorSpec> {
  for (const spec of weightSpecs(c)) yield* storedParts(c, spec, configFormat(c, spec));
}

/** Every tensor a checkpoint of this config holds, in load order, each weight followed by its scale (and shape). */
export function storedTensors(c: ModelConfig): StoredTensorSpec[] {
  return [...iterStoredTensors(c)];
}

/** A leaf of the tree with the tensors that hold it in this checkpoint. */
export interface CheckedTensor {
  spec: WeightSpec;
  /** The stored format (what the checkpoint holds, not what the config suggests). */
  format: LeafFormat;
  /** `<m>.weight` (FP8, BF16, F32) or `<m>.weight_packed` (INT4, I32). */
  weight: TensorInfo;
  /** FP8: the F32 `weight_scale_inv` blocks. INT4: the `weight_scale` groups (BF16, or F16 / F32). */
  scale?: TensorInfo;
  /** INT4: `weight_shape` (I32 or I64 [2]; its values are checked when the leaf is read). */
  shape?: TensorInfo;
}

/** Names of the stored tensors of a checked leaf. */
export function checkedParts(t: CheckedTensor): TensorInfo[] {
  return [t.weight, ...(t.scale ? [t.scale] : []), ...(t.shape ? [t.shape] : [])];
}

/** Bytes stored for a checked leaf (weight, scales, INT4 weight_shape): what loading it reads. */
export function storedBytes(t: CheckedTensor): number {
  return checkedParts(t).reduce((n, p) => n + p.byteLength, 0);
}

/** Tensors of MTP layers (model.layers.{>= L}) are ignored, as the official and HF loaders do. */
export function isIgnoredTensor(name: string, c: ModelConfig): boolean {
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return m !== null && Number(m[1]) >= c.num_hidden_layers;
}

/** INT4 companions compressed-tensors writes for schemes webmoe refuses (docs/model.md §13: symmetric, no g_idx). */
const REFUSED_INT4_PARTS = ['.weight_zero_point', '.weight_g_idx'] as const;

/**
 * Checks every leaf of the tree against the headers: presence, stored format, dtype, shape, and the companions
 * of each format (FP8 block scales; INT4 group scales and weight_shape). Errors name the tensor and the expected
 * and found shape or dtype. Returns the leaves with their tensors, and the names present in the file that
 * nothing uses (MTP layers and extras) for `inspect`. `tensors` is keyed by logical name (prefix stripped).
 */
export function checkWeights(c: ModelConfig, tensors: Map<string, TensorInfo>, file?: string): { checked: CheckedTensor[]; ignored: string[]; unexpected: string[] } {
  const used = new Set<string>();
  const checked: CheckedTensor[] = [];
  for (const spec of weightSpecs(c)) {
    const t = spec.kind === 'linear' ? checkLinear(c, spec, tensors, file) : checkPlain(spec, tensors, file);
    for (const part of checkedParts(t)) used.add(logicalName(part, c));
    checked.push(t);
  }
  const ignored: string[] = [];
  const unexpected: string[] = [];
  for (const name of tensors.keys()) {
    if (used.has(name)) continue;
    (isIgnoredTensor(name, c) ? ignored : unexpected).push(name);
  }
  return { checked, ignored, unexpected };
}

/** A tensor's key in the checkpoint's map (its stored name without the K2.5 prefix). */
function logicalName(t: TensorInfo, c: ModelConfig): string {
  const p = c.derived.tensorPrefix;
  return p && t.name.startsWith(p) ? t.name.slice(p.length) : t.name;
}

function checkPlain(spec: WeightSpec, tensors: Map<string, TensorInfo>, file?: string): CheckedTensor {
  const weight = tensors.get(spec.name);
  if (!weight) throw new MissingTensorError(spec.name, file);
  const format: LeafFormat = spec.kind === 'f32' ? 'f32' : 'bf16';
  expectTensor(weight, [format === 'f32' ? 'F32' : 'BF16'], spec.shape);
  return { spec, format, weight };
}

/** One linear leaf: INT4 when `<m>.weight_packed` is stored, else `<m>.weight` as its dtype says. */
function checkLinear(c: ModelConfig, spec: WeightSpec, tensors: Map<string, TensorInfo>, file?: string): CheckedTensor {
  const m = moduleName(spec);
  const [rows, cols] = spec.shape as [number, number];
  const q = c.quantization_config;
  for (const suffix of REFUSED_INT4_PARTS) {
    const t = tensors.get(m + suffix);
    if (t) throw new FormatError(`${suffix.slice(1)} is stored: only symmetric INT4 without activation ordering is supported (docs/model.md §13)`, t.source.name, t.name);
  }
  const packed = tensors.get(m + '.weight_packed');
  if (packed) {
    const plain = tensors.get(spec.name);
    if (plain) throw new FormatError(`both '${plain.name}' and '${packed.name}' are stored: a linear is either INT4 or not`, packed.source.name, packed.name);
    if (q?.quant_method !== 'compressed-tensors') {
      throw new FormatError(
        `INT4 weight_packed needs a compressed-tensors pack-quantized quantization_config (found ${q ? JSON.stringify(q.quant_method) : 'none'}): the group size comes from it`,
        packed.source.name,
        packed.name,
      );
    }
    const s = int4Shapes(rows, cols, q.group_size);
    expectTensor(packed, ['I32'], s.packed);
    const scale = tensors.get(m + '.weight_scale');
    if (!scale) throw new MissingTensorError(m + '.weight_scale', file);
    expectTensor(scale, ['BF16', 'F16', 'F32'], s.scale);
    const shape = tensors.get(m + '.weight_shape');
    if (!shape) throw new MissingTensorError(m + '.weight_shape', file);
    expectTensor(shape, ['I32', 'I64'], [2]);
    return { spec, format: 'int4', weight: packed, scale, shape };
  }
  const weight = tensors.get(spec.name);
  if (!weight) throw new MissingTensorError(configFormat(c, spec) === 'int4' ? m + '.weight_packed' : spec.name, file);
  if (q?.quant_method === 'fp8') {
    expectTensor(weight, ['F8_E4M3'], spec.shape);
    const sname = spec.name + '_scale_inv';
    const scale = tensors.get(sname);
    if (!scale) throw new MissingTensorError(sname, file);
    expectTensor(scale, ['F32'], scaleShape(rows, cols, c.derived.blockSize));
    return { spec, format: 'fp8', weight, scale };
  }
  // no quantization_config, or compressed-tensors (whose ignored linears are BF16): BF16 as stored
  expectTensor(weight, ['BF16'], spec.shape);
  return { spec, format: 'bf16', weight };
}

function expectTensor(t: TensorInfo, dtypes: Dtype[], shape: number[]): void {
  if (!dtypes.includes(t.dtype)) {
    throw new ShapeError(`tensor '${t.name}' (${t.source.name}): expected dtype ${dtypes.join(' or ')}, found ${t.dtype}`, t.name, dtypes, t.dtype);
  }
  if (t.shape.length !== shape.length || t.shape.some((v, i) => v !== shape[i])) {
    throw new ShapeError(`tensor '${t.name}' (${t.source.name}): expected shape [${shape.join(', ')}], found [${t.shape.join(', ')}]`, t.name, shape, t.shape);
  }
}
