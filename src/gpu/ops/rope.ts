/**
 * RoPE launchers (shaders/rope.wgsl, docs/model.md §5): the cos/sin tables are computed on the CPU once per
 * session (src/model/rope.ts ropeTables, docs/model.md §5.6: WGSL sin/cos are too coarse) and uploaded as one buffer
 * [ctx, P, 2] of (cos, sin); the kernel only multiplies.
 *   ropeInPlace  rotates `heads` segments of Dr values per token inside one buffer (q_pe inside q)
 *   ropeCopy     reads segments from `src` and writes the rotated values to `dst` (k_pe into the latent cache;
 *                shaders/rope_copy.wgsl)
 *   mlaKvRope    MLA's key/query tail in one dispatch (shaders/mla_kv_rope.wgsl): kv_a_layernorm of the latent part
 *                of kv_a's output into the cache, k_pe rotated into the cache, q_pe rotated in place; bit-identical to
 *                rmsNorm + ropeCopy + ropeInPlace of the same chunk
 */
import { ShapeError } from '../../errors.js';
import { createBuffer, writeBuffer, type UniformArena } from '../buffers.js';
import type { GpuContext } from '../device.js';
import type { Kernels } from '../kernels.js';
import { requireBytes, requireInt, type Buf } from './binding.js';

/** The interleaved (cos, sin) table [positions, P, 2] of positions 0 .. positions-1 on the GPU. */
export interface GpuRopeTable {
  buffer: GPUBuffer;
  positions: number;
  pairs: number;
}

/**
 * Uploads cos/sin tables [positions, P] (model/rope.ts ropeTables of positions 0 .. positions-1) interleaved as
 * [positions, P, 2]. The GPU layer takes the tables, not the model's RoPE config: it knows no model.
 */
export function uploadRopeTable(gpu: GpuContext, t: { cos: ArrayLike<number>; sin: ArrayLike<number>; pairs: number }, positions: number): GpuRopeTable {
  if (t.cos.length !== positions * t.pairs || t.sin.length !== positions * t.pairs) {
    throw new ShapeError(`rope table: ${t.cos.length} cos / ${t.sin.length} sin values, expected ${positions} positions x ${t.pairs} pairs`, 'rope', positions * t.pairs, t.cos.length);
  }
  const cs = new Float32Array(positions * t.pairs * 2);
  for (let i = 0; i < positions * t.pairs; i++) {
    cs[2 * i] = t.cos[i]!;
    cs[2 * i + 1] = t.sin[i]!;
  }
  const buffer = createBuffer(gpu, cs.byteLength, 'rope.cos_sin');
  writeBuffer(gpu, buffer, 0, cs);
  return { buffer, positions, pairs: t.pairs };
}

export interface RopeSegments {
  buf: Buf;
  /** element offset of token 0, segment 0 */
  offset: number;
  tokenStride: number;
  headStride: number;
}

export interface RopeArgs {
  table: GpuRopeTable;
  tokens: number;
  /** position of token 0 */
  pos0: number;
  heads: number;
}

function check(k: Kernels, a: RopeArgs, seg: RopeSegments, arg: string, name: string): void {
  requireInt(a.tokens, 1, name, 'tokens');
  requireInt(a.heads, 1, name, 'heads');
  requireInt(a.pos0, 0, name, 'pos0');
  if (a.pos0 + a.tokens > a.table.positions) {
    throw new ShapeError(`${name}: positions ${a.pos0}..${a.pos0 + a.tokens - 1} exceed the table's ${a.table.positions}`, 'pos0', a.table.positions, a.pos0 + a.tokens);
  }
  const dr = 2 * a.table.pairs;
  requireBytes(k.gpu, seg.buf, (seg.offset + (a.tokens - 1) * seg.tokenStride + (a.heads - 1) * seg.headStride + dr) * 4, name, arg);
}

export function ropeInPlace(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: RopeArgs & { x: RopeSegments }): void {
  check(k, a, a.x, 'x', 'rope');
  const WG = 64;
  k.run(pass, arena, 'rope', {
    constants: { WG },
    bind: { dst: a.x.buf, cs: a.table.buffer },
    params: { pairs: a.table.pairs, heads: a.heads, pos0: a.pos0, dstOffset: a.x.offset, dstTokenStride: a.x.tokenStride, dstHeadStride: a.x.headStride, srcOffset: 0, srcTokenStride: 0, srcHeadStride: 0 },
    grid: [Math.ceil((a.heads * a.table.pairs) / WG), a.tokens],
  });
}

