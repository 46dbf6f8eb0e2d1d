/**
 * What `webmoe inspect` reports about a checkpoint (or a bare config.json): parameters, total and active per
 * token; bytes on disk and on the GPU; KV-cache bytes per token with MLA's latent cache versus full K/V.
 *
 * GPU bytes assume what the WebGPU engine holds (docs/architecture.md: weights stay FP8 on the GPU):
 * F8_E4M3 as u8 packed 4 per u32, BF16 kept BF16 (not widened) packed 2 per u32, F32 as f32; each tensor is
 * padded to whole u32 words. Tensors of MTP layers (>= num_hidden_layers) are on disk but not uploaded.
 * KV cache: f32, MLA latent = (Rkv + Dr) values per token per layer (c_kv after kv_a_layernorm, k_rope after
 * RoPE, spec §4.5); full K/V = H * (Dq + Dv) per token per layer (keys Dq = Dn + Dr and values Dv per head).
 *
 * Legend: D hidden, L layers, H heads, Dn/Dr/Dv head dims, Rkv kv_lora_rank, E routed experts, K experts per token.
 */
import type { Dtype } from '../format/safetensors.js';
import { tensorByteLength } from '../format/safetensors.js';
import type { Checkpoint } from './checkpoint.js';
import type { ModelConfig } from './config.js';
import { storedTensors } from './weights.js';

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
  /** F32 weight_scale_inv. */
  scales: number;
  /** BF16 tensors kept BF16, packed in u32 (embeddings, lm_head, norms, router; BF16 linear weights). */
  bf16: number;
  /** F32 tensors (router bias). */
  f32: number;
  total: number;
  /** Weight bytes one decoded token reads: one embedding row, K of E routed experts, everything else. */
  readPerToken: number;
}

export interface KvCacheBytes {
  layers: number;
  /** (Rkv + Dr) values per token per layer. */
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
  };
  kvCache: KvCacheBytes;
  tensorGroups: TensorGroup[];
  /** Every tensor of the files (checkpoint only). */
  tensors?: TensorRow[];
  ignored: string[];
  unexpected: string[];
}

/** Parameter counts from the config's weight table (scales are not parameters). */
export function countParams(c: ModelConfig): ParamCounts {
  const p: ParamCounts = { total: 0, activePerToken: 0, embedding: 0, lmHead: 0, attention: 0, norms: 0, denseMlp: 0, router: 0, routedExperts: 0, sharedExperts: 0, perExpert: 0 };
  for (const t of storedTensors(c)) {
    if (t.role === 'scale') continue;
    const n = t.shape.reduce((a, b) => a * b, 1);
    p.total += n;
    const name = t.name;
    if (name === 'model.embed_tokens.weight') p.embedding += n;
    else if (name === 'lm_head.weight') p.lmHead += n;
    else if (name.includes('.self_attn.')) p.attention += n;
    else if (name.endsWith('layernorm.weight') || name === 'model.norm.weight') p.norms += n;
    else if (name.includes('.mlp.gate.')) p.router += n;
    else if (name.includes('.mlp.experts.')) p.routedExperts += n;
    else if (name.includes('.mlp.shared_experts.')) p.sharedExperts += n;
    else p.denseMlp += n;
  }
  p.perExpert = 3 * c.moe_intermediate_size * c.hidden_size;
  const moeLayers = c.derived.moeLayers.filter(Boolean).length;
  p.activePerToken = p.total - p.routedExperts + moeLayers * c.num_experts_per_tok * p.perExpert;
  return p;
}

/** Bytes a tensor takes on the GPU: whole u32 words (fp8 4 per word, bf16 2 per word, f32 1). */
export function gpuTensorBytes(dtype: Dtype, numel: number): number {
  const bytes = tensorByteLength(dtype, [numel]) ?? 0;
  return Math.ceil(bytes / 4) * 4;
}

export function gpuBytes(c: ModelConfig): GpuBytes {
  const g: GpuBytes = { fp8: 0, scales: 0, bf16: 0, f32: 0, total: 0, readPerToken: 0 };
  let expert0 = 0; // expert 0 of every MoE layer
  for (const t of storedTensors(c)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const b = gpuTensorBytes(t.dtype, n);
    if (t.role === 'scale') g.scales += b;
    else if (t.dtype === 'F8_E4M3') g.fp8 += b;
    else if (t.dtype === 'BF16') g.bf16 += b;
    else g.f32 += b;
    g.total += b;
    if (t.name.includes('.mlp.experts.')) {
      if (t.name.includes('.mlp.experts.0.')) expert0 += b;
    } else if (t.name === 'model.embed_tokens.weight') {
      g.readPerToken += gpuTensorBytes(t.dtype, c.hidden_size);
    } else {
      g.readPerToken += b;
    }
  }
  // all experts have the same shapes: a token reads K experts' bytes per MoE layer
  g.readPerToken += expert0 * c.num_experts_per_tok;
  return g;
}

export function kvCacheBytes(c: ModelConfig, bytesPerValue = 4): KvCacheBytes {
  const L = c.num_hidden_layers;
  const latentValues = c.kv_lora_rank + c.qk_rope_head_dim;
  const fullValues = c.num_attention_heads * (c.derived.qkHeadDim + c.v_head_dim);
  const latentBytesPerToken = latentValues * L * bytesPerValue;
  const fullBytesPerToken = fullValues * L * bytesPerValue;
  return { layers: L, latentValues, fullValues, bytesPerValue, latentBytesPerToken, fullBytesPerToken, ratio: fullBytesPerToken / latentBytesPerToken };
}

