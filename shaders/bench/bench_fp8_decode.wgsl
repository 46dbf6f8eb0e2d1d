// bench_fp8_decode.wgsl — a third ceiling for `webmoe bench`: how fast this device can turn E4M3 codes into
// multiply-adds when memory is not involved. Each invocation makes 4 words (16 codes) per iteration from 4
// independent LCG streams in registers, decodes them the way the engine's decode kernels do (fp8_gemv_wide,
// moe_*_id_wide: two codes per 32-bit op through f16 bit patterns + unpack2x16float, docs/kernels.md §3.1 (B); the
// value / 256 that this gives is what those kernels multiply, the 256 being folded into the block scale) and
// accumulates the dot products with x into 4 chains. F16BITS = false (override) measures the exact f32 bit
// trick (§3.1 A, fp8_gemv.wgsl, one code at a time) instead.
// weights/s from this kernel, at 1 byte per weight, is the GB/s an FP8 GEMV could reach if its loads were free:
// on CPU adapters (no fp8 hardware) it is usually far below the streaming-read bandwidth.
//
// Bindings (group 0), include/bench_lcg.wgsl:
//   0  sink    array<f32>  [threads]   written: one value per invocation, so no decode is dead code
//   1  params  uniform     { iters: u32 (loop trips), seed: u32 }
// Workgroup: WG invocations (override). Dispatch: any grid along x; weights = 16 * iters * WG * num_workgroups.x.
// CPU counterpart: none (a micro-benchmark; the decode itself is tested with the FP8 kernels).

override WG: u32 = 64u;
override F16BITS: bool = true; // engine decode (true) or the f32 bit trick (false)

// #include "bench_lcg.wgsl"

// #include "e4m3.wgsl"
// #include "decode4.wgsl"

// Σ_j code_j(q) · xv[j] over the 4 codes of q (F16BITS: / 256), exactly as format_fp8.wgsl dot4d(dec4(q), xv)
fn dot4(q: u32, xv: vec4<f32>) -> f32 {
  if (F16BITS) {
    let ev = unpack2x16float(((q << 7u) & 0x3F803F80u) | ((q << 8u) & 0x80008000u)); // codes 0, 2
    let od = unpack2x16float(((q >> 1u) & 0x3F803F80u) | (q & 0x80008000u));        // codes 1, 3
    return dot(ev, xv.xz) + dot(od, xv.yw);
  }
  return dot(decode4(q), xv);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var w = lcg_start(gid.x);
  // clear bit 6 of every code (exponent <= 7): values stay small, never NaN codes
  let mask = 0xbfbfbfbfu;
  let x = vec4<f32>(0.5, -0.25, 0.125, 1.0) * (1.0 + f32(gid.x & 7u) * 0.01);
  var a = vec4<f32>(0.0); // one chain per stream
  for (var i = 0u; i < params.iters; i++) {
    w = lcg_next(w);
    a.x += dot4(w.x & mask, x);
    a.y += dot4(w.y & mask, x);
    a.z += dot4(w.z & mask, x);
    a.w += dot4(w.w & mask, x);
  }
  sink[gid.x] = (a.x + a.y) + (a.z + a.w);
}
