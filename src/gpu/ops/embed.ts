/**
 * Embedding gather (shaders/embed_bf16.wgsl, docs/model.md §4.1): out[t] = bf16 table row tokens[t], widened
 * exactly. The table is a BF16 GpuLinear (same upload layout and row chunks as lm_head), so a vocabulary larger
 * than one storage binding is gathered with one dispatch per chunk, each writing the tokens it holds.
 */
import { ShapeError } from '../../errors.js';
import type { UniformArena } from '../buffers.js';
import type { Kernels } from '../kernels.js';
import { requireBytes, requireInt, type Buf } from './binding.js';
import type { GpuLinear } from './linear.js';

export interface EmbedArgs {
  /** BF16 [V, D] */
  table: GpuLinear;
  /** u32 token ids [T] at tokOffset (checked < V on the CPU) */
  tokens: Buf;
  tokOffset?: number;
  count: number;
  /** [T, D] f32 at outOffset */
  out: Buf;
  outOffset?: number;
}

export function embedTokens(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: EmbedArgs): void {
  const name = 'embed_bf16';
  if (a.table.format !== 'bf16') throw new ShapeError(`${name}: the table '${a.table.name}' must be BF16, found ${a.table.format}`, a.table.name, 'bf16', a.table.format);
  requireInt(a.count, 1, name, 'count');
  const D = a.table.cols;
  const tokOffset = a.tokOffset ?? 0;
  const outOffset = a.outOffset ?? 0;
  requireBytes(k.gpu, a.tokens, (tokOffset + a.count) * 4, name, 'tokens');
  requireBytes(k.gpu, a.out, (outOffset + a.count * D) * 4, name, 'out');
  const WG = 64;
  for (const c of a.table.chunks) {
    k.run(pass, arena, name, {
      constants: { WG },
      bind: { table: c.codes, tokens: a.tokens, out: a.out },
      params: { D, stride: a.table.strideWords, rowStart: c.rowStart, chunkRows: c.rows, outOffset, tokOffset },
      grid: [Math.ceil(D / WG), a.count],
    });
  }
}
