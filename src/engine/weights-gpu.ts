/**
 * Uploads a checkpoint's weights to the GPU, once, as stored: FP8 codes stay FP8 (with their F32 block scales),
 * BF16 stays BF16 (also the linear weights of checkpoints without quantization_config: 2 codes per u32, read by
 * the BF16 GEMV/GEMM and the *_bf16.wgsl attention / expert twins), norms and the router bias become f32 (tiny). Each tensor is read into JS memory once and
 * written to its GPU buffer(s) straight away (row re-layout for unaligned rows goes through a bounded staging
 * block), so the peak JS memory is one tensor, never a second full copy.
 *
 * Layouts (see docs/architecture.md):
 *   linear weights   GpuLinear (ops/linear.ts): padded rows, row chunks that each fit one storage binding
 *   kv_b_proj        one GpuLinear chunk, bound by the attention kernels as WeightBuffers (ops/attention.ts)
 *   experts          per layer, shards of whole experts (ops/moe.ts): gateUp stack [2·count, F, D] (gate_e,
 *                    up_e interleaved), down stack [count, D, F]; the shared expert as a 1-expert stack; FP8
 *                    (fp8StackLayout + scales), BF16 (bf16StackLayout, no scales) or INT4 (int4StackLayout: the
 *                    packed words as stored, group scales widened to f32) as the checkpoint stores them: the
 *                    routed experts in one format, the shared expert in its own (Kimi: INT4 routed, BF16 shared)
 *   embed / lm_head  BF16 GpuLinear [V, D] (row chunks when V·D·2 exceeds the binding limit)
 *
 * Legend: D hidden, V vocab, E routed experts, F moe_intermediate_size, Fs shared width, R kv_lora_rank.
 */
import { ConfigError, DeviceError, FormatError } from '../errors.js';
import { asUint16, readTensorBytes } from '../format/safetensors.js';
import { createBuffer, writeBuffer } from '../gpu/buffers.js';
import type { GpuContext } from '../gpu/device.js';
import type { WeightBuffers } from '../gpu/ops/binding.js';
import { expertShards, stackLayout, type ExpertFormat } from '../gpu/ops/fp8-layout.js';
import { destroyLinear, uploadLinear, type GpuLinear } from '../gpu/ops/linear.js';
import type { ExpertShardBuffers, MoeWeightBuffers } from '../gpu/ops/moe.js';
import { leafFormat, readF32, readStoredLinear, type Checkpoint } from '../model/checkpoint.js';
import { packStack, routedExpertFormat } from '../offload/expert-source.js';

export interface GpuFfn {
  gate: GpuLinear; // [I, D]
  up: GpuLinear; // [I, D]
  down: GpuLinear; // [D, I]
}

export interface GpuMoe {
  /** BF16 [E, D] */
  router: GpuLinear;
  /** f32 [E] e_score_correction_bias */
  bias: GPUBuffer;
  experts: MoeWeightBuffers;
}

export interface GpuLayer {
  inputNorm: GPUBuffer; // f32 [D]
  qA: GpuLinear | null; // [Rq, D]
  qANorm: GPUBuffer | null; // f32 [Rq]
  qB: GpuLinear | null; // [H·Dq, Rq]
  q: GpuLinear | null; // [H·Dq, D] when q_lora_rank is null
  kvA: GpuLinear; // [R + Dr, D]
  kvANorm: GPUBuffer; // f32 [R]
  kvB: GpuLinear; // [H·(Dn+Dv), R], one chunk
  o: GpuLinear; // [D, H·Dv]
  postNorm: GPUBuffer; // f32 [D]
  mlp: GpuFfn | null;
  moe: GpuMoe | null;
}

export interface GpuWeights {
  embed: GpuLinear; // BF16 [V, D]
  layers: GpuLayer[];
  norm: GPUBuffer; // f32 [D]
  lmHead: GpuLinear; // BF16 [V, D]
  /** GPU bytes held by all weights. */
  bytes: number;
  destroy(): void;
}

/** The attention kernels' view of kv_b_proj (FP8 codes + scales, or BF16 codes). */
export function kvBBuffers(w: GpuLinear): WeightBuffers {
  if (w.format === 'bf16') return { format: 'bf16', codes: w.chunks[0]!.codes };
  return { codes: w.chunks[0]!.codes, scales: w.scales! };
}

/**
 * kv_b_proj's name once checked to be FP8 or BF16: the MLA attention kernels (mla_absorb_q / mla_absorb_v and their
 * _bf16 twins, ops/attention.ts) read it in place as FP8 or BF16 codes, and have no INT4 instance, so an INT4
 * kv_b_proj is a FormatError naming the tensor (every other dense linear may be INT4).
 */
function kvBName(ckpt: Checkpoint, name: string): string {
  if (leafFormat(ckpt, name) === 'int4') {
    throw new FormatError('is stored INT4 (pack-quantized); the GPU attention kernels read kv_b_proj as FP8 or BF16 only (`webmoe convert --to int4-experts` stores it BF16; the cpu backend reads it as it is)', ckpt.name, name);
  }
  return name;
}

