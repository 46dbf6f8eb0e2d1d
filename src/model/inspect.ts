/**
 * What `webmoe inspect` reports about a checkpoint (or a bare config.json): parameters, total and active per
 * token; bytes on disk and on the GPU; KV-cache bytes per token with MLA's latent cache versus full K/V.
 *
 * GPU bytes assume what the WebGPU engine holds (docs/architecture.md: weights stay FP8 on the GPU):
 * F8_E4M3 as u8 packed 4 per u32, BF16 kept BF16 (not widened) packed 2 per u32, F32 as f32, INT4 as stored
 * (8 per u32, BF16 group scales; weight_shape not uploaded); each tensor is padded to whole u32 words. Tensors of
 * MTP layers (>= num_hidden_layers) and a K2.5 checkpoint's vision tower are on disk but not uploaded. A config
 * without weights is counted from the weight tree's groups (a layer's experts counted, never expanded), with the
 * formats its quantization_config implies (docs/model.md §13: INT4 for targets not in `ignore`).
 * KV cache: f32, MLA latent = (R + Dr) values per token per layer (c_kv after kv_a_layernorm, k_rope after
 * RoPE, docs/model.md §4.5); full K/V = H * (Dq + Dv) per token per layer (keys Dq = Dn + Dr and values Dv per head).
 *
 * Legend: D hidden, L layers, H heads, Dn/Dr/Dv head dims, R kv_lora_rank, E routed experts, K experts per token.
 */
import type { Dtype } from '../format/safetensors.js';
import { tensorByteLength } from '../format/safetensors.js';
import type { Checkpoint } from './checkpoint.js';
import type { ModelConfig } from './config.js';
import { checkedParts, configFormat, storedParts, weightGroups, type LeafFormat, type WeightRole, type WeightSpec } from './weights.js';

export interface ParamCounts {
  total: number;
  /** Parameters one token's forward pass uses: everything but the routed experts, plus K routed experts per MoE layer. */
  activePerToken: number;
  embedding: number;
  lmHead: number;
  attention: number;
  /** input/post-attention norms and the final norm (q_a/kv_a norms are in `attention`). */
  norms: number;
  denseMlp: number;
  /** Router weight + e_score_correction_bias. */
  router: number;
  routedExperts: number;
  sharedExperts: number;
  /** Parameters of one routed expert (gate + up + down). */
  perExpert: number;
}

export interface GpuBytes {
  /** F8_E4M3 weights, u8 packed in u32. */
  fp8: number;
  /** F32 weight_scale_inv of the FP8 weights. */
  scales: number;
  /** INT4 weights (8 per u32, as stored) with their group scales (BF16 as stored). */
  int4: number;
  /** BF16 tensors kept BF16, packed in u32 (embeddings, lm_head, norms, router; BF16 linear weights). */
  bf16: number;
  /** F32 tensors (router bias). */
  f32: number;
  total: number;
  /** Weight bytes one decoded token reads: one embedding row, K of E routed experts, everything else. */
  readPerToken: number;
}

/** Leaves and their bytes on disk (weights with their scales) per stored format. */
export type FormatBytes = Record<LeafFormat, { leaves: number; params: number; bytes: number }>;

export interface KvCacheBytes {
  layers: number;
  /** (R + Dr) values per token per layer. */
  latentValues: number;
  /** H * (Dq + Dv) values per token per layer. */
  fullValues: number;
  bytesPerValue: number;
  latentBytesPerToken: number;
  fullBytesPerToken: number;
  /** fullBytesPerToken / latentBytesPerToken. */
  ratio: number;
}

export interface TensorGroup {
  /** Name with layer and expert indices folded: model.layers.{1-60}.mlp.experts.{0-383}.gate_proj.weight */
  pattern: string;
  dtype: Dtype;
  shape: number[];
  count: number;
  bytes: number;
}

export interface TensorRow {
  name: string;
  dtype: Dtype;
  shape: number[];
  bytes: number;
  file?: string;
  status: 'used' | 'ignored' | 'unexpected';
}

