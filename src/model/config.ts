/**
 * config.json of an HF `DeepseekV3ForCausalLM` checkpoint (DeepSeek-V3, Kimi K2) as a typed, validated object.
 * Field names are the HF keys (docs/model.md §1.1); values the forward pass needs are derived once in `derived`.
 * Every unsupported or inconsistent value fails here, naming the field, so nothing downstream has to guess.
 *
 * Legend: D hidden, H heads, Dn/Dr/Dv nope/rope/v head dims, Rq q_lora_rank, R kv_lora_rank,
 * E routed experts, K experts per token, G groups, TG groups kept.
 */
import { ConfigError } from '../errors.js';

export interface RopeScaling {
  type: 'yarn';
  factor: number;
  original_max_position_embeddings: number;
  beta_fast: number;
  beta_slow: number;
  mscale: number;
  mscale_all_dim: number;
}

/** DeepSeek / Kimi K2-Instruct block FP8 (docs/model.md §1.2). */
export interface Fp8QuantizationConfig {
  quant_method: 'fp8';
  fmt: 'e4m3';
  activation_scheme: string;
  weight_block_size: [number, number];
}

/**
 * compressed-tensors "pack-quantized" W4A16 (Kimi K2-Thinking / K2.5, docs/model.md §13): symmetric INT4 weights in groups
 * of `group_size` along the input dimension, activations unquantised. `targets` / `ignore` say which linears a
 * config without weights assumes INT4 (`re:` entries match like Python's re.match, others by full name; the class
 * target "Linear" matches every linear); a checkpoint's own tensors decide per tensor (weights.ts).
 */
export interface Int4QuantizationConfig {
  quant_method: 'compressed-tensors';
  format: 'pack-quantized';
  num_bits: 4;
  group_size: number;
  symmetric: true;
  strategy: 'group';
  type: 'int';
  targets: string[];
  ignore: string[];
}

export type QuantizationConfig = Fp8QuantizationConfig | Int4QuantizationConfig;

export interface ModelConfig {
  model_type: 'deepseek_v3' | 'kimi_k2';
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  q_lora_rank: number | null;
  kv_lora_rank: number;
  qk_nope_head_dim: number;
  qk_rope_head_dim: number;
  v_head_dim: number;
  intermediate_size: number;
  moe_intermediate_size: number;
  n_routed_experts: number;
  num_experts_per_tok: number;
  n_shared_experts: number;
  n_group: number;
  topk_group: number;
  topk_method: 'noaux_tc';
  scoring_func: 'sigmoid';
  norm_topk_prob: boolean;
  routed_scaling_factor: number;
  first_k_dense_replace: number;
  moe_layer_freq: number;
  hidden_act: 'silu';
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: RopeScaling | null;
  max_position_embeddings: number;
  tie_word_embeddings: false;
  bos_token_id: number | null;
  eos_token_id: number[];
  /** null: linear weights are BF16 (no quantization_config in the file); 'fp8' block FP8; 'compressed-tensors' INT4. */
  quantization_config: QuantizationConfig | null;
  derived: DerivedConfig;
}

export interface DerivedConfig {
  /** Dq = Dn + Dr: per-head query/key width. */
  qkHeadDim: number;
  /** R + Dr: rows of kv_a_proj_with_mqa, and the latent-cache width per token per layer. */
  kvAWidth: number;
  /** H * Dq: rows of q_b_proj / q_proj. */
  qWidth: number;
  /** H * (Dn + Dv): rows of kv_b_proj. */
  kvBWidth: number;
  /** H * Dv: columns of o_proj. */
  oWidth: number;
  /** F * S: width of the fused shared expert. */
  sharedIntermediate: number;
  /** E / G. */
  expertsPerGroup: number;
  /** Dq^-0.5 * m^2, with the YaRN mscale correction m (docs/model.md §4.4). */
  softmaxScale: number;
  /** [128, 128] for FP8 checkpoints. */
  blockSize: [number, number];
  /** INT4 group size along the input dimension (compressed-tensors configs; 32 otherwise). */
  int4GroupSize: number;
  /** Kimi K2.5 wrapper (text model under `text_config`): tensor names carry the `language_model.` prefix. */
  tensorPrefix: '' | 'language_model.';
  /** true for layer i when it is a MoE layer (docs/model.md §6.5, moe_layer_freq as in vLLM). */
  moeLayers: boolean[];
}

