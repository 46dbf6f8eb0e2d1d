// bench_fma.wgsl — the arithmetic ceiling for `webmoe bench`: f32 fused multiply-add throughput.
// Each invocation runs 8 independent vec4 FMA chains for `iters` iterations (8 chains hide the FMA latency;
// vec4 lets SIMD / CPU vector units fill), i.e. 8 * 4 * 2 = 64 FLOP per iteration per invocation.
// The chains contract towards a fixed point (x -> 0.999 x + 0.001), so values stay finite and normal for any
// iteration count (denormals would be slow on CPU adapters and measure the wrong thing).
//
// Bindings (group 0):
//   0  sink    array<f32>  [threads]   written: one value per invocation, so the chains are not dead code
//   1  params  uniform     { iters: u32 (loop trips), seed: f32 }
// Workgroup: WG invocations (override). Dispatch: any grid along x; FLOP = 64 * iters * WG * num_workgroups.x.
// CPU counterpart: none (a micro-benchmark).

override WG: u32 = 64u;

struct Params {
  iters: u32, // loop trips
  seed: f32,  // keeps the start values unknown to the compiler
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> sink: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let base = params.seed + f32(gid.x & 255u) * 1e-3;
  var c0 = vec4<f32>(base, base + 0.1, base + 0.2, base + 0.3);
  var c1 = c0 + 0.01;
  var c2 = c0 + 0.02;
  var c3 = c0 + 0.03;
  var c4 = c0 + 0.04;
  var c5 = c0 + 0.05;
  var c6 = c0 + 0.06;
  var c7 = c0 + 0.07;
  let m = vec4<f32>(0.999);
  let k = vec4<f32>(0.001);
  for (var i = 0u; i < params.iters; i++) {
    c0 = fma(c0, m, k);
    c1 = fma(c1, m, k);
    c2 = fma(c2, m, k);
    c3 = fma(c3, m, k);
    c4 = fma(c4, m, k);
    c5 = fma(c5, m, k);
    c6 = fma(c6, m, k);
    c7 = fma(c7, m, k);
  }
  let s = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7));
  sink[gid.x] = s.x + s.y + s.z + s.w;
}