export interface InspectReport {
  source: string;
  /** 'checkpoint': weights present and validated; 'config': numbers from config.json alone. */
  kind: 'checkpoint' | 'config';
  config: ModelConfig;
  params: ParamCounts;
  bytes: {
    /** Tensor data in the safetensors files (predicted from the config when there are no weights). */
    tensorData: number;
    /** Sizes of the safetensors files (checkpoint only). */
    files?: number;
    gpu: GpuBytes;
    /** Per stored format (a config alone: the formats its quantization_config implies, docs/model.md §13 targets/ignore). */
    byFormat: FormatBytes;
  };
  kvCache: KvCacheBytes;
  tensorGroups: TensorGroup[];
  /** Every tensor of the files (checkpoint only). */
  tensors?: TensorRow[];
  ignored: string[];
  unexpected: string[];
}

/**
 * One stored tensor of the tree, `count` times (the routed experts of a layer are counted, never expanded: a
 * 1 KB config at the layer x expert bound costs nothing to inspect).
 */
interface Part {
  name: string;
  dtype: Dtype;
  shape: number[];
  count: number;
  leaf: WeightSpec;
  format: LeafFormat;
  /** The weight part (not a scale or shape): carries the leaf's parameters. */
  isWeight: boolean;
  /** GPU bytes per instance (weight_shape is not uploaded). */
  gpu: number;
}

/** The stored tensors of a config without weights (formats by its quantization_config), lazily. */
function* configParts(c: ModelConfig): Generator<Part> {
  for (const g of weightGroups(c)) {
    for (const leaf of g.leaves(0)) {
      const format = configFormat(c, leaf);
      for (const [k, t] of storedParts(c, leaf, format).entries()) {
        yield { name: t.name, dtype: t.dtype, shape: t.shape, count: g.count, leaf, format, isWeight: k === 0, gpu: t.role === 'shape' ? 0 : gpuTensorBytes(t.dtype, numel(t.shape)) };
      }
    }
  }
}

/** The stored tensors of an opened checkpoint, as stored. */
function* checkpointParts(ckpt: Checkpoint): Generator<Part> {
  for (const w of ckpt.weights) {
    for (const [k, t] of checkedParts(w).entries()) {
      const isShape = w.format === 'int4' && t === w.shape;
      yield { name: t.name, dtype: t.dtype, shape: t.shape, count: 1, leaf: w.spec, format: w.format, isWeight: k === 0, gpu: isShape ? 0 : gpuTensorBytes(t.dtype, numel(t.shape)) };
    }
  }
}

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

const PARAM_FIELD: Record<WeightRole, keyof ParamCounts | null> = {
  embed: 'embedding', lm_head: 'lmHead', attention: 'attention', norm: 'norms', dense_mlp: 'denseMlp', router: 'router',
  router_bias: 'router', routed_expert: 'routedExperts', shared_expert: 'sharedExperts',
};

/** Parameter counts from the config's weight tree (scales are not parameters). */
export function countParams(c: ModelConfig): ParamCounts {
  const p: ParamCounts = { total: 0, activePerToken: 0, embedding: 0, lmHead: 0, attention: 0, norms: 0, denseMlp: 0, router: 0, routedExperts: 0, sharedExperts: 0, perExpert: 0 };
  for (const g of weightGroups(c)) {
    for (const leaf of g.leaves(0)) {
      const n = numel(leaf.shape) * g.count;
      p.total += n;
      p[PARAM_FIELD[leaf.role]!] += n;
    }
  }
  p.perExpert = 3 * c.moe_intermediate_size * c.hidden_size;
  const moeLayers = c.derived.moeLayers.filter(Boolean).length;
  p.activePerToken = p.total - p.routedExperts + moeLayers * c.num_experts_per_tok * p.perExpert;
  return p;
}

/** Bytes a tensor takes on the GPU: whole u32 words (fp8 4 per word, bf16 2 per word, f32 1, int4 words as stored). */
export function gpuTensorBytes(dtype: Dtype, n: number): number {
  const bytes = tensorByteLength(dtype, [n]) ?? 0;
  return Math.ceil(bytes / 4) * 4;
}

