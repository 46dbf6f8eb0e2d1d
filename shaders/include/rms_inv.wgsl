// shaders/include/rms_inv.wgsl: the RMSNorm factor of one row, computed by a whole workgroup, spliced by rmsnorm.wgsl
// and mla_kv_rope.wgsl (so the latent-cache rows of both are bit-identical) and moe_router (GATE), whose normalised
// rows are therefore bit-identical to rmsnorm's (fp8_gemv_wide's NORM reproduces its sums in its order). The kernel declares `override WG: u32` and
// `fn rms_src(i: u32) -> f32` (the row's element i of its input); every invocation of the workgroup calls rms_inv
// in uniform control flow (two barriers).

var<workgroup> rms_partial: array<f32, WG>;
var<workgroup> rms_total: f32;

// 1 / sqrt(mean_j(rms_src(ib + j)²) + eps), j < n: strided partial sums of squares (thread lid takes j ≡ lid mod WG),
// one barrier, thread 0 adds the WG partials in order, a second barrier
fn rms_inv(ib: u32, n: u32, eps: f32, lid: u32) -> f32 {
  var ss = 0.0;
  for (var i = lid; i < n; i += WG) {
    let v = rms_src(ib + i);
    ss += v * v;
  }
  rms_partial[lid] = ss;
  workgroupBarrier();
  if (lid == 0u) {
    var total = 0.0;
    for (var j = 0u; j < WG; j++) {
      total += rms_partial[j];
    }
    rms_total = 1.0 / sqrt(total / f32(n) + eps);
  }
  workgroupBarrier();
  return rms_total;
}