type Json = Record<string, unknown>;

/**
 * Sanity bounds, far above any real model (Kimi K2: 61 layers, 384 experts, widths <= 163840), so that a corrupt
 * config cannot make the weight table (L x E entries) or a tensor size explode.
 */
const MAX_DIM = 2 ** 24;
const MAX_LAYERS = 4096;
const MAX_EXPERTS = 65536;
const MAX_LAYER_EXPERTS = 2 ** 20;

/** Parses and validates a config.json object. `file` names the source in error messages. */
export function parseConfig(json: unknown, file?: string): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError('config.json must be a JSON object', undefined, json, file);
  }
  const { obj, wrapped } = unwrapTextConfig(json as Json, file);
  const r = new FieldReader(obj, file);

  const model_type = r.oneOf('model_type', ['deepseek_v3', 'kimi_k2'] as const, wrapped ? 'kimi_k2' : undefined);
  const archs = obj.architectures;
  if (archs !== undefined && !(Array.isArray(archs) && archs.includes('DeepseekV3ForCausalLM'))) {
    throw new ConfigError(`unsupported architectures ${JSON.stringify(archs)} (need "DeepseekV3ForCausalLM")`, 'architectures', archs, file);
  }

  // before rope_theta is read: HF v5 may keep rope_theta inside rope_parameters
  const rope_scaling = parseRopeScaling(obj, file);
  const hidden_size = r.int('hidden_size', 1);
  const num_attention_heads = r.int('num_attention_heads', 1);
  const cfg: Omit<ModelConfig, 'derived'> = {
    model_type,
    vocab_size: r.int('vocab_size', 1),
    hidden_size,
    num_hidden_layers: r.int('num_hidden_layers', 1, undefined, MAX_LAYERS),
    num_attention_heads,
    num_key_value_heads: r.int('num_key_value_heads', 1, num_attention_heads),
    q_lora_rank: r.nullableInt('q_lora_rank', 1),
    kv_lora_rank: r.int('kv_lora_rank', 1),
    qk_nope_head_dim: r.int('qk_nope_head_dim', 1),
    qk_rope_head_dim: r.int('qk_rope_head_dim', 2),
    v_head_dim: r.int('v_head_dim', 1),
    intermediate_size: r.int('intermediate_size', 1),
    moe_intermediate_size: r.int('moe_intermediate_size', 1),
    n_routed_experts: r.int('n_routed_experts', 1, undefined, MAX_EXPERTS),
    num_experts_per_tok: r.int('num_experts_per_tok', 1),
    n_shared_experts: r.int('n_shared_experts', 0, 0),
    n_group: r.int('n_group', 1, 1),
    topk_group: r.int('topk_group', 1, 1),
    topk_method: r.oneOf('topk_method', ['noaux_tc'] as const, 'noaux_tc'),
    scoring_func: r.oneOf('scoring_func', ['sigmoid'] as const, 'sigmoid'),
    norm_topk_prob: r.bool('norm_topk_prob', true),
    routed_scaling_factor: r.num('routed_scaling_factor', 1.0),
    first_k_dense_replace: r.int('first_k_dense_replace', 0, 0),
    moe_layer_freq: r.int('moe_layer_freq', 1, 1),
    hidden_act: r.oneOf('hidden_act', ['silu'] as const, 'silu'),
    rms_norm_eps: r.num('rms_norm_eps', 1e-6),
    rope_theta: r.num('rope_theta', 10000),
    rope_scaling,
    max_position_embeddings: r.int('max_position_embeddings', 1, undefined, 2 ** 31 - 1),
    tie_word_embeddings: r.falseOnly('tie_word_embeddings'),
    bos_token_id: r.nullableInt('bos_token_id', 0),
    eos_token_id: r.intList('eos_token_id'),
    quantization_config: parseQuantization(obj, file),
  };
  validateShapeRules(cfg, file);
  return { ...cfg, derived: deriveConfig(cfg, wrapped) };
}

