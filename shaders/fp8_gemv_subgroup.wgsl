// fp8_gemv_subgroup.wgsl — block-FP8 matrix-vector product (decode), `subgroups` variant for GPUs:
//   y[yOffset + rowStart + r] (+)= Σ_c e4m3(W[r, c]) · scale[(rowStart + r) / 128, c / 128] · x[xOffset + c]
// A workgroup owns ROWS rows; its threads stride along the row in words (coalesced loads, each x chunk reused
// for the ROWS rows from registers), reduce with subgroupAdd, then combine one value per subgroup through
// workgroup memory (one barrier) — the llama.cpp mul_mat_vec pattern (docs/kernels.md §3.3). Never hard-codes the
// subgroup size. Same result as fp8_gemv.wgsl up to summation order; selected only where `subgroups` exists
// and the adapter is not a CPU one (there the barrier-free fp8_gemv is faster, see docs/architecture.md).
//
// Bindings (group 0): as fp8_gemv.wgsl (include/linear_io.wgsl)
//   0  w array<u32> [rows, stride]   1  scale array<f32> [⌈R/128⌉, scaleCols]   2  x array<f32>
//   3  y array<f32>                  4  params uniform Params (include/linear.wgsl; T, xStride, yStride unused)
// Workgroup: WG threads (override, default 64; a multiple of the subgroup size), ROWS = 4 rows.
// Dispatch: ⌈rows / ROWS⌉ workgroups.
// CPU counterpart: src/model/reference.ts matVec on dequantizeFp8Block(W).
enable subgroups;

override WG: u32 = 64u;
const ROWS: u32 = 4u;

// #include "linear_io.wgsl"

var<workgroup> red: array<f32, ROWS * WG>; // [ROWS, subgroups] (at most WG subgroups)

// #include "e4m3.wgsl"

// #include "decode4.wgsl"

fn xmasked(c: u32) -> f32 {
  return select(0.0, x[params.xOffset + c], c < params.cols);
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sgLane: u32,
  @builtin(subgroup_size) sgSize: u32,
) {
  let r0 = wid.x * ROWS;
  let words = (params.cols + 3u) / 4u;
  var acc = array<f32, ROWS>();
  for (var k = lid; k < words; k += WG) {
    let c = 4u * k;
    var xv: vec4<f32>;
    if (c + 3u < params.cols) {
      let at = params.xOffset + c;
      xv = vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]);
    } else {
      xv = vec4<f32>(xmasked(c), xmasked(c + 1u), xmasked(c + 2u), 0.0);
    }
    let kb = k / 32u;
    for (var i = 0u; i < ROWS; i++) {
      let r = min(r0 + i, params.rows - 1u); // rows past the end recompute the last row; not written
      let s = scale[((params.rowStart + r) / 128u) * params.scaleCols + kb];
      acc[i] += dot(decode4(w[r * params.stride + k]), xv) * s;
    }
  }
  // subgroups are assumed to be contiguous runs of local_invocation_index (true for 1-D workgroups on
  // every implementation we know); the combine below is correct for any subgroup size dividing WG
  let sg = lid / sgSize;
  for (var i = 0u; i < ROWS; i++) {
    let total = subgroupAdd(acc[i]);
    if (sgLane == 0u) {
      red[i * WG + sg] = total;
    }
  }
  workgroupBarrier();
  if (lid < ROWS && r0 + lid < params.rows) {
    var sum = 0.0;
    for (var s = 0u; s < WG / sgSize; s++) {
      sum += red[lid * WG + s];
    }
    put(params.yOffset + params.rowStart + r0 + lid, sum);
  }
}