/** Folds layer and expert indices: one row per (pattern, dtype, shape). */
export function groupTensors(tensors: readonly { name: string; dtype: Dtype; shape: number[] }[]): TensorGroup[] {
  const groups = new Map<string, { dtype: Dtype; shape: number[]; count: number; bytes: number; layers: Set<number>; experts: Set<number>; order: number }>();
  for (const t of tensors) {
    let layer = -1;
    let expert = -1;
    const key0 = t.name
      .replace(/^model\.layers\.(\d+)\./, (_, i: string) => {
        layer = Number(i);
        return 'model.layers.{L}.';
      })
      .replace(/\.experts\.(\d+)\./, (_, e: string) => {
        expert = Number(e);
        return '.experts.{E}.';
      });
    const key = `${key0}|${t.dtype}|${t.shape.join(',')}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { dtype: t.dtype, shape: t.shape, count: 0, bytes: 0, layers: new Set(), experts: new Set(), order: groups.size }));
    g.count++;
    g.bytes += tensorByteLength(t.dtype, t.shape) ?? 0;
    if (layer >= 0) g.layers.add(layer);
    if (expert >= 0) g.experts.add(expert);
  }
  return [...groups.entries()].map(([key, g]) => ({
    pattern: key.split('|')[0]!.replace('{L}', braces(g.layers)).replace('{E}', braces(g.experts)),
    dtype: g.dtype,
    shape: g.shape,
    count: g.count,
    bytes: g.bytes,
  }));
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

/** The report for a bare config.json (no weights). */
export function inspectConfig(c: ModelConfig, source: string): InspectReport {
  const stored = storedTensors(c);
  return {
    source,
    kind: 'config',
    config: c,
    params: countParams(c),
    bytes: { tensorData: stored.reduce((a, t) => a + (tensorByteLength(t.dtype, t.shape) ?? 0), 0), gpu: gpuBytes(c) },
    kvCache: kvCacheBytes(c),
    tensorGroups: groupTensors(stored),
    ignored: [],
    unexpected: [],
  };
}

/** The report for an opened (and therefore validated) checkpoint. */
export async function inspectCheckpoint(ckpt: Checkpoint, source = ckpt.name): Promise<InspectReport> {
  const base = inspectConfig(ckpt.config, source);
  const ignored = new Set(ckpt.ignored);
  const unexpected = new Set(ckpt.unexpected);
  const rows: TensorRow[] = [...ckpt.tensors.values()]
    .sort((a, b) => (a.source.name < b.source.name ? -1 : a.source.name > b.source.name ? 1 : a.offset - b.offset))
    .map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      bytes: t.byteLength,
      file: t.source.name,
      status: ignored.has(t.name) ? 'ignored' : unexpected.has(t.name) ? 'unexpected' : 'used',
    }));
  const sources = new Set([...ckpt.tensors.values()].map((t) => t.source));
  let files = 0;
  for (const s of sources) files += await s.size();
  const order = new Map(storedTensors(ckpt.config).map((t, i) => [t.name, i]));
  const used = rows.filter((r) => r.status === 'used').sort((a, b) => order.get(a.name)! - order.get(b.name)!);
  return {
    ...base,
    kind: 'checkpoint',
    bytes: { ...base.bytes, tensorData: rows.reduce((a, r) => a + r.bytes, 0), files },
    tensorGroups: groupTensors(used),
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
  out.push(`- weights: ${c.quantization_config ? 'FP8 E4M3 linear weights with F32 128x128 block scales' : 'BF16 linear weights (no quantization_config)'}; embeddings, lm_head, norms and router BF16; router bias F32`);
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
  brows.push(brow('GPU: BF16 tensors kept BF16 (2 per u32)', g.bf16));
  brows.push(brow('GPU: F32 tensors', g.f32));
  brows.push(brow('**GPU total** (weights; MTP layers not uploaded)', g.total));
  brows.push(brow('weight bytes read per decoded token', g.readPerToken));
  out.push(table(['', 'bytes', ''], brows, [false, true, true]), '');

  const kv = r.kvCache;
  out.push(`## KV cache (f32, ${kv.layers} layer${kv.layers === 1 ? '' : 's'})`, '');
  const ctxs = [4096, c.max_position_embeddings].filter((v, i, a) => a.indexOf(v) === i);
  out.push(
    table(
      ['cache', 'values / token / layer', 'bytes / token', ...ctxs.map((t) => `at ${int(t)} tokens`)],
      [
        ['MLA latent: c_kv + k_rope (Rkv + Dr)', int(kv.latentValues), int(kv.latentBytesPerToken), ...ctxs.map((t) => humanBytes(kv.latentBytesPerToken * t))],
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
    out.push(`### Ignored: ${r.ignored.length} tensors of MTP layers (>= num_hidden_layers = ${c.num_hidden_layers})`, '');
    const ign = new Set(r.ignored);
    const rows = (r.tensors ?? []).filter((t) => ign.has(t.name));
    out.push(table(['tensor', 'dtype', 'shape', 'count'], groupTensors(rows).map((t) => [`\`${t.pattern}\``, t.dtype, `[${t.shape.join(', ')}]`, int(t.count)])), '');
  }
  if (r.unexpected.length) out.push(`Unexpected (not used by the model): ${r.unexpected.map((n) => `\`${n}\``).join(', ')}`, '');
  return out.join('\n');
}
