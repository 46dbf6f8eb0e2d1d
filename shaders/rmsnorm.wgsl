// rmsnorm.wgsl — RMSNorm of T rows (docs/model.md §4.2), computed in f32:
//   out[outOffset + t·outStride + i] = w[i] · v_i / sqrt(mean_j(v_j²) + eps),  v = in[inOffset + t·inStride + 0..n)
// Strided rows let the engine normalise the first R columns of kv_a's output straight into the latent cache.
//
// Bindings (group 0):
//   0  src     array<f32>  [T, inStride] at inOffset     (never the same buffer as dst)
//   1  weight  array<f32>  [n]                           the norm's weight, widened from BF16 at upload
//   2  dst     array<f32>  [T, outStride] at outOffset
//   3  params  uniform     Params
// Workgroup: WG threads (override, default 64) per row: strided partial sums of squares, one barrier, thread 0
// adds the WG partials in order, a second barrier (include/rms_inv.wgsl), then every thread writes its strided outputs.
// Dispatch: T workgroups.
// CPU counterpart: src/model/reference.ts rmsNorm.

override WG: u32 = 64u;

struct Params {
  n: u32,         // row width, in elements
  inOffset: u32,  // in elements
  inStride: u32,  // elements between rows of src
  outOffset: u32, // in elements
  outStride: u32, // elements between rows of dst
  eps: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

fn rms_src(i: u32) -> f32 { return src[i]; }
// #include "rms_inv.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x;
  let ib = params.inOffset + t * params.inStride;
  let s = rms_inv(ib, params.n, params.eps, lid);
  let ob = params.outOffset + t * params.outStride;
  for (var i = lid; i < params.n; i += WG) {
    dst[ob + i] = weight[i] * (src[ib + i] * s);
  }
}