/**
 * Kimi K2.5 (docs/model.md §13) wraps the DeepseekV3 config in `text_config` (architectures
 * ["KimiK25ForConditionalGeneration"], model_type "kimi_k25", a `vision_config` the text runtime skips): the text
 * config's fields are read there first, then at the top level. HF v5 nests other text models the same way.
 */
function unwrapTextConfig(top: Json, file?: string): { obj: Json; wrapped: boolean } {
  const text = top.text_config;
  const archs = top.architectures;
  const k25 = Array.isArray(archs) && archs.includes('KimiK25ForConditionalGeneration');
  if (text === undefined || text === null || top.hidden_size !== undefined) {
    if (k25) throw new ConfigError('KimiK25ForConditionalGeneration needs the language model config under text_config', 'text_config', text, file);
    return { obj: top, wrapped: false };
  }
  if (typeof text !== 'object' || Array.isArray(text)) throw new ConfigError('text_config must be an object', 'text_config', text, file);
  const { text_config: _t, vision_config: _v, architectures: _a, model_type: _m, ...rest } = top;
  void _t, void _v, void _m;
  const obj: Json = { ...rest, ...(text as Json) };
  if ((text as Json).architectures === undefined && !k25 && _a !== undefined) obj.architectures = _a;
  return { obj, wrapped: k25 };
}

/** Derived values, computed once (docs/model.md §4.4, §6). `wrapped`: a Kimi K2.5 wrapper config (prefixed tensor names). */
export function deriveConfig(c: Omit<ModelConfig, 'derived'>, wrapped = false): DerivedConfig {
  const qkHeadDim = c.qk_nope_head_dim + c.qk_rope_head_dim;
  let m = 1;
  const rs = c.rope_scaling;
  if (rs && rs.factor > 1 && rs.mscale_all_dim) m = 0.1 * rs.mscale_all_dim * Math.log(rs.factor) + 1;
  const moeLayers: boolean[] = [];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    moeLayers.push(i >= c.first_k_dense_replace && i % c.moe_layer_freq === 0);
  }
  return {
    qkHeadDim,
    kvAWidth: c.kv_lora_rank + c.qk_rope_head_dim,
    qWidth: c.num_attention_heads * qkHeadDim,
    kvBWidth: c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim),
    oWidth: c.num_attention_heads * c.v_head_dim,
    sharedIntermediate: c.moe_intermediate_size * c.n_shared_experts,
    expertsPerGroup: c.n_routed_experts / c.n_group,
    softmaxScale: Math.pow(qkHeadDim, -0.5) * m * m,
    blockSize: c.quantization_config?.quant_method === 'fp8' ? c.quantization_config.weight_block_size : [128, 128],
    int4GroupSize: c.quantization_config?.quant_method === 'compressed-tensors' ? c.quantization_config.group_size : 32,
    tensorPrefix: wrapped ? 'language_model.' : '',
    moeLayers,
  };
}

