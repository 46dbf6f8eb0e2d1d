/**
 * Where offloaded routed experts come from: one interface for every tier below the GPU slots (docs/offloading.md).
 *
 * An ExpertSource hands out one routed expert of one MoE layer at a time, already in the GPU's stack layout
 * (gpu/ops/fp8-layout.ts), so the engine copies the four arrays straight into a slot (queue.writeBuffer at the
 * slot's offset) with no conversion on the miss path:
 *   gateUpCodes   stackLayout(format, 2, F, D).codeBytes: the expert's gate matrix then its up matrix, padded rows
 *   gateUpScales  stackLayout(format, 2, F, D).scaleBytes (FP8 block scales / INT4 group scales as f32; BF16: 0 bytes)
 *   downCodes     stackLayout(format, 1, D, F).codeBytes
 *   downScales    stackLayout(format, 1, D, F).scaleBytes
 *
 * Implementations: checkpointExpertSource (this file: the six tensors of an expert read through the checkpoint's
 * byte sources: positioned file reads in Node, HTTP Range requests in the browser), memoryExpertSource (this file:
 * experts held in host memory), throttled.ts (any source behind a paced link: bytes/s cap and latency per request,
 * for tests and benchmarks) and the page's OPFS store (web/).
 *
 * Legend: D hidden, F moe_intermediate_size.
 */
import { FormatError, InputError } from '../errors.js';
import { expertRowStrideWords, INT4_GROUP, stackLayout, type ExpertFormat } from '../gpu/ops/fp8-layout.js';
import { leafAt, readStoredLinear, type Checkpoint, type StoredLinear } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';

/** One routed expert in the GPU stack layout (see the header). */
export interface ExpertBytes {
  gateUpCodes: Uint8Array;
  gateUpScales: Uint8Array;
  downCodes: Uint8Array;
  downScales: Uint8Array;
}

/** The sizes of one expert's four arrays, and their sum (the bytes one upload moves). */
export interface ExpertShape {
  format: ExpertFormat;
  gateUpCodes: number;
  gateUpScales: number;
  downCodes: number;
  downScales: number;
  total: number;
}

export interface ExpertSource {
  /** A name for messages (a path, a URL, 'memory'). */
  readonly name: string;
  /** The expert format and array sizes every read returns. */
  readonly shape: ExpertShape;
  /**
   * Expert `expert` of decoder layer `layer` (a MoE layer). Rejects with a typed error naming what failed. The
   * arrays may be views of a buffer the source reuses once the caller's task ends (the page's OPFS store reads
   * into one): copy them, or upload them, before awaiting anything else.
   */
  read(layer: number, expert: number): Promise<ExpertBytes>;
  close(): Promise<void>;
}

/** The array sizes of one expert of `format` at the config's widths. */
export function expertShape(c: ModelConfig, format: ExpertFormat): ExpertShape {
  const gu = stackLayout(format, 2, c.moe_intermediate_size, c.hidden_size);
  const dn = stackLayout(format, 1, c.hidden_size, c.moe_intermediate_size);
  const s = { gateUpCodes: gu.codeBytes, gateUpScales: gu.scaleBytes, downCodes: dn.codeBytes, downScales: dn.scaleBytes };
  return { format, ...s, total: s.gateUpCodes + s.gateUpScales + s.downCodes + s.downScales };
}

/** Checks that `b` has the sizes of `shape` (a source that returns anything else is a bug or a corrupt store). */
export function checkExpertBytes(b: ExpertBytes, shape: ExpertShape, what: string): ExpertBytes {
  for (const k of ['gateUpCodes', 'gateUpScales', 'downCodes', 'downScales'] as const) {
    if (b[k].byteLength !== shape[k]) throw new FormatError(`${k} has ${b[k].byteLength} bytes, expected ${shape[k]}`, what);
  }
  return b;
}

/**
 * The codes of matrices stored as `format` in the stack layout: matrix m's rows at byte m · matrixWords · 4, each
 * row padded to rowStrideWords words (zeros); scales concatenated as f32. The one host-side packer of expert
 * stacks: the whole-layer upload (engine/weights-gpu.ts) and the expert sources both write this.
 */
export function packStack(format: ExpertFormat, mats: readonly StoredLinear[], rows: number, cols: number, what: string): { codes: Uint8Array; scales: Uint8Array } {
  const L = stackLayout(format, mats.length, rows, cols);
  const codes = new Uint8Array(L.codeBytes);
  const scales = new Uint8Array(L.scaleBytes);
  const strideBytes = expertRowStrideWords(format, cols) * 4;
  mats.forEach((w, m) => {
    if (w.format !== format || w.rows !== rows || w.cols !== cols) {
      throw new FormatError(`expected ${format.toUpperCase()} [${rows}, ${cols}] for the expert stack, found ${w.format.toUpperCase()} [${w.rows}, ${w.cols}]`, what);
    }
    if (w.format === 'int4' && w.groupSize !== INT4_GROUP) {
      throw new FormatError(`INT4 group size ${w.groupSize}: the GPU expert kernels take group_size ${INT4_GROUP} (as Kimi ships)`, what);
    }
    const src = new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
    const rowBytes = w.format === 'fp8' ? cols : w.format === 'int4' ? Math.ceil(cols / 8) * 4 : cols * 2;
    const base = m * L.matrixWords * 4;
    if (rowBytes === strideBytes) codes.set(src, base);
    else for (let r = 0; r < rows; r++) codes.set(src.subarray(r * rowBytes, (r + 1) * rowBytes), base + r * strideBytes);
    if (w.format !== 'bf16') {
      const s = w.scale;
      scales.set(new Uint8Array(s.buffer, s.byteOffset, s.byteLength), m * L.matrixScales * 4);
    }
  });
  return { codes, scales };
}

