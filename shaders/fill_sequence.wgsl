// fill_sequence.wgsl — the smallest real kernel: out[i] = a * f32(i) + b. Used by `webmoe doctor` to prove that
// the adapter compiles and runs WGSL and returns the expected numbers.
//
// Bindings (group 0):
//   0  out     array<f32>  [n]   written
//   1  params  uniform     { n: u32 (elements), a: f32, b: f32 }
// Workgroup: WG (override, default 64) threads, one element each; dispatch ceil(n / WG) workgroups.
// CPU counterpart: gpu/doctor.ts expectedSequence.

override WG: u32 = 64u;

struct Params {
  n: u32,   // in elements
  a: f32,
  b: f32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i < params.n) {
    out[i] = params.a * f32(i) + params.b;
  }
}