/** The shape rules of docs/model.md §9.3 that the forward pass relies on. */
function validateShapeRules(c: Omit<ModelConfig, 'derived'>, file?: string): void {
  const fail = (field: string, value: unknown, why: string): never => {
    throw new ConfigError(`${field} = ${JSON.stringify(value)}: ${why}`, field, value, file);
  };
  if (c.num_hidden_layers * c.n_routed_experts > MAX_LAYER_EXPERTS) {
    fail('n_routed_experts', c.n_routed_experts, `num_hidden_layers x n_routed_experts must be <= ${MAX_LAYER_EXPERTS}`);
  }
  if (c.num_key_value_heads !== c.num_attention_heads) {
    fail('num_key_value_heads', c.num_key_value_heads, `must equal num_attention_heads (${c.num_attention_heads}) for MLA`);
  }
  if (c.qk_rope_head_dim % 2 !== 0) fail('qk_rope_head_dim', c.qk_rope_head_dim, 'must be even (RoPE rotates pairs)');
  if (c.n_routed_experts % c.n_group !== 0) fail('n_group', c.n_group, `must divide n_routed_experts (${c.n_routed_experts})`);
  const perGroup = c.n_routed_experts / c.n_group;
  if (c.n_group > 1 && perGroup < 2) fail('n_group', c.n_group, 'each group needs at least 2 experts (group score = top-2 sum)');
  if (c.topk_group > c.n_group) fail('topk_group', c.topk_group, `must be <= n_group (${c.n_group})`);
  if (c.num_experts_per_tok > c.topk_group * perGroup) {
    fail('num_experts_per_tok', c.num_experts_per_tok, `must be <= topk_group * n_routed_experts / n_group (${c.topk_group * perGroup})`);
  }
  if (c.first_k_dense_replace > c.num_hidden_layers) {
    fail('first_k_dense_replace', c.first_k_dense_replace, `must be <= num_hidden_layers (${c.num_hidden_layers})`);
  }
  if (!(c.rms_norm_eps > 0)) fail('rms_norm_eps', c.rms_norm_eps, 'must be > 0');
  if (!(c.rope_theta > 1)) fail('rope_theta', c.rope_theta, 'must be > 1');
  if (!(c.routed_scaling_factor > 0)) fail('routed_scaling_factor', c.routed_scaling_factor, 'must be > 0');
  for (const id of c.eos_token_id) if (id >= c.vocab_size) fail('eos_token_id', id, `must be < vocab_size (${c.vocab_size})`);
  const rs = c.rope_scaling;
  if (rs && rs.factor > 1 && Math.abs(c.max_position_embeddings - rs.factor * rs.original_max_position_embeddings) > 0.5) {
    fail(
      'max_position_embeddings',
      c.max_position_embeddings,
      `must equal rope_scaling.factor * original_max_position_embeddings (${rs.factor * rs.original_max_position_embeddings}); some HF versions recompute factor from this ratio (docs/model.md §5.4)`,
    );
  }
  if (rs && rs.mscale !== rs.mscale_all_dim) {
    fail('rope_scaling.mscale', rs.mscale, `must equal mscale_all_dim (${rs.mscale_all_dim}); HF and the official code disagree otherwise (docs/model.md §5.2)`);
  }
}