export function ropeCopy(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: RopeArgs & { src: RopeSegments; dst: RopeSegments }): void {
  const name = 'rope_copy';
  check(k, a, a.src, 'src', name);
  check(k, a, a.dst, 'dst', name);
  const sb = 'buffer' in a.src.buf ? a.src.buf.buffer : a.src.buf;
  const db = 'buffer' in a.dst.buf ? a.dst.buf.buffer : a.dst.buf;
  if (sb === db) throw new ShapeError(`${name}: src and dst must be different buffers (use ropeInPlace)`, 'dst');
  const WG = 64;
  k.run(pass, arena, name, {
    constants: { WG },
    bind: { dst: a.dst.buf, cs: a.table.buffer, src: a.src.buf },
    params: {
      pairs: a.table.pairs, heads: a.heads, pos0: a.pos0, dstOffset: a.dst.offset, dstTokenStride: a.dst.tokenStride, dstHeadStride: a.dst.headStride,
      srcOffset: a.src.offset, srcTokenStride: a.src.tokenStride, srcHeadStride: a.src.headStride,
    },
    grid: [Math.ceil((a.heads * a.table.pairs) / WG), a.tokens],
  });
}

export interface MlaKvRopeArgs extends Omit<RopeArgs, 'heads'> {
  /** kv_a's output [T, kvStride] at kvOffset: [c (R) | k_pe (Dr)] per token; never the same buffer as cache or q */
  kv: Buf;
  kvOffset: number;
  kvStride: number;
  /** kv_a_layernorm's weight [R] */
  norm: Buf;
  eps: number;
  /** R: latent columns of a kv row */
  rank: number;
  /** the cache rows of positions pos0 .. pos0+T-1: [T, cacheStride] at cacheOffset */
  cache: Buf;
  cacheOffset: number;
  cacheStride: number;
  /** q's rope segments (rotated in place): token t, head h at offset + t·tokenStride + h·headStride */
  q: RopeSegments;
  heads: number;
}

/**
 * One dispatch for MLA's key/query tail of a chunk (shaders/mla_kv_rope.wgsl): cache[t, :R] = RMSNorm(kv[t, :R]),
 * cache[t, R:] = RoPE(kv[t, R:]), RoPE(q_pe) in place. Replaces rmsNorm + ropeCopy + ropeInPlace (bit-identical).
 */
export function mlaKvRope(k: Kernels, pass: GPUComputePassEncoder, arena: UniformArena, a: MlaKvRopeArgs): void {
  const name = 'mla_kv_rope';
  const dr = 2 * a.table.pairs;
  requireInt(a.rank, 1, name, 'rank');
  if (a.kvStride < a.rank + dr || a.cacheStride < a.rank + dr) {
    throw new ShapeError(`${name}: strides (kv ${a.kvStride}, cache ${a.cacheStride}) must be >= R + Dr = ${a.rank + dr}`, 'stride', a.rank + dr, [a.kvStride, a.cacheStride]);
  }
  if (!(a.eps > 0)) throw new ShapeError(`${name}: eps must be > 0, got ${a.eps}`, 'eps');
  check(k, a, { buf: a.kv, offset: a.kvOffset + a.rank, tokenStride: a.kvStride, headStride: 0 }, 'kv', name);
  check(k, a, { buf: a.cache, offset: a.cacheOffset + a.rank, tokenStride: a.cacheStride, headStride: 0 }, 'cache', name);
  check(k, a, a.q, 'q', name);
  requireBytes(k.gpu, a.norm, a.rank * 4, name, 'norm');
  const buf = (b: Buf) => ('buffer' in b ? b.buffer : b);
  const kvb = buf(a.kv);
  if (kvb === buf(a.cache) || kvb === buf(a.q.buf) || buf(a.cache) === buf(a.q.buf)) {
    throw new ShapeError(`${name}: kv, cache and q must be three different buffers (WebGPU forbids aliasing a writable binding)`, 'cache');
  }
  k.run(pass, arena, name, {
    constants: { WG: 64 },
    bind: { src: a.kv, weight: a.norm, cache: a.cache, q: a.q.buf, cs: a.table.buffer },
    params: {
      rank: a.rank, pairs: a.table.pairs, heads: a.heads, pos0: a.pos0, kvOffset: a.kvOffset, kvStride: a.kvStride,
      cacheOffset: a.cacheOffset, cacheStride: a.cacheStride, qOffset: a.q.offset, qTokenStride: a.q.tokenStride, qHeadStride: a.q.headStride, eps: a.eps,
    },
    grid: [a.tokens],
  });
}
