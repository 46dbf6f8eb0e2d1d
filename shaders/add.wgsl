// add.wgsl — residual add, in place: y[yOffset + i] += x[xOffset + i] for i < n (docs/model.md §4.3).
//
// Bindings (group 0):
//   0  y       array<f32>  [n] at yOffset   read and written
//   1  x       array<f32>  [n] at xOffset   (never the same buffer as y)
//   2  params  uniform     Params
// Workgroup: WG threads (override, default 256), one element each, over a 2-D grid so n may exceed
// 65535·WG. Dispatch: (min(G, 65535), ⌈G / 65535⌉) with G = ⌈n / WG⌉.
// CPU counterpart: src/model/reference.ts addInPlace.

override WG: u32 = 256u;

struct Params {
  n: u32,
  yOffset: u32,
  xOffset: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * WG + gid.x;
  if (i < params.n) {
    y[params.yOffset + i] += x[params.xOffset + i];
  }
}
