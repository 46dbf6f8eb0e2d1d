// shaders/include/bench_lcg.wgsl: what the decode ceilings (bench_fp8_decode, bench_int4_decode) share: their Params
// and bindings (the table is in their headers), and the 4 independent LCG streams of code words each invocation
// makes in registers (codes unknown to the compiler, no memory traffic).
struct Params {
  iters: u32, // loop trips
  seed: u32,  // keeps the codes unknown to the compiler
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> sink: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

// the 4 streams of invocation i before their first step
fn lcg_start(i: u32) -> vec4<u32> {
  let w0 = params.seed ^ (i * 2654435761u);
  return vec4<u32>(w0, w0 ^ 0x9e3779b9u, w0 ^ 0x7f4a7c15u, w0 ^ 0x94d049bbu);
}

// one step of each stream
fn lcg_next(w: vec4<u32>) -> vec4<u32> {
  return w * 1664525u + 1013904223u;
}