export type UploadProgress = (done: number, total: number, tensor: string) => void;

/**
 * Reads and uploads every weight the forward pass uses. `routedExperts: false` (expert offloading) leaves the
 * routed experts out (every MoE layer gets no shards; engine/expert-offload.ts supplies slots).
 */
export async function uploadWeights(gpu: GpuContext, ckpt: Checkpoint, onProgress?: UploadProgress, opts: { routedExperts?: boolean } = {}): Promise<GpuWeights> {
  const c = ckpt.config;
  const routed = opts.routedExperts ?? true;
  // refused before anything is allocated
  for (let i = 0; i < c.num_hidden_layers; i++) kvBName(ckpt, `model.layers.${i}.self_attn.kv_b_proj.weight`);
  const buffers: GPUBuffer[] = [];
  const linears: GpuLinear[] = [];
  let bytes = 0;
  const routedLeaves = routed ? 0 : ckpt.weights.filter((w) => /\.mlp\.experts\.\d+\./.test(w.spec.name)).length;
  const total = ckpt.weights.length - routedLeaves;
  let done = 0;
  const tick = (name: string) => onProgress?.(++done, total, name);

  // a dense linear as stored: FP8, BF16 or INT4 (GpuLinear 'int4', run by fp8_gemv_wide_int4, ops/linear.ts)
  const lin = async (name: string): Promise<GpuLinear> => {
    const w = uploadLinear(gpu, name, await readStoredLinear(ckpt, name));
    linears.push(w);
    bytes += w.bytes;
    tick(name);
    return w;
  };
  const bf16 = async (name: string, rows: number, cols: number): Promise<GpuLinear> => {
    const t = ckpt.tensors.get(name)!;
    const w = uploadLinear(gpu, name, { format: 'bf16', rows, cols, data: asUint16(await readTensorBytes(t)) });
    linears.push(w);
    bytes += w.bytes;
    tick(name);
    return w;
  };
  const vec = async (name: string): Promise<GPUBuffer> => {
    const data = await readF32(ckpt, name);
    const b = createBuffer(gpu, data.byteLength, name);
    writeBuffer(gpu, b, 0, data);
    buffers.push(b);
    bytes += b.size;
    tick(name);
    return b;
  };

  try {
    const embed = await bf16('model.embed_tokens.weight', c.vocab_size, c.hidden_size);
    const layers: GpuLayer[] = [];
    for (let i = 0; i < c.num_hidden_layers; i++) {
      const p = `model.layers.${i}.`;
      const a = p + 'self_attn.';
      const lowRank = c.q_lora_rank !== null;
      const layer: GpuLayer = {
        inputNorm: await vec(p + 'input_layernorm.weight'),
        qA: lowRank ? await lin(a + 'q_a_proj.weight') : null,
        qANorm: lowRank ? await vec(a + 'q_a_layernorm.weight') : null,
        qB: lowRank ? await lin(a + 'q_b_proj.weight') : null,
        q: lowRank ? null : await lin(a + 'q_proj.weight'),
        kvA: await lin(a + 'kv_a_proj_with_mqa.weight'),
        kvANorm: await vec(a + 'kv_a_layernorm.weight'),
        kvB: await lin(kvBName(ckpt, a + 'kv_b_proj.weight')),
        o: await lin(a + 'o_proj.weight'),
        postNorm: await vec(p + 'post_attention_layernorm.weight'),
        mlp: null,
        moe: null,
      };
      if (layer.kvB.chunks.length !== 1) {
        const limit = gpu.limits.maxStorageBufferBindingSize;
        throw new DeviceError(`tensor '${layer.kvB.name}' (${layer.kvB.rows}x${layer.kvB.cols}) exceeds maxStorageBufferBindingSize ${limit}: the attention kernels bind it whole`, {
          limit: 'maxStorageBufferBindingSize',
          value: limit,
          required: layer.kvB.rows * layer.kvB.strideWords * 4,
        });
      }
      if (c.derived.moeLayers[i]) {
        const router = await bf16(p + 'mlp.gate.weight', c.n_routed_experts, c.hidden_size);
        const bias = await vec(p + 'mlp.gate.e_score_correction_bias');
        const experts = await uploadExperts(gpu, ckpt, i, buffers, (n, name) => {
          bytes += n;
          if (name) tick(name);
        }, routed);
        layer.moe = { router, bias, experts };
      } else {
        layer.mlp = { gate: await lin(p + 'mlp.gate_proj.weight'), up: await lin(p + 'mlp.up_proj.weight'), down: await lin(p + 'mlp.down_proj.weight') };
      }
      layers.push(layer);
    }
    const norm = await vec('model.norm.weight');
    const lmHead = await bf16('lm_head.weight', c.vocab_size, c.hidden_size);
    return {
      embed,
      layers,
      norm,
      lmHead,
      bytes,
      destroy() {
        for (const w of linears) destroyLinear(w);
        for (const b of buffers) b.destroy();
      },
    };
  } catch (err) {
    for (const w of linears) destroyLinear(w);
    for (const b of buffers) b.destroy();
    throw err;
  }
}

