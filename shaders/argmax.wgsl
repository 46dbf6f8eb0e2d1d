// argmax.wgsl — greedy decoding: the index of the largest logit of one row, ties to the lowest index
// (np.argmax, and src/engine/sampler.ts argmax).
//   out[outIndex] = argmax_i logits[logitsOffset + i],  i < V
//
// Bindings (group 0):
//   0  logits  array<f32>  [V] at logitsOffset
//   1  out     array<u32>  token ids; element outIndex is written
//   2  params  uniform     Params
// Workgroup: WG threads (override, default 256); thread j scans the contiguous chunk j of ⌈V / WG⌉ logits,
// one barrier, thread 0 combines the WG candidates in chunk order (so ties keep the lowest index).
// Dispatch: 1 workgroup.
// CPU counterpart: src/engine/sampler.ts argmax.

override WG: u32 = 256u;

struct Params {
  V: u32,
  logitsOffset: u32,
  outIndex: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> bestV: array<f32, WG>;
var<workgroup> bestI: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  let chunk = (params.V + WG - 1u) / WG;
  let c0 = min(lid * chunk, params.V);
  let c1 = min(c0 + chunk, params.V);
  var bv = -3.4028234e38;
  var bi = 0xFFFFFFFFu;
  for (var i = c0; i < c1; i++) {
    let v = logits[params.logitsOffset + i];
    if (v > bv || bi == 0xFFFFFFFFu) {
      bv = v;
      bi = i;
    }
  }
  bestV[lid] = bv;
  bestI[lid] = bi;
  workgroupBarrier();
  if (lid == 0u) {
    var v = -3.4028234e38;
    var idx = 0xFFFFFFFFu;
    for (var j = 0u; j < WG; j++) {
      if (bestI[j] != 0xFFFFFFFFu && (idx == 0xFFFFFFFFu || bestV[j] > v)) {
        v = bestV[j];
        idx = bestI[j];
      }
    }
    out[params.outIndex] = idx;
  }
}
