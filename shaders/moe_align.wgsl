// moe_align.wgsl — groups the (token, slot) pairs of a chunk by expert, on the GPU (vLLM's
// moe_align_block_size, docs/kernels.md §3.5), so the grouped GEMMs read each expert's weights once per step:
//   count pairs per expert → segment of each expert padded to BM rows (blocks) → blockExpert[b] → scatter
//   pair ids p = t·Ks + k into their expert's segment (padding rows hold 0xFFFFFFFF) → indirect grids.
// The shared expert (hasShared) is expert E with every token at slot K; pair ids use the layer's Ks either way.
// Order inside a segment follows atomics and is not deterministic, but every pair's result is computed alone, so
// the outputs are. Ids ≥ E are skipped (expert offloading marks the pairs outside a wave so).
//
// Bindings (group 0):
//   0  ids     array<u32>  [T, K]        selected experts (moe_router.wgsl)
//   1  plan    array<u32>  written: [0, pb): blockExpert per BM-row block; [pb, pb + blocks·BM): pair ids
//   2  args    array<u32>  [8] written: (blocks, tilesGU, 1) at 0 and (blocks, tilesDown, 1) at 4: the
//                          dispatchWorkgroupsIndirect grids of moe_gateup_grouped / moe_down_grouped
//   3  params  uniform     Params
// Workgroup: WG threads (override, default 256), ONE workgroup: dispatch (1). E + 1 ≤ MAX_E1 (override).
// CPU counterpart: none needed (a permutation); moe_*_grouped tests check the end result against
// model/reference.ts moe.

override WG: u32 = 256u;

// capacity of the per-expert arrays (≥ E + 1), E + 1 rounded up by the launcher (SwiftShader compile time
// grows with array sizes)
override MAX_E1: u32 = 65u;
const SENTINEL: u32 = 0xFFFFFFFFu;

struct Params {
  T: u32,
  K: u32,
  E: u32,
  hasShared: u32,
  BM: u32,         // rows per block (MOE_BLOCK_M)
  tilesGU: u32,    // ⌈Fmax / 64⌉
  tilesDown: u32,  // ⌈D / 64⌉
  pb: u32,         // offset of the pair ids in plan (= capacity of blockExpert)
  Ks: u32,         // slots per token in the pair ids: K + 1 when the layer has a shared expert, even in a launch
                   // that does not compute it (hasShared = 0: a later wave of expert offloading)
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read_write> plan: array<u32>;
@group(0) @binding(2) var<storage, read_write> args: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> cnt: array<atomic<u32>, MAX_E1>;
var<workgroup> cur: array<atomic<u32>, MAX_E1>;
var<workgroup> off: array<u32, MAX_E1>; // first row of each expert's segment
var<workgroup> nblocks: u32;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  let nE = p.E + p.hasShared;
  let pairs = p.T * p.K;
  let Ks = p.Ks;
  for (var e = lid; e < nE; e += WG) {
    atomicStore(&cnt[e], 0u);
    atomicStore(&cur[e], 0u);
  }
  workgroupBarrier();
  for (var i = lid; i < pairs; i += WG) {
    let e = ids[i];
    if (e < p.E) { atomicAdd(&cnt[e], 1u); }
  }
  workgroupBarrier();
  if (lid == 0u) {
    var b = 0u;
    for (var e = 0u; e < nE; e++) {
      var c = p.T;
      if (e < p.E) { c = atomicLoad(&cnt[e]); }
      off[e] = b * p.BM;
      let nb = (c + p.BM - 1u) / p.BM;
      for (var i = 0u; i < nb; i++) { plan[b + i] = e; }
      b += nb;
    }
    nblocks = b;
    args[0] = b;
    args[1] = p.tilesGU;
    args[2] = 1u;
    args[4] = b;
    args[5] = p.tilesDown;
    args[6] = 1u;
  }
  let rowsUsed = workgroupUniformLoad(&nblocks) * p.BM;
  for (var i = lid; i < rowsUsed; i += WG) { plan[p.pb + i] = SENTINEL; }
  storageBarrier();
  workgroupBarrier();
  for (var i = lid; i < pairs; i += WG) {
    let e = ids[i];
    if (e < p.E) {
      let pos = off[e] + atomicAdd(&cur[e], 1u);
      plan[p.pb + pos] = (i / p.K) * Ks + i % p.K;
    }
  }
  if (p.hasShared != 0u) {
    for (var t = lid; t < p.T; t += WG) { plan[p.pb + off[p.E] + t] = t * Ks + p.K; }
  }
}