function parseRopeScaling(obj: Json, file?: string): RopeScaling | null {
  // HF v5 renames rope_scaling to rope_parameters (and may put rope_theta inside it).
  const raw = obj.rope_scaling ?? obj.rope_parameters ?? null;
  if (raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('rope_scaling must be an object or null', 'rope_scaling', raw, file);
  const o = raw as Json;
  if (typeof o.rope_theta === 'number' && obj.rope_theta === undefined) obj.rope_theta = o.rope_theta;
  const type = o.type ?? o.rope_type;
  if (type === 'default' || type === undefined) return null;
  if (type !== 'yarn') throw new ConfigError(`rope_scaling.type = ${JSON.stringify(type)} is not supported (only "yarn")`, 'rope_scaling.type', type, file);
  const r = new FieldReader(o, file, 'rope_scaling.');
  const factor = r.num('factor');
  if (!(factor >= 1)) throw new ConfigError(`rope_scaling.factor = ${factor}: must be >= 1`, 'rope_scaling.factor', factor, file);
  return {
    type: 'yarn',
    factor,
    original_max_position_embeddings: r.int('original_max_position_embeddings', 1),
    beta_fast: r.num('beta_fast', 32),
    beta_slow: r.num('beta_slow', 1),
    mscale: r.num('mscale', 1),
    mscale_all_dim: r.num('mscale_all_dim', 0),
  };
}

function parseQuantization(obj: Json, file?: string): QuantizationConfig | null {
  const raw = obj.quantization_config;
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('quantization_config must be an object', 'quantization_config', raw, file);
  const o = raw as Json;
  const r = new FieldReader(o, file, 'quantization_config.');
  const quant_method = r.oneOf('quant_method', ['fp8', 'compressed-tensors'] as const);
  if (quant_method === 'compressed-tensors') return parseCompressedTensors(o, file);
  const fmt = r.oneOf('fmt', ['e4m3'] as const, 'e4m3');
  const bs = o.weight_block_size;
  if (!Array.isArray(bs) || bs.length !== 2 || bs[0] !== 128 || bs[1] !== 128) {
    throw new ConfigError(
      `quantization_config.weight_block_size = ${JSON.stringify(bs)}: only [128, 128] is supported`,
      'quantization_config.weight_block_size',
      bs,
      file,
    );
  }
  if (o.scale_fmt !== undefined && o.scale_fmt !== null) {
    throw new ConfigError(`quantization_config.scale_fmt = ${JSON.stringify(o.scale_fmt)} is not supported`, 'quantization_config.scale_fmt', o.scale_fmt, file);
  }
  // "static" activation scales would come as extra input_scale tensors that the spec does not define
  const activation_scheme = r.oneOf('activation_scheme', ['dynamic'] as const, 'dynamic');
  return { quant_method, fmt, activation_scheme, weight_block_size: [128, 128] };
}

/**
 * compressed-tensors (docs/model.md §13): only the W4A16 "pack-quantized" scheme Kimi ships is accepted: one config group,
 * INT4, symmetric (no zero point), group strategy, static (not dynamic) weights, no activation ordering (g_idx),
 * no activation, output or KV-cache quantisation. Anything else fails naming the field.
 */
function parseCompressedTensors(o: Json, file?: string): Int4QuantizationConfig {
  const q = 'quantization_config.';
  const fail = (field: string, value: unknown, why: string): never => {
    throw new ConfigError(`${q}${field} = ${JSON.stringify(value)}: ${why}`, q + field, value, file);
  };
  if (o.format !== 'pack-quantized') fail('format', o.format, 'only "pack-quantized" (INT4 packed 8 per int32) is supported');
  for (const key of ['kv_cache_scheme', 'sparsity_config', 'transform_config']) {
    const v = o[key];
    if (v !== undefined && v !== null && !(typeof v === 'object' && Object.keys(v).length === 0)) fail(key, v, 'not supported (weights-only INT4 is)');
  }
  const groups = o.config_groups;
  if (typeof groups !== 'object' || groups === null || Array.isArray(groups)) fail('config_groups', groups, 'must be an object with one quantisation group');
  const entries = Object.entries(groups as Json);
  if (entries.length !== 1) fail('config_groups', Object.keys(groups as Json), 'exactly one group is supported');
  const [gname, graw] = entries[0]!;
  const gp = `config_groups.${gname}.`;
  if (typeof graw !== 'object' || graw === null || Array.isArray(graw)) fail(`config_groups.${gname}`, graw, 'must be an object');
  const g = graw as Json;
  for (const key of ['input_activations', 'output_activations']) {
    if (g[key] !== undefined && g[key] !== null) fail(gp + key, g[key], 'activation quantisation is not supported (W4A16: activations stay unquantised)');
  }
  const w = g.weights;
  if (typeof w !== 'object' || w === null || Array.isArray(w)) fail(gp + 'weights', w, 'must be an object');
  const wt = w as Json;
  const wp = gp + 'weights.';
  if (wt.num_bits !== 4) fail(wp + 'num_bits', wt.num_bits, 'only 4-bit weights are supported');
  if ((wt.type ?? 'int') !== 'int') fail(wp + 'type', wt.type, 'only "int" is supported');
  if (wt.symmetric !== true) fail(wp + 'symmetric', wt.symmetric, 'asymmetric INT4 (a zero point) is not supported; only symmetric');
  if ((wt.strategy ?? 'group') !== 'group') fail(wp + 'strategy', wt.strategy, 'only "group" is supported');
  const gs = wt.group_size;
  if (typeof gs !== 'number' || !Number.isInteger(gs) || gs < 8 || gs % 8 !== 0 || gs > 4096) fail(wp + 'group_size', gs, 'must be a multiple of 8 (32 in Kimi checkpoints)');
  if (wt.dynamic !== undefined && wt.dynamic !== false) fail(wp + 'dynamic', wt.dynamic, 'dynamic weight quantisation is not supported');
  if (wt.actorder !== undefined && wt.actorder !== null && wt.actorder !== false) fail(wp + 'actorder', wt.actorder, 'activation ordering (g_idx) is not supported');
  if (wt.block_structure !== undefined && wt.block_structure !== null) fail(wp + 'block_structure', wt.block_structure, 'not supported with the group strategy');
  if (wt.zp_dtype !== undefined && wt.zp_dtype !== null) fail(wp + 'zp_dtype', wt.zp_dtype, 'a zero point is not supported; only symmetric INT4');
  const strings = (field: string, v: unknown, fallback: string[]): string[] => {
    if (v === undefined || v === null) return fallback;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) fail(field, v, 'must be a list of strings');
    return [...(v as string[])];
  };
  const targets = strings(gp + 'targets', g.targets, ['Linear']);
  const ignore = strings('ignore', o.ignore, []);
  for (const pat of [...targets, ...ignore]) {
    if (pat.startsWith('re:')) {
      try {
        new RegExp(pat.slice(3));
      } catch {
        fail(targets.includes(pat) ? gp + 'targets' : 'ignore', pat, 'not a valid regular expression');
      }
    }
  }
  return { quant_method: 'compressed-tensors', format: 'pack-quantized', num_bits: 4, group_size: gs as number, symmetric: true, strategy: 'group', type: 'int', targets, ignore };
}