/** GPU bytes of a config's weights (formats by its quantization_config). */
export function gpuBytes(c: ModelConfig): GpuBytes {
  return tally(c, configParts(c)).gpu;
}

/** GPU bytes, bytes per format and tensor data of a set of stored tensors. */
function tally(c: ModelConfig, parts: Iterable<Part>): { gpu: GpuBytes; byFormat: FormatBytes; tensorData: number } {
  const g: GpuBytes = { fp8: 0, scales: 0, int4: 0, bf16: 0, f32: 0, total: 0, readPerToken: 0 };
  const byFormat: FormatBytes = { fp8: { leaves: 0, params: 0, bytes: 0 }, bf16: { leaves: 0, params: 0, bytes: 0 }, int4: { leaves: 0, params: 0, bytes: 0 }, f32: { leaves: 0, params: 0, bytes: 0 } };
  const expertBytes = new Map<number, number>(); // routed expert GPU bytes per layer, all experts
  let tensorData = 0;
  for (const t of parts) {
    const b = t.gpu * t.count;
    const disk = (tensorByteLength(t.dtype, t.shape) ?? 0) * t.count;
    tensorData += disk;
    const f = byFormat[t.format];
    f.bytes += disk;
    if (t.isWeight) {
      f.leaves += t.count;
      f.params += numel(t.leaf.shape) * t.count;
    }
    if (t.format === 'int4') g.int4 += b;
    else if (!t.isWeight) g.scales += b;
    else if (t.dtype === 'F8_E4M3') g.fp8 += b;
    else if (t.dtype === 'BF16') g.bf16 += b;
    else g.f32 += b;
    g.total += b;
    if (t.leaf.role === 'routed_expert') expertBytes.set(t.leaf.layer, (expertBytes.get(t.leaf.layer) ?? 0) + b);
    else if (t.leaf.role === 'embed') g.readPerToken += gpuTensorBytes(t.dtype, c.hidden_size);
    else g.readPerToken += b;
  }
  // a token reads K of the E experts of each MoE layer (the average expert: formats could differ per expert)
  for (const bytes of expertBytes.values()) g.readPerToken += Math.round((bytes / c.n_routed_experts) * c.num_experts_per_tok);
  return { gpu: g, byFormat, tensorData };
}

export function kvCacheBytes(c: ModelConfig, bytesPerValue = 4): KvCacheBytes {
  const L = c.num_hidden_layers;
  const latentValues = c.kv_lora_rank + c.qk_rope_head_dim;
  const fullValues = c.num_attention_heads * (c.derived.qkHeadDim + c.v_head_dim);
  const latentBytesPerToken = latentValues * L * bytesPerValue;
  const fullBytesPerToken = fullValues * L * bytesPerValue;
  return { layers: L, latentValues, fullValues, bytesPerValue, latentBytesPerToken, fullBytesPerToken, ratio: fullBytesPerToken / latentBytesPerToken };
}

/**
 * Folds layer and expert indices: one row per (pattern, dtype, shape). An entry with `count` > 1 stands for
 * experts 0 .. count-1 of its name (the expert index in the name is ignored), so counted groups never expand.
 */
