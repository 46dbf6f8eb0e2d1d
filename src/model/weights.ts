/**
 * The one table from HF tensor name to role, dtype and shape (spec §2.3), as functions of the config, and the
 * check of a checkpoint's headers against it (run before any GPU memory is allocated).
 *
 * Legend: D hidden, H heads, Dq = Dn + Dr, Rq q_lora_rank, Rkv kv_lora_rank, Dv v head dim, I dense intermediate,
 * Fm expert intermediate, S shared experts, E routed experts, V vocab.
 */
import { MissingTensorError, ShapeError } from '../errors.js';
import type { Dtype, TensorInfo } from '../format/safetensors.js';
import type { ModelConfig } from './config.js';

/** 'linear': FP8 + weight_scale_inv in FP8 checkpoints, BF16 otherwise. 'bf16' / 'f32': stored as such. */
export type WeightKind = 'linear' | 'bf16' | 'f32';

export interface WeightSpec {
  name: string;
  kind: WeightKind;
  /** [out, in] for linear weights. */
  shape: number[];
  /** -1 for global tensors. */
  layer: number;
}

/** Every tensor the forward pass reads, in load order. Scale tensors are implied by 'linear' entries. */
export function weightTable(c: ModelConfig): WeightSpec[] {
  const D = c.hidden_size;
  const d = c.derived;
  const out: WeightSpec[] = [{ name: 'model.embed_tokens.weight', kind: 'bf16', shape: [c.vocab_size, D], layer: -1 }];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    const add = (name: string, kind: WeightKind, shape: number[]) => out.push({ name: p + name, kind, shape, layer: i });
    add('input_layernorm.weight', 'bf16', [D]);
    if (c.q_lora_rank === null) {
      add('self_attn.q_proj.weight', 'linear', [d.qWidth, D]);
    } else {
      add('self_attn.q_a_proj.weight', 'linear', [c.q_lora_rank, D]);
      add('self_attn.q_a_layernorm.weight', 'bf16', [c.q_lora_rank]);
      add('self_attn.q_b_proj.weight', 'linear', [d.qWidth, c.q_lora_rank]);
    }
    add('self_attn.kv_a_proj_with_mqa.weight', 'linear', [d.kvAWidth, D]);
    add('self_attn.kv_a_layernorm.weight', 'bf16', [c.kv_lora_rank]);
    add('self_attn.kv_b_proj.weight', 'linear', [d.kvBWidth, c.kv_lora_rank]);
    add('self_attn.o_proj.weight', 'linear', [D, d.oWidth]);
    add('post_attention_layernorm.weight', 'bf16', [D]);
    if (d.moeLayers[i]) {
      add('mlp.gate.weight', 'bf16', [c.n_routed_experts, D]);
      add('mlp.gate.e_score_correction_bias', 'f32', [c.n_routed_experts]);
      for (let e = 0; e < c.n_routed_experts; e++) addFfn(add, `mlp.experts.${e}.`, c.moe_intermediate_size, D);
      if (c.n_shared_experts > 0) addFfn(add, 'mlp.shared_experts.', d.sharedIntermediate, D);
    } else {
      addFfn(add, 'mlp.', c.intermediate_size, D);
    }
  }
  out.push({ name: 'model.norm.weight', kind: 'bf16', shape: [D], layer: -1 });
  out.push({ name: 'lm_head.weight', kind: 'bf16', shape: [c.vocab_size, D], layer: -1 });
  return out;
}

function addFfn(add: (name: string, kind: WeightKind, shape: number[]) => void, prefix: string, inter: number, D: number): void {
  add(prefix + 'gate_proj.weight', 'linear', [inter, D]);
  add(prefix + 'up_proj.weight', 'linear', [inter, D]);
  add(prefix + 'down_proj.weight', 'linear', [D, inter]);
}

/** A tensor as it is stored: the table's entries with their dtype, plus the scale of each FP8 linear weight. */
export interface StoredTensorSpec {
  name: string;
  dtype: Dtype;
  shape: number[];
  layer: number;
  /** 'scale' for `*.weight_scale_inv`, else the kind of the table entry. */
  role: WeightKind | 'scale';
}

