/**
 * Uploads a checkpoint's weights to the GPU, once, as stored: FP8 codes stay FP8 (with their F32 block scales),
 * BF16 stays BF16 (also the linear weights of checkpoints without quantization_config: 2 codes per u32, read by
 * the BF16 GEMV/GEMM and the `_bf16` instances of the attention / expert kernel families), norms and the router bias become f32 (tiny). Each tensor is read into JS memory once and
 * written to its GPU buffer(s) straight away (row re-layout for unaligned rows goes through a bounded staging
 * block), so the peak JS memory is one tensor, never a second full copy (one exception: a layer's q_a_proj is held
 * until its kv_a_proj_with_mqa is read, and the two are stacked into one matrix, `qkvA`: StackedLatentProj).
 *
 * The loader walks the weight tree (model/weights.ts weightGroups) with the checkpoint's checked leaves
 * (model/checkpoint.ts leafAt) and writes no tensor name: a leaf goes where its position says (role, layer,
 * expert, slot; `place`), and its shape says how it is held:
 *   2-D leaf         GpuLinear as stored (ops/linear.ts): padded rows, row chunks that each fit one storage
 *                    binding; embed / lm_head / router BF16, the linears FP8, BF16 or INT4
 *   1-D leaf         f32 buffer (norms, router bias)
 *   kv_b_proj        (slot kvB) one GpuLinear chunk, bound by the attention kernels as WeightBuffers (ops/attention.ts)
 *   expert groups    (roles routed_expert, shared_expert) per layer, shards of whole experts (ops/moe.ts): gateUp
 *                    stack [2·count, F, D] (gate_e at matrix 2e, up_e at 2e + 1), down stack [count, D, F]; the
 *                    shared expert as a 1-expert stack; FP8 (fp8StackLayout + scales), BF16 (bf16StackLayout, no
 *                    scales) or INT4 (int4StackLayout: the packed words as stored, group scales widened to f32) as
 *                    the checkpoint stores them: each group in one format (Kimi: INT4 routed, BF16 shared); stacks
 *                    are labelled by the group's module (`model.layers.i.mlp.experts[a:b].gate_up`)
 * Everything that can refuse a checkpoint (an INT4 kv_b_proj, a row, an expert or a stack larger than one
 * binding, an INT4 group size the kernels do not take, a group in two formats) is checked by `planUpload` before
 * the first buffer is created.
 *
 * Legend: D hidden, V vocab, E routed experts, F moe_intermediate_size, Fs shared width, R kv_lora_rank.
 */
import { DeviceError, FormatError } from '../errors.js';
import { asUint16, readTensorBytes } from '../format/safetensors.js';
import { createBuffer, writeBuffer } from '../gpu/buffers.js';
import type { GpuContext } from '../gpu/device.js';
import type { WeightBuffers } from '../gpu/ops/binding.js';
import { expertShards, INT4_GROUP, scaleColumns, stackLayout, type ExpertFormat, type Fp8StackLayout } from '../gpu/ops/fp8-layout.js';
import { destroyLinear, rowStrideWords, rowsPerChunk, stackLinears, uploadLinear, type GpuLinear, type HostLinear } from '../gpu/ops/linear.js';
import type { ExpertShardBuffers, MoeWeightBuffers } from '../gpu/ops/moe.js';
import { leafAt, oneFormat, readF32, readStoredLinear, type Checkpoint } from '../model/checkpoint.js';
import { storedBytes, weightGroups, type CheckedTensor, type WeightSpec } from '../model/weights.js';
import { packStack } from '../offload/expert-source.js';
import type { ModelConfig } from '../model/config.js';
import type { LoadProgress } from './types.js';

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

/**
 * One decoder layer's weights. Leaf fields are named by the leaves' slots (model/weights.ts WeightSlot): `place`
 * puts the leaf of slot `s` at `layer[s]` (norms, attention), `layer.mlp[s]` or `layer.moe[s]`.
 */
export interface GpuLayer {
  inputNorm: GPUBuffer; // f32 [D]
  qA: GpuLinear | null; // [Rq, D]; null when stacked into qkvA
  qANorm: GPUBuffer | null; // f32 [Rq]
  qB: GpuLinear | null; // [H·Dq, Rq]
  q: GpuLinear | null; // [H·Dq, D] when q_lora_rank is null
  kvA: GpuLinear | null; // [R + Dr, D]; null when stacked into qkvA
  /** q_a_proj and kv_a_proj_with_mqa stacked into one matrix (uploadWeights; null where the model has no q_lora_rank) */
  qkvA: StackedLatentProj | null;
  kvANorm: GPUBuffer; // f32 [R]
  kvB: GpuLinear; // [H·(Dn+Dv), R], one chunk
  o: GpuLinear; // [D, H·Dv]
  postNorm: GPUBuffer; // f32 [D]
  mlp: GpuFfn | null;
  moe: GpuMoe | null;
}