export function groupTensors(tensors: Iterable<{ name: string; dtype: Dtype; shape: number[]; count?: number }>): TensorGroup[] {
  const groups = new Map<string, { dtype: Dtype; shape: number[]; count: number; bytes: number; layers: Set<number>; experts: Set<number>; expertsUpTo: number }>();
  for (const t of tensors) {
    let layer = -1;
    let expert = -1;
    const key0 = t.name
      .replace(/^(language_model\.)?model\.layers\.(\d+)\./, (_, pre: string | undefined, i: string) => {
        layer = Number(i);
        return `${pre ?? ''}model.layers.{L}.`;
      })
      .replace(/\.experts\.(\d+)\./, (_, e: string) => {
        expert = Number(e);
        return '.experts.{E}.';
      });
    const key = `${key0}|${t.dtype}|${t.shape.join(',')}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { dtype: t.dtype, shape: t.shape, count: 0, bytes: 0, layers: new Set(), experts: new Set(), expertsUpTo: 0 }));
    const count = t.count ?? 1;
    g.count += count;
    g.bytes += (tensorByteLength(t.dtype, t.shape) ?? 0) * count;
    if (layer >= 0) g.layers.add(layer);
    if (expert >= 0 && count > 1) g.expertsUpTo = Math.max(g.expertsUpTo, count);
    else if (expert >= 0) g.experts.add(expert);
  }
  return [...groups.entries()].map(([key, g]) => {
    let experts = g.experts.size ? braces(g.experts) : '';
    if (g.expertsUpTo) experts = g.expertsUpTo === 1 ? '0' : `{0-${g.expertsUpTo - 1}}`;
    return {
      pattern: key.split('|')[0]!.replace('{L}', braces(g.layers)).replace('{E}', experts),
      dtype: g.dtype,
      shape: g.shape,
      count: g.count,
      bytes: g.bytes,
    };
  });
}

/** {7} -> "7", {1, 2, 3, 5} -> "{1-3,5}" */
function braces(set: Set<number>): string {
  return set.size === 1 ? String([...set][0]) : `{${ranges(set)}}`;
}

/** {1, 2, 3, 5} -> "1-3,5" */
function ranges(set: Set<number>): string {
  const v = [...set].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < v.length; ) {
    let j = i;
    while (j + 1 < v.length && v[j + 1] === v[j]! + 1) j++;
    out.push(i === j ? String(v[i]) : `${v[i]}-${v[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** The report for a bare config.json (no weights): counted from the weight tree's groups, nothing expanded. */
export function inspectConfig(c: ModelConfig, source: string): InspectReport {
  const t = tally(c, configParts(c));
  return {
    source,
    kind: 'config',
    config: c,
    params: countParams(c),
    bytes: { tensorData: t.tensorData, gpu: t.gpu, byFormat: t.byFormat },
    kvCache: kvCacheBytes(c),
    tensorGroups: groupTensors(configParts(c)),
    ignored: [],
    unexpected: [],
  };
}

/** The report for an opened (and therefore validated) checkpoint: bytes and formats as stored. */
export async function inspectCheckpoint(ckpt: Checkpoint, source = ckpt.name): Promise<InspectReport> {
  const c = ckpt.config;
  const t = tally(c, checkpointParts(ckpt));
  const ignored = new Set(ckpt.ignored);
  const unexpected = new Set(ckpt.unexpected);
  const p = c.derived.tensorPrefix;
  const status = (stored: string): TensorRow['status'] => {
    const key = p && stored.startsWith(p) ? stored.slice(p.length) : stored;
    return ignored.has(key) ? 'ignored' : unexpected.has(key) ? 'unexpected' : 'used';
  };
  const rows: TensorRow[] = [...ckpt.tensors.values()]
    .sort((a, b) => (a.source.name < b.source.name ? -1 : a.source.name > b.source.name ? 1 : a.offset - b.offset))
    .map((x) => ({ name: x.name, dtype: x.dtype, shape: x.shape, bytes: x.byteLength, file: x.source.name, status: status(x.name) }));
  const sources = new Set([...ckpt.tensors.values()].map((x) => x.source));
  let files = 0;
  for (const s of sources) files += await s.size();
  return {
    source,
    kind: 'checkpoint',
    config: c,
    params: countParams(c),
    bytes: { tensorData: rows.reduce((a, r) => a + r.bytes, 0), files, gpu: t.gpu, byFormat: t.byFormat },
    kvCache: kvCacheBytes(c),
    tensorGroups: groupTensors(checkpointParts(ckpt)),
    tensors: rows,
    ignored: ckpt.ignored,
    unexpected: ckpt.unexpected,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Text (markdown) output

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

/** 1.03 T, 32.9 B, 4.2 M, 12.3 K */
export function humanCount(n: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [v, u] of units) if (n >= v) return `${(n / v).toPrecision(3)} ${u}`;
  return String(n);
}

/** Binary units: 1.50 GiB */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toPrecision(3)} ${units[i]}`;
}

function weightsLine(c: ModelConfig): string {
  const q = c.quantization_config;
  if (!q) return 'BF16 linear weights (no quantization_config)';
  if (q.quant_method === 'fp8') return 'FP8 E4M3 linear weights with F32 128x128 block scales';
  return `INT4 (compressed-tensors pack-quantized, symmetric, group ${q.group_size}) for the linears quantization_config targets (routed experts in Kimi's ignore list), other linears BF16`;
}

function table(head: string[], rows: string[][], right: boolean[] = []): string {
  const align = head.map((_, i) => (right[i] ? '---:' : '---'));
  return [head, align, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

export function formatInspect(r: InspectReport, opts: { allTensors?: boolean } = {}): string {
  const c = r.config;
  const moe = c.derived.moeLayers.filter(Boolean).length;
  const p = r.params;
  const out: string[] = [];
  out.push(`# ${r.source}${r.kind === 'config' ? ' (config only, no weights)' : ''}`, '');
  out.push(`- model: ${c.model_type}, ${c.num_hidden_layers} layers (${c.num_hidden_layers - moe} dense + ${moe} MoE), hidden ${c.hidden_size}, ${c.num_attention_heads} heads, vocab ${c.vocab_size}`);
  out.push(`- MLA: q_lora_rank ${c.q_lora_rank ?? 'null (direct q_proj)'}, kv_lora_rank ${c.kv_lora_rank}, qk_nope ${c.qk_nope_head_dim} / qk_rope ${c.qk_rope_head_dim} / v ${c.v_head_dim}`);
  out.push(
    `- MoE: ${c.n_routed_experts} routed experts, top-${c.num_experts_per_tok} + ${c.n_shared_experts} shared, n_group ${c.n_group} / topk_group ${c.topk_group}, moe_intermediate ${c.moe_intermediate_size}, dense intermediate ${c.intermediate_size}`,
  );
  out.push(`- weights: ${weightsLine(c)}; embeddings, lm_head, norms and router BF16; router bias F32${c.derived.tensorPrefix ? `; Kimi K2.5 wrapper (text_config, tensors prefixed \`${c.derived.tensorPrefix}\`)` : ''}`);
  const rs = c.rope_scaling;
  out.push(`- context: ${int(c.max_position_embeddings)} positions${rs ? ` (YaRN factor ${rs.factor} over ${int(rs.original_max_position_embeddings)})` : ''}`, '');

  out.push('## Parameters', '');
  const prow = (name: string, n: number): string[] => [name, int(n), humanCount(n)];
  out.push(
    table(
      ['part', 'parameters', ''],
      [
        prow('embed_tokens', p.embedding),
        prow('attention (MLA, all layers)', p.attention),
        prow('dense MLP', p.denseMlp),
        prow(`routed experts (${c.n_routed_experts} x ${moe} layers)`, p.routedExperts),
        prow('shared experts', p.sharedExperts),
        prow('router (gate + bias)', p.router),
        prow('norms', p.norms),
        prow('lm_head', p.lmHead),
        prow('**total**', p.total),
        prow(`**active per token** (all but routed experts, + ${c.num_experts_per_tok} experts per MoE layer)`, p.activePerToken),
      ],
      [false, true, true],
    ),
    '',
  );

  out.push('## Bytes', '');
  const g = r.bytes.gpu;
  const brow = (name: string, n: number): string[] => [name, int(n), humanBytes(n)];
  const brows = [brow(r.kind === 'config' ? 'tensor data on disk (from the config)' : 'tensor data on disk', r.bytes.tensorData)];
  if (r.bytes.files !== undefined) brows.push(brow('safetensors files on disk', r.bytes.files));
  if (g.fp8) brows.push(brow('GPU: FP8 weights (u8, 4 per u32)', g.fp8));
  if (g.scales) brows.push(brow('GPU: F32 block scales', g.scales));
  if (g.int4) brows.push(brow('GPU: INT4 weights (8 per u32) + BF16 group scales', g.int4));
  brows.push(brow('GPU: BF16 tensors kept BF16 (2 per u32)', g.bf16));
  brows.push(brow('GPU: F32 tensors', g.f32));
  brows.push(brow('**GPU total** (weights; MTP layers not uploaded)', g.total));
  brows.push(brow('weight bytes read per decoded token', g.readPerToken));
  out.push(table(['', 'bytes', ''], brows, [false, true, true]), '');
  const fmts = (['fp8', 'int4', 'bf16', 'f32'] as const).filter((f) => r.bytes.byFormat[f].leaves > 0);
  const label = { fp8: 'FP8 E4M3 + F32 block scales', int4: 'INT4 pack-quantized + group scales', bf16: 'BF16', f32: 'F32' } as const;
  out.push(
    `By stored format${r.kind === 'config' ? ' (as the config implies)' : ''}:`,
    '',
    table(
      ['format', 'tensors (leaves)', 'parameters', 'bytes on disk', ''],
      fmts.map((f) => [label[f], int(r.bytes.byFormat[f].leaves), int(r.bytes.byFormat[f].params), int(r.bytes.byFormat[f].bytes), humanBytes(r.bytes.byFormat[f].bytes)]),
      [false, true, true, true, true],
    ),
    '',
  );

  const kv = r.kvCache;
  out.push(`## KV cache (f32, ${kv.layers} layer${kv.layers === 1 ? '' : 's'})`, '');
  const ctxs = [4096, c.max_position_embeddings].filter((v, i, a) => a.indexOf(v) === i);
  out.push(
    table(
      ['cache', 'values / token / layer', 'bytes / token', ...ctxs.map((t) => `at ${int(t)} tokens`)],
      [
        ['MLA latent: c_kv + k_rope (R + Dr)', int(kv.latentValues), int(kv.latentBytesPerToken), ...ctxs.map((t) => humanBytes(kv.latentBytesPerToken * t))],
        ['full multi-head K/V: H x (Dq + Dv)', int(kv.fullValues), int(kv.fullBytesPerToken), ...ctxs.map((t) => humanBytes(kv.fullBytesPerToken * t))],
      ],
      [false, true, true, ...ctxs.map(() => true)],
    ),
    '',
    `The latent cache is ${kv.ratio.toFixed(1)}x smaller.`,
    '',
  );

  out.push('## Tensors', '');
  out.push(
    table(
      ['tensor', 'dtype', 'shape', 'count', 'bytes'],
      r.tensorGroups.map((t) => [`\`${t.pattern}\``, t.dtype, `[${t.shape.join(', ')}]`, int(t.count), int(t.bytes)]),
      [false, false, false, true, true],
    ),
    '',
  );
  if (r.tensors && (opts.allTensors || r.tensors.length <= 512)) {
    out.push(`### All ${r.tensors.length} tensors`, '');
    out.push(
      table(
        ['tensor', 'dtype', 'shape', 'file', 'status'],
        r.tensors.map((t) => [`\`${t.name}\``, t.dtype, `[${t.shape.join(', ')}]`, (t.file ?? '').split('/').pop() ?? '', t.status]),
      ),
      '',
    );
  }
  if (r.ignored.length) {
    const what = c.derived.tensorPrefix ? 'of MTP layers (>= num_hidden_layers = ' + c.num_hidden_layers + ') and the vision tower / projector' : `of MTP layers (>= num_hidden_layers = ${c.num_hidden_layers})`;
    out.push(`### Ignored: ${r.ignored.length} tensors ${what}`, '');
    const rows = (r.tensors ?? []).filter((t) => t.status === 'ignored');
    out.push(table(['tensor', 'dtype', 'shape', 'count'], groupTensors(rows).map((t) => [`\`${t.pattern}\``, t.dtype, `[${t.shape.join(', ')}]`, int(t.count)])), '');
  }
  if (r.unexpected.length) out.push(`Unexpected (not used by the model): ${r.unexpected.map((n) => `\`${n}\``).join(', ')}`, '');
  return out.join('\n');
}