/** The dtype a table entry is stored in. */
export function storedDtype(c: ModelConfig, kind: WeightKind): Dtype {
  return kind === 'f32' ? 'F32' : kind === 'bf16' ? 'BF16' : c.quantization_config ? 'F8_E4M3' : 'BF16';
}

/** Every tensor a checkpoint of this config holds, in load order, each FP8 weight followed by its scale. */
export function storedTensors(c: ModelConfig): StoredTensorSpec[] {
  const out: StoredTensorSpec[] = [];
  for (const w of weightTable(c)) {
    out.push({ name: w.name, dtype: storedDtype(c, w.kind), shape: w.shape, layer: w.layer, role: w.kind });
    if (w.kind === 'linear' && c.quantization_config) {
      out.push({ name: w.name + '_scale_inv', dtype: 'F32', shape: scaleShape(w.shape[0]!, w.shape[1]!, c.derived.blockSize), layer: w.layer, role: 'scale' });
    }
  }
  return out;
}

/** Shape of the `weight_scale_inv` of a [rows, cols] FP8 weight. */
export function scaleShape(rows: number, cols: number, block: [number, number] = [128, 128]): [number, number] {
  return [Math.ceil(rows / block[0]), Math.ceil(cols / block[1])];
}

export interface CheckedTensor {
  spec: WeightSpec;
  weight: TensorInfo;
  /** The F32 block scales, for FP8 linear weights. */
  scale?: TensorInfo;
}

/** Tensors of MTP layers (model.layers.{>= L}) are ignored, as the official and HF loaders do. */
export function isIgnoredTensor(name: string, c: ModelConfig): boolean {
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return m !== null && Number(m[1]) >= c.num_hidden_layers;
}

/**
 * Checks every tensor the table requires against the headers: presence, dtype, shape, and the scale of each FP8
 * weight. Errors name the tensor and the expected and found shape or dtype. Returns the table entries with their
 * tensors, and the names present in the file that nothing uses (MTP layers and extras) for `inspect`.
 */
export function checkWeights(c: ModelConfig, tensors: Map<string, TensorInfo>, file?: string): { checked: CheckedTensor[]; ignored: string[]; unexpected: string[] } {
  const table = weightTable(c);
  const used = new Set<string>();
  const checked: CheckedTensor[] = [];
  const fp8 = c.quantization_config !== null;
  for (const spec of table) {
    const weight = tensors.get(spec.name);
    if (!weight) throw new MissingTensorError(spec.name, file);
    used.add(spec.name);
    expectTensor(weight, [storedDtype(c, spec.kind)], spec.shape);
    let scale: TensorInfo | undefined;
    if (spec.kind === 'linear' && fp8) {
      const sname = spec.name + '_scale_inv';
      scale = tensors.get(sname);
      if (!scale) throw new MissingTensorError(sname, file);
      used.add(sname);
      expectTensor(scale, ['F32'], scaleShape(spec.shape[0]!, spec.shape[1]!, c.derived.blockSize));
    }
    checked.push({ spec, weight, scale });
  }
  const ignored: string[] = [];
  const unexpected: string[] = [];
  for (const name of tensors.keys()) {
    if (used.has(name)) continue;
    (isIgnoredTensor(name, c) ? ignored : unexpected).push(name);
  }
  return { checked, ignored, unexpected };
}

function expectTensor(t: TensorInfo, dtypes: Dtype[], shape: number[]): void {
  if (!dtypes.includes(t.dtype)) {
    throw new ShapeError(`tensor '${t.name}' (${t.source.name}): expected dtype ${dtypes.join(' or ')}, found ${t.dtype}`, t.name, dtypes, t.dtype);
  }
  if (t.shape.length !== shape.length || t.shape.some((v, i) => v !== shape[i])) {
    throw new ShapeError(`tensor '${t.name}' (${t.source.name}): expected shape [${shape.join(', ')}], found [${t.shape.join(', ')}]`, t.name, shape, t.shape);
  }
}