/** The GPU format of a layer's routed experts: the stored format of expert 0's gate_proj. */
export function routedExpertFormat(ckpt: Checkpoint, layer: number): ExpertFormat {
  const leaf = leafAt(ckpt, { role: 'routed_expert', layer, expert: 0, slot: 'gate' });
  if (leaf.format === 'f32') throw new FormatError('an F32 expert weight: the expert kernels take FP8, BF16 or INT4', ckpt.name, leaf.spec.name);
  return leaf.format;
}

/**
 * Experts read from the checkpoint itself (its six tensors: gate/up/down codes and scales; the leaves found by their
 * position in the weight tree, model/checkpoint.ts leafAt), through the checkpoint's byte sources: positioned
 * reads of the safetensors files in Node, Range requests for a URL.
 */
export function checkpointExpertSource(ckpt: Checkpoint): ExpertSource {
  const c = ckpt.config;
  const firstMoe = c.derived.moeLayers.findIndex(Boolean);
  if (firstMoe < 0) throw new InputError(`${ckpt.name} has no MoE layers: nothing to offload`, 'gpuMemory');
  const format = routedExpertFormat(ckpt, firstMoe);
  const q = c.quantization_config;
  if (format === 'int4' && q?.quant_method === 'compressed-tensors' && q.group_size !== INT4_GROUP) {
    // refused here, not at the first miss: every read would fail
    throw new FormatError(`INT4 group size ${q.group_size}: the GPU expert kernels take group_size ${INT4_GROUP} (as Kimi ships)`, ckpt.name);
  }
  const shape = expertShape(c, format);
  const D = c.hidden_size;
  const F = c.moe_intermediate_size;
  return {
    name: ckpt.name,
    shape,
    async read(layer, expert) {
      checkExpertId(c, layer, expert);
      const leaves = (['gate', 'up', 'down'] as const).map((slot) => leafAt(ckpt, { role: 'routed_expert', layer, expert, slot }));
      const [gate, up, down] = await Promise.all(leaves.map((l) => readStoredLinear(ckpt, l)));
      const gu = packStack(format, [gate!, up!], F, D, `${leaves[0]!.spec.name} + ${leaves[1]!.spec.name}`);
      const dn = packStack(format, [down!], D, F, leaves[2]!.spec.name);
      return { gateUpCodes: gu.codes, gateUpScales: gu.scales, downCodes: dn.codes, downScales: dn.scales };
    },
    async close() {},
  };
}

/** Experts held in host memory (tests, benchmarks; a host-RAM tier). `experts.get(layer)![e]` is expert e of `layer`. */
export function memoryExpertSource(shape: ExpertShape, experts: ReadonlyMap<number, readonly ExpertBytes[]>, name = 'memory'): ExpertSource {
  return {
    name,
    shape,
    async read(layer, expert) {
      const b = experts.get(layer)?.[expert];
      if (!b) throw new InputError(`${name}: no expert ${expert} of layer ${layer}`, 'expert');
      return b;
    },
    async close() {},
  };
}

/** Reads every routed expert of `source` into memory (a memoryExpertSource with the same bytes). */
export async function loadExpertsIntoMemory(c: ModelConfig, source: ExpertSource): Promise<ExpertSource> {
  const map = new Map<number, ExpertBytes[]>();
  for (let l = 0; l < c.num_hidden_layers; l++) {
    if (!c.derived.moeLayers[l]) continue;
    const list: ExpertBytes[] = [];
    for (let e = 0; e < c.n_routed_experts; e++) {
      const b = checkExpertBytes(await source.read(l, e), source.shape, `${source.name} layer ${l} expert ${e}`);
      // copies: a source may reuse its buffers (ExpertSource.read)
      list.push({ gateUpCodes: b.gateUpCodes.slice(), gateUpScales: b.gateUpScales.slice(), downCodes: b.downCodes.slice(), downScales: b.downScales.slice() });
    }
    map.set(l, list);
  }
  return memoryExpertSource(source.shape, map, `memory(${source.name})`);
}

/** A typed error for a layer that is not a MoE layer or an expert id out of range. */
export function checkExpertId(c: ModelConfig, layer: number, expert: number): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= c.num_hidden_layers || !c.derived.moeLayers[layer]) {
    throw new InputError(`layer ${layer} is not a MoE layer of this model`, 'layer');
  }
  if (!Number.isInteger(expert) || expert < 0 || expert >= c.n_routed_experts) {
    throw new InputError(`expert id ${expert} is outside 0..${c.n_routed_experts - 1}`, 'expert');
  }
}