/**
 * One layer's routed experts in shards of whole experts (each stack fits a storage binding), and the shared
 * expert. `account(bytes, tensor?)` reports GPU bytes and finished tensors.
 */
async function uploadExperts(
  gpu: GpuContext, ckpt: Checkpoint, layer: number, buffers: GPUBuffer[], account: (bytes: number, tensor?: string) => void, routed: boolean,
): Promise<MoeWeightBuffers> {
  const c = ckpt.config;
  const D = c.hidden_size;
  const F = c.moe_intermediate_size;
  const p = `model.layers.${layer}.mlp.`;
  const format = routedExpertFormat(ckpt, layer);
  const gu1 = stackLayout(format, 2, F, D);
  const dn1 = stackLayout(format, 1, D, F);
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const ranges = routed ? expertShards(c.n_routed_experts, Math.max(gu1.codeBytes, dn1.codeBytes), limit, `${p}experts`) : [];
  const shards: ExpertShardBuffers[] = [];
  for (const r of ranges) {
    const gateUp = await uploadStack(gpu, ckpt, format, `${p}experts[${r.first}:${r.first + r.count}].gate_up`, buffers, account,
      Array.from({ length: 2 * r.count }, (_, m) => `${p}experts.${r.first + (m >> 1)}.${m & 1 ? 'up' : 'gate'}_proj.weight`), F, D);
    const down = await uploadStack(gpu, ckpt, format, `${p}experts[${r.first}:${r.first + r.count}].down`, buffers, account,
      Array.from({ length: r.count }, (_, m) => `${p}experts.${r.first + m}.down_proj.weight`), D, F);
    shards.push({ first: r.first, count: r.count, gateUp, down });
  }
  let shared: MoeWeightBuffers['shared'] = null;
  if (c.n_shared_experts > 0) {
    const Fs = c.derived.sharedIntermediate;
    const sf = expertFormat(ckpt, `${p}shared_experts.gate_proj.weight`);
    shared = {
      gateUp: await uploadStack(gpu, ckpt, sf, `${p}shared_experts.gate_up`, buffers, account, [`${p}shared_experts.gate_proj.weight`, `${p}shared_experts.up_proj.weight`], Fs, D),
      down: await uploadStack(gpu, ckpt, sf, `${p}shared_experts.down`, buffers, account, [`${p}shared_experts.down_proj.weight`], D, Fs),
    };
  }
  return { shards, shared };
}

/** The GPU format of an expert stack: the stored format of its first matrix (FP8, BF16 or INT4). */
function expertFormat(ckpt: Checkpoint, name: string): ExpertFormat {
  const f = leafFormat(ckpt, name);
  if (f === 'f32') throw new FormatError('an F32 expert weight: the expert kernels take FP8, BF16 or INT4', ckpt.name, name);
  return f;
}

/**
 * Same-shape matrices back to back in one codes buffer (fp8-layout.ts stacks): FP8 or INT4 with one scales
 * buffer, or BF16 (2 codes per u32, no scales).
 */
async function uploadStack(
  gpu: GpuContext, ckpt: Checkpoint, format: ExpertFormat, label: string, buffers: GPUBuffer[], account: (bytes: number, tensor?: string) => void,
  names: string[], rows: number, cols: number,
): Promise<WeightBuffers> {
  const L = stackLayout(format, names.length, rows, cols);
  const limit = gpu.limits.maxStorageBufferBindingSize;
  if (L.codeBytes > limit) {
    throw new DeviceError(`tensor '${label}' needs ${L.codeBytes} bytes in one binding, more than maxStorageBufferBindingSize ${limit}`, {
      limit: 'maxStorageBufferBindingSize',
      value: limit,
      required: L.codeBytes,
    });
  }
  const codes = createBuffer(gpu, L.codeBytes, label);
  buffers.push(codes);
  const scales = format !== 'bf16' ? createBuffer(gpu, Math.max(16, L.scaleBytes), `${label}_${format === 'fp8' ? 'scale_inv' : 'scale'}`) : null;
  if (scales) buffers.push(scales);
  account(codes.size + (scales?.size ?? 0));
  for (const [m, name] of names.entries()) {
    // one matrix at a time through the one host-side packer of expert stacks (offload/expert-source.ts)
    const packed = packStack(format, [await readStoredLinear(ckpt, name)], rows, cols, name);
    writeBuffer(gpu, codes, m * L.matrixWords * 4, packed.codes);
    if (scales) writeBuffer(gpu, scales, m * L.matrixScales * 4, packed.scales);
    account(0, name);
  }
  if (format === 'int4') return { format: 'int4', codes, scales: scales! };
  return scales ? { codes, scales } : { format: 'bf16', codes };
}