/** Reads typed fields, failing with the field name and the value found. */
class FieldReader {
  constructor(
    private readonly obj: Json,
    private readonly file: string | undefined,
    private readonly prefix = '',
  ) {}

  private fail(key: string, why: string): never {
    const v = this.obj[key];
    throw new ConfigError(`${this.prefix}${key} = ${JSON.stringify(v)}: ${why}`, this.prefix + key, v, this.file);
  }

  num(key: string, fallback?: number): number {
    const v = this.obj[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(key, 'required number is missing');
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'must be a finite number');
    return v;
  }

  int(key: string, min: number, fallback?: number, max = MAX_DIM): number {
    const v = this.num(key, fallback);
    if (!Number.isInteger(v)) this.fail(key, 'must be an integer');
    if (v < min) this.fail(key, `must be >= ${min}`);
    if (v > max) this.fail(key, `must be <= ${max}`);
    return v;
  }

  nullableInt(key: string, min: number): number | null {
    const v = this.obj[key];
    if (v === null || v === undefined) return null;
    return this.int(key, min);
  }

  intList(key: string): number[] {
    const v = this.obj[key];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const x of list) if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) this.fail(key, 'must be a non-negative integer or a list of them');
    return list as number[];
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.obj[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(key, 'must be true or false');
    return v;
  }

  falseOnly(key: string): false {
    const v = this.obj[key];
    if (v === undefined || v === null || v === false) return false;
    return this.fail(key, 'tied embeddings are not supported by this architecture (lm_head is separate)');
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], fallback?: T): T {
    const v = this.obj[key];
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      this.fail(key, `unsupported; expected ${allowed.map((a) => JSON.stringify(a)).join(' or ')}`);
    }
    return v as T;
  }
}