/**
 * q_a_proj [Rq, D] and kv_a_proj_with_mqa [R + Dr, D] stacked into one matrix `w` [kvRow + R + Dr, D]: both read the
 * layer's normalised hidden state, so one GEMV (one dispatch, one pass over x and its RMSNorm prologue) computes
 * both; output row t holds q_a at columns [0, Rq) and kv_a at [kvRow, kvRow + R + Dr) (ops/linear.ts stackLinears:
 * FP8 puts kv_a at a whole 128-row scale block, zero rows between).
 */
export interface StackedLatentProj {
  w: GpuLinear;
  /** q_lora_rank: q_a's rows */
  qRows: number;
  /** where kv_a's rows start */
  kvRow: number;
}

/**
 * Floats per token of the stacked q_a / kv_a output (act.qa) at most, whatever the format (FP8 pads q_a to whole
 * 128-row blocks; BF16 and INT4 stack without padding); 0 without q_lora_rank.
 */
export function stackedLatentWidth(c: ModelConfig): number {
  return c.q_lora_rank ? Math.ceil(c.q_lora_rank / 128) * 128 + c.derived.kvAWidth : 0;
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

/** Every field a leaf may fill, null until placed. */
type Unplaced<T> = { [K in keyof T]: T[K] | null };

/**
 * A layer before its leaves are placed: every leaf field null, the containers of a dense or MoE layer made (a new
 * GpuLayer field gets its null here; the compiler asks for it).
 */
function emptyGpuLayer(moe: boolean): GpuLayer {
  const mlp: Unplaced<GpuFfn> = { gate: null, up: null, down: null };
  const moeParts: Unplaced<GpuMoe> = { router: null, bias: null, experts: { shards: [], shared: null } };
  const layer: Unplaced<GpuLayer> = {
    inputNorm: null, qA: null, qANorm: null, qB: null, q: null, kvA: null, qkvA: null, kvANorm: null, kvB: null, o: null, postNorm: null,
    mlp: moe ? null : (mlp as GpuFfn),
    moe: moe ? (moeParts as GpuMoe) : null,
  };
  return layer as GpuLayer;
}

/** The global leaves of GpuWeights, placed like a layer's. */
type GpuGlobals = Pick<GpuWeights, 'embed' | 'norm' | 'lmHead'>;

/**
 * Puts one uploaded leaf where its position says: the role picks the container (the model for global leaves, the
 * layer for norms and attention, its `moe` for the router and its bias, its `mlp` for a dense FFN) and the slot
 * is the field's name there. Expert leaves go into stacks (`uploadExpertGroup`).
 */
function place(globals: Unplaced<GpuGlobals>, layers: GpuLayer[], s: WeightSpec, v: GpuLinear | GPUBuffer): void {
  const layer = s.layer < 0 ? null : layers[s.layer]!;
  const container: object | null | undefined =
    layer === null ? globals
    : s.role === 'norm' || s.role === 'attention' ? layer
    : s.role === 'router' || s.role === 'router_bias' ? layer.moe
    : s.role === 'dense_mlp' ? layer.mlp
    : null;
  if (!container || !(s.slot in container)) throw new Error(`no place on the GPU for the ${s.role} leaf '${s.name}' (slot ${s.slot})`);
  (container as Record<string, unknown>)[s.slot] = v;
}

/** One step of the upload: a leaf of its own, or a layer's routed or shared expert group. */
type UploadStep = { kind: 'leaf'; leaf: CheckedTensor } | { kind: 'experts'; group: ExpertGroupPlan };

/** One stack buffer pair of an expert group, as planned. */
interface StackPlan {
  label: string;
  layout: Fp8StackLayout;
}

/** A layer's routed experts (shards of whole experts) or its shared expert (one 1-expert shard), as planned. */
interface ExpertGroupPlan {
  role: 'routed_expert' | 'shared_expert';
  layer: number;
  format: ExpertFormat;
  /** The group's leaves in tree order (expert e's gate, up, down, for e = 0..count-1). */
  leaves: CheckedTensor[];
  /** Experts per shard (every shard but the last holds this many). */
  perShard: number;
  shards: Array<{ first: number; count: number; gateUp: StackPlan; down: StackPlan }>;
}

/**
 * The upload of `ckpt`, checked and nothing allocated: the steps in tree order, and the stored bytes they read.
 * Every refusal the upload could meet is raised here (see the header).
 */
function planUpload(gpu: GpuContext, ckpt: Checkpoint, routed: boolean): { steps: UploadStep[]; totalBytes: number } {
  const c = ckpt.config;
  const steps: UploadStep[] = [];
  let totalBytes = 0;
  for (const g of weightGroups(c)) {
    if (g.role === 'routed_expert' && !routed) continue;
    const leaves: CheckedTensor[] = [];
    for (let i = 0; i < g.count; i++) for (const spec of g.leaves(i)) leaves.push(leafAt(ckpt, spec));
    for (const l of leaves) totalBytes += storedBytes(l);
    if (g.role === 'routed_expert' || g.role === 'shared_expert') {
      steps.push({ kind: 'experts', group: planExpertGroup(gpu, ckpt, g.role, g.layer, g.module, g.count, leaves) });
    } else {
      for (const leaf of leaves) {
        if (leaf.spec.shape.length === 2) checkLinear(gpu, ckpt, leaf);
        steps.push({ kind: 'leaf', leaf });
      }
    }
  }
  return { steps, totalBytes };
}

/** The binding checks of a 2-D leaf (uploadLinear's, made before anything is allocated), and kv_b_proj's rules. */
function checkLinear(gpu: GpuContext, ckpt: Checkpoint, leaf: CheckedTensor): void {
  const { name, slot } = leaf.spec;
  const [rows, cols] = leaf.spec.shape as [number, number];
  const format = leaf.format;
  if (format === 'f32') throw new FormatError('an F32 matrix: the GPU linears take FP8, BF16 or INT4', ckpt.name, name);
  if (slot === 'kvB' && format === 'int4') {
    // the MLA attention kernels (mla_absorb_q / mla_absorb_v and their _bf16 twins, ops/attention.ts) read it in
    // place as FP8 or BF16 codes and have no INT4 instance (every other dense linear may be INT4)
    throw new FormatError('is stored INT4 (pack-quantized); the GPU attention kernels read kv_b_proj as FP8 or BF16 only (`webmoe convert --to int4-experts` stores it BF16; the cpu backend reads it as it is)', ckpt.name, name);
  }
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  if (format === 'int4') {
    const groupSize = ckpt.config.derived.int4GroupSize;
    if (groupSize !== INT4_GROUP) {
      throw new FormatError(`is stored INT4 with group size ${groupSize}; the GPU kernels take group size ${INT4_GROUP} only (Kimi's, docs/model.md §13)`, undefined, name);
    }
    const scaleBytes = rows * scaleColumns('int4', cols) * 4;
    if (scaleBytes > limit) {
      throw new DeviceError(`tensor '${name}': its INT4 group scales need ${scaleBytes} bytes in one binding, more than maxStorageBufferBindingSize ${limit}`, {
        limit: 'maxStorageBufferBindingSize',
        value: limit,
        required: scaleBytes,
      });
    }
  }
  const strideWords = rowStrideWords(format, cols);
  const per = rowsPerChunk(gpu, strideWords * 4, rows, name);
  if (slot === 'kvB' && per < rows) {
    const bindingLimit = gpu.limits.maxStorageBufferBindingSize;
    throw new DeviceError(`tensor '${name}' (${rows}x${cols}) exceeds maxStorageBufferBindingSize ${bindingLimit}: the attention kernels bind it whole`, {
      limit: 'maxStorageBufferBindingSize',
      value: bindingLimit,
      required: rows * strideWords * 4,
    });
  }
}

/**
 * An expert group's stacks: one format for all its leaves, shards of whole experts that each fit a binding (the
 * routed experts; a shared expert is one shard), each stack checked against the binding limit.
 */
function planExpertGroup(
  gpu: GpuContext, ckpt: Checkpoint, role: 'routed_expert' | 'shared_expert', layer: number, module: string, count: number, leaves: CheckedTensor[],
): ExpertGroupPlan {
  const stored = oneFormat(ckpt.name, leaves);
  const first = leaves[0]!.spec.name;
  if (stored === 'f32') throw new FormatError('an F32 expert weight: the expert kernels take FP8, BF16 or INT4', ckpt.name, first);
  const format: ExpertFormat = stored;
  if (format === 'int4' && ckpt.config.derived.int4GroupSize !== INT4_GROUP) {
    throw new FormatError(`INT4 group size ${ckpt.config.derived.int4GroupSize}: the GPU expert kernels take group_size ${INT4_GROUP} (as Kimi ships)`, ckpt.name, first);
  }
  const shapeOf = (slot: 'gate' | 'down'): [number, number] => leaves.find((l) => l.spec.slot === slot)!.spec.shape as [number, number];
  const [F, D] = shapeOf('gate');
  const gu1 = stackLayout(format, 2, F, D);
  const dn1 = stackLayout(format, 1, D, F);
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const ranges = role === 'routed_expert' ? expertShards(count, Math.max(gu1.codeBytes, dn1.codeBytes), limit, module) : [{ first: 0, count: 1 }];
  const stack = (label: string, L: Fp8StackLayout): StackPlan => {
    const bindingLimit = gpu.limits.maxStorageBufferBindingSize;
    if (L.codeBytes > bindingLimit) {
      throw new DeviceError(`tensor '${label}' needs ${L.codeBytes} bytes in one binding, more than maxStorageBufferBindingSize ${bindingLimit}`, {
        limit: 'maxStorageBufferBindingSize',
        value: bindingLimit,
        required: L.codeBytes,
      });
    }
    return { label, layout: L };
  };
  const shards = ranges.map((r) => {
    const name = role === 'routed_expert' ? `${module}[${r.first}:${r.first + r.count}]` : module;
    return { ...r, gateUp: stack(`${name}.gate_up`, stackLayout(format, 2 * r.count, F, D)), down: stack(`${name}.down`, stackLayout(format, r.count, D, F)) };
  });
  return { role, layer, format, leaves, perShard: ranges[0]!.count, shards };
}

/**
 * Reads and uploads every weight the forward pass uses, walking the weight tree. `routedExperts: false` (expert
 * offloading) leaves the routed experts out (every MoE layer gets no shards; engine/expert-offload.ts supplies
 * slots). `onProgress` gets the stored bytes read so far after each leaf (phase 'weights').
 */
export async function uploadWeights(gpu: GpuContext, ckpt: Checkpoint, onProgress?: (p: LoadProgress) => void, opts: { routedExperts?: boolean } = {}): Promise<GpuWeights> {
  const c = ckpt.config;
  // every refusal before anything is allocated
  const plan = planUpload(gpu, ckpt, opts.routedExperts ?? true);
  const buffers: GPUBuffer[] = [];
  const linears: GpuLinear[] = [];
  let bytes = 0;
  let loadedBytes = 0;
  const done = (leaf: CheckedTensor): void => {
    loadedBytes += storedBytes(leaf);
    onProgress?.({ phase: 'weights', loadedBytes, totalBytes: plan.totalBytes });
  };
  const destroyAll = (): void => {
    for (const w of linears) destroyLinear(w);
    for (const b of buffers) b.destroy();
  };

  try {
    const globals: Unplaced<GpuGlobals> = { embed: null, norm: null, lmHead: null };
    const layers = c.derived.moeLayers.map((moe) => emptyGpuLayer(moe));
    let pendingQA: { leaf: CheckedTensor; host: HostLinear } | null = null;
    for (const step of plan.steps) {
      if (step.kind === 'experts') {
        const g = step.group;
        const up = await uploadExpertGroup(gpu, ckpt, g, buffers, done);
        bytes += up.bytes;
        const experts = layers[g.layer]!.moe!.experts;
        if (g.role === 'routed_expert') experts.shards = up.shards;
        else experts.shared = { gateUp: up.shards[0]!.gateUp, down: up.shards[0]!.down };
        continue;
      }
      const leaf = step.leaf;
      const s = leaf.spec;
      if (s.slot === 'qA') {
        // held until the layer's kv_a_proj_with_mqa arrives (the next linear of the layer): the two are stacked
        pendingQA = { leaf, host: await readMatrix(ckpt, leaf) };
        done(leaf);
        continue;
      }
      if (s.slot === 'kvA' && pendingQA) {
        const qa = pendingQA;
        pendingQA = null;
        const kv = await readMatrix(ckpt, leaf);
        const stacked = stackLinears(qa.host, kv);
        const layer = layers[s.layer]!;
        if (stacked && fitsOneChunk(gpu, stacked.w)) {
          const w = uploadLinear(gpu, `model.layers.${s.layer}.self_attn.qkv_a_proj`, stacked.w);
          linears.push(w);
          bytes += w.bytes;
          layer.qkvA = { w, qRows: qa.host.rows, kvRow: stacked.bRow };
        } else {
          for (const [l, host] of [[qa.leaf, qa.host], [leaf, kv]] as const) {
            const w = uploadLinear(gpu, l.spec.name, host);
            linears.push(w);
            bytes += w.bytes;
            place(globals, layers, l.spec, w);
          }
        }
        done(leaf);
        continue;
      }
      let value: GpuLinear | GPUBuffer;
      if (s.shape.length === 2) {
        // a matrix as stored: FP8, BF16 or INT4 (GpuLinear 'int4', run by fp8_gemv_wide_int4, ops/linear.ts)
        const w = uploadLinear(gpu, s.name, await readMatrix(ckpt, leaf));
        linears.push(w);
        bytes += w.bytes;
        value = w;
      } else {
        const data = await readF32(ckpt, leaf);
        const b = createBuffer(gpu, data.byteLength, s.name);
        buffers.push(b);
        writeBuffer(gpu, b, 0, data);
        bytes += b.size;
        value = b;
      }
      place(globals, layers, s, value);
      done(leaf);
    }
    if (pendingQA) throw new Error(`'${pendingQA.leaf.spec.name}' has no kv_a_proj_with_mqa after it to be stacked with`);
    return { ...(globals as GpuGlobals), layers, bytes, destroy: destroyAll };
  } catch (err) {
    destroyAll();
    throw err;
  }
}

/** Whether a stacked matrix fits one storage binding (else its two parts are uploaded apart, each chunked as needed). */
function fitsOneChunk(gpu: GpuContext, w: HostLinear): boolean {
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  return w.rows * rowStrideWords(w.format, w.cols) * 4 <= limit;
}

/** A 2-D leaf as the host holds it: a linear as stored, or a BF16 matrix (embed, lm_head, router). */
async function readMatrix(ckpt: Checkpoint, leaf: CheckedTensor): Promise<HostLinear> {
  if (leaf.spec.kind === 'linear') return readStoredLinear(ckpt, leaf);
  const [rows, cols] = leaf.spec.shape as [number, number];
  return { format: 'bf16', rows, cols, data: asUint16(await readTensorBytes(leaf.weight)) };
}

/**
 * Creates an expert group's stacks and writes each leaf into its matrix: expert e of the shard starting at
 * `first` has its gate at gateUp matrix 2(e - first), its up at 2(e - first) + 1, its down at down matrix
 * e - first. One matrix at a time through packStack (offload/expert-source.ts, the one host-side packer of expert
 * stacks). Returns the shards' buffers and the GPU bytes they hold.
 */
async function uploadExpertGroup(
  gpu: GpuContext, ckpt: Checkpoint, g: ExpertGroupPlan, buffers: GPUBuffer[], done: (leaf: CheckedTensor) => void,
): Promise<{ shards: ExpertShardBuffers[]; bytes: number }> {
  let bytes = 0;
  const alloc = (p: StackPlan): { plan: StackPlan; codes: GPUBuffer; scales: GPUBuffer | null; buffers: WeightBuffers } => {
    const codes = createBuffer(gpu, p.layout.codeBytes, p.label);
    buffers.push(codes);
    const scales = g.format !== 'bf16' ? createBuffer(gpu, Math.max(16, p.layout.scaleBytes), `${p.label}_${g.format === 'fp8' ? 'scale_inv' : 'scale'}`) : null;
    if (scales) buffers.push(scales);
    bytes += codes.size + (scales?.size ?? 0);
    const wb: WeightBuffers = g.format === 'int4' ? { format: 'int4', codes, scales: scales! } : scales ? { codes, scales } : { format: 'bf16', codes };
    return { plan: p, codes, scales, buffers: wb };
  };
  const stacks = g.shards.map((s) => ({ first: s.first, gateUp: alloc(s.gateUp), down: alloc(s.down) }));
  for (const leaf of g.leaves) {
    const s = leaf.spec;
    const e = s.expert ?? 0;
    const shard = stacks[Math.floor(e / g.perShard)]!;
    const local = e - shard.first;
    if (s.slot !== 'gate' && s.slot !== 'up' && s.slot !== 'down') throw new Error(`no place in an expert stack for the ${s.role} leaf '${s.name}' (slot ${s.slot})`);
    const [stack, m] = s.slot === 'down' ? [shard.down, local] : [shard.gateUp, 2 * local + (s.slot === 'up' ? 1 : 0)];
    const L = stack.plan.layout;
    const packed = packStack(g.format, [await readStoredLinear(ckpt, leaf)], L.rows, L.cols, s.name);
    writeBuffer(gpu, stack.codes, m * L.matrixWords * 4, packed.codes);
    if (stack.scales) writeBuffer(gpu, stack.scales, m * L.matrixScales * 4, packed.scales);
    done(leaf);
  }
  return { shards: g.shards.map((s, i) => ({ first: s.first, count: s.count, gateUp: stacks[i]!.gateUp.buffers, down: stacks[i]!.down.buffers })), bytes };
}
