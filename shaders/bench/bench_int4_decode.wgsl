// bench_int4_decode.wgsl — the INT4 twin of bench_fp8_decode.wgsl, a ceiling for `webmoe bench`: how fast this
// device turns INT4 codes into multiply-adds when memory is not involved. Each invocation makes 4 words (32 codes)
// per iteration from 4 independent LCG streams in registers, decodes them the way the engine's wide INT4 expert
// kernels do (moe_*_id_wide_int4: include/int4x8.wgsl, u - 8 exactly through the f32 bit trick) and accumulates
// the dot products with x into 4 chains.
// weights/s from this kernel, at half a byte per weight, is the GB/s of packed INT4 an INT4 GEMV could reach if
// its loads were free.
//
// Bindings (group 0):
//   0  sink    array<f32>  [threads]   written: one value per invocation, so no decode is dead code
//   1  params  uniform     { iters: u32 (loop trips), seed: u32 }
// Workgroup: WG invocations (override). Dispatch: any grid along x; weights = 32 * iters * WG * num_workgroups.x.
// CPU counterpart: none (a micro-benchmark; the decode itself is tested with the INT4 expert kernels).

override WG: u32 = 64u;

struct Params {
  iters: u32, // loop trips
  seed: u32,  // keeps the codes unknown to the compiler
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> sink: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

// #include "int4x8.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var w0 = params.seed ^ (gid.x * 2654435761u);
  var w1 = w0 ^ 0x9e3779b9u;
  var w2 = w0 ^ 0x7f4a7c15u;
  var w3 = w0 ^ 0x94d049bbu;
  let lo = vec4<f32>(0.5, -0.25, 0.125, 1.0) * (1.0 + f32(gid.x & 7u) * 0.01);
  let hi = lo.wzyx;
  var a0 = 0.0;
  var a1 = 0.0;
  var a2 = 0.0;
  var a3 = 0.0;
  for (var i = 0u; i < params.iters; i++) {
    w0 = w0 * 1664525u + 1013904223u;
    w1 = w1 * 1664525u + 1013904223u;
    w2 = w2 * 1664525u + 1013904223u;
    w3 = w3 * 1664525u + 1013904223u;
    a0 += udot8(w0, lo, hi);
    a1 += udot8(w1, hi, lo);
    a2 += udot8(w2, lo, hi);
    a3 += udot8(w3, hi, lo);
  }
  sink[gid.x] = (a0 + a1) + (a2 + a3);
}
