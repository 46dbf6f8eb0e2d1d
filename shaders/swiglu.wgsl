// swiglu.wgsl — the SwiGLU gate (docs/model.md §6.4), elementwise over n = T·F values:
//   out[outOffset + i] = silu(gate[gateOffset + i]) · up[upOffset + i],  silu(z) = z / (1 + e^−z)
//
// Bindings (group 0):
//   0  gate    array<f32>  [n] at gateOffset
//   1  up      array<f32>  [n] at upOffset
//   2  out     array<f32>  [n] at outOffset    (a buffer distinct from gate and up)
//   3  params  uniform     Params
// Workgroup: WG threads (override, default 256), one element each, 2-D grid as add.wgsl.
// Dispatch: (min(G, 65535), ⌈G / 65535⌉), G = ⌈n / WG⌉.
// CPU counterpart: src/model/reference.ts swiglu.

override WG: u32 = 256u;

struct Params {
  n: u32,
  gateOffset: u32,
  upOffset: u32,
  outOffset: u32,
}

@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  if (i < params.n) {
    let z = gate[params.gateOffset + i];
    out[params.outOffset + i] = z / (1.0 + exp(-z)) * up[params.upOffset + i];
  }
}
