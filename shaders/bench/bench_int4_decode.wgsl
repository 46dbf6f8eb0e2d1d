// bench_int4_decode.wgsl — the INT4 twin of bench_fp8_decode.wgsl, a ceiling for `webmoe bench`: how fast this
// device turns INT4 codes into multiply-adds when memory is not involved. Each invocation makes 4 words (32 codes)
// per iteration from 4 independent LCG streams in registers, decodes them the way the engine's wide INT4 expert
// kernels do (moe_*_id_wide_int4: include/int4x8.wgsl, u - 8 exactly through the f32 bit trick) and accumulates
// the dot products with x into 4 chains.
// weights/s from this kernel, at half a byte per weight, is the GB/s of packed INT4 an INT4 GEMV could reach if
// its loads were free.
//
// Bindings (group 0), include/bench_lcg.wgsl:
//   0  sink    array<f32>  [threads]   written: one value per invocation, so no decode is dead code
//   1  params  uniform     { iters: u32 (loop trips), seed: u32 }
// Workgroup: WG invocations (override). Dispatch: any grid along x; weights = 32 * iters * WG * num_workgroups.x.
// CPU counterpart: none (a micro-benchmark; the decode itself is tested with the INT4 expert kernels).

override WG: u32 = 64u;

// #include "bench_lcg.wgsl"
// #include "int4x8.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var w = lcg_start(gid.x);
  let lo = vec4<f32>(0.5, -0.25, 0.125, 1.0) * (1.0 + f32(gid.x & 7u) * 0.01);
  let hi = lo.wzyx;
  var a = vec4<f32>(0.0); // one chain per stream
  for (var i = 0u; i < params.iters; i++) {
    w = lcg_next(w);
    a.x += udot8(w.x, lo, hi);
    a.y += udot8(w.y, hi, lo);
    a.z += udot8(w.z, lo, hi);
    a.w += udot8(w.w, hi, lo);
  }
  sink[gid.x] = (a.x + a.y) + (a.z + a.w);
}
