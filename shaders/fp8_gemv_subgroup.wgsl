// fp8_gemv_subgroup.wgsl — the dense matrix-vector product for decode on GPUs (`subgroups`); a kernel family:
// fp8_gemv_subgroup (block FP8), fp8_gemv_subgroup_bf16 (BF16), fp8_gemv_subgroup_int4 (INT4 pack-quantized, group
// 32), one body, the weight format spliced from shaders/include/format_*.wgsl (docs/kernels.md §1 "Kernel families"):
//   y[yOffset + rowStart + r] (+)= Σ_c W[rowStart + r, c] · xin[xOffset + c]        r < rows (this chunk)
//   FP8:  W[i, c] = e4m3(code) · scale[⌊i / 128⌋, ⌊c / 128⌋]   (weight_scale_inv, docs/model.md §3)
//   BF16: W[i, c] = bf16(code)                                (no scales: the scale binding is bound, not read)
//   INT4: W[i, c] = (u − 8) · scale[i, ⌊c / 32⌋]               (pack-quantized nibbles, docs/model.md §13)
// A workgroup owns ROWS rows; its threads stride along the rows one u32 word (QCOLS columns) at a time (coalesced
// loads, each word's x reused for the ROWS rows from registers), multiply each word's partial dot by its scale
// (scale row of the GLOBAL row rowStart + r), reduce with subgroupAdd, then combine one value per subgroup through
// workgroup memory (one barrier) — the llama.cpp mul_mat_vec pattern (docs/kernels.md §3.3). Never hard-codes the
// subgroup size. Every decode is exact (the format's qvals); the sums equal the format's other GEMVs up to
// summation order. Selected where `subgroups` exists and the adapter is a GPU (gpu/plan.ts chooseGemv; on CPU
// adapters the wide family is faster, docs/architecture.md); BF16 and INT4 decode GEMVs take it there too
// (linear.ts), the fused-RMSNorm prologue staying with the wide family.
//
// Bindings (group 0):
//   0  w      array<u32>  [rows, stride]   codes of one row chunk (rows padded to 16 bytes, padding 0)
//   1  scale  array<f32>  FP8 [⌈R/128⌉, scaleCols], INT4 [R, scaleCols], BF16 any 16 bytes (R = all rows)
//   2  xin    array<f32>  the input row at xOffset (cols used)
//   3  y      array<f32>  the output row at yOffset; chunk row r is element rowStart + r
//   4  params uniform     Params (include/linear.wgsl; T, xStride, yStride unused)
// Workgroup: WG threads (override, default 64; a multiple of the subgroup size), ROWS = 4 rows.
// Dispatch: ⌈rows / ROWS⌉ workgroups.
// CPU counterpart: src/model/reference.ts matVec on the dequantised weight: dequantizeFp8Block (src/format/fp8.ts),
// bf16ArrayToF32, dequantizeInt4 (src/format/int4.ts).
// #formats fp8 bf16 int4
enable subgroups;

override WG: u32 = 64u;
const ROWS: u32 = 4u;

// #include "linear.wgsl"

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> xin: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// #include "format.wgsl"

var<workgroup> red: array<f32, ROWS * WG>; // [ROWS, subgroups] (at most WG subgroups)

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sgLane: u32,
  @builtin(subgroup_size) sgSize: u32,
) {
  _ = &scale; // one binding layout for every format (BF16 reads no scales)
  let r0 = wid.x * ROWS;
  let words = (params.cols + QCOLS - 1u) / QCOLS;
  // rows past the end recompute the last row; not written
  var rows = array<u32, ROWS>();
  var srows = array<u32, ROWS>();
  for (var i = 0u; i < ROWS; i++) {
    rows[i] = min(r0 + i, params.rows - 1u);
    srows[i] = srow(params.rowStart + rows[i], params.scaleCols);
  }
  var acc = array<f32, ROWS>();
  for (var k = lid; k < words; k += WG) {
    let c = QCOLS * k;
    let xv = xq(params.xOffset, c, params.cols);
    let kb = c / SCOLS;
    for (var i = 0u; i < ROWS; i++) {
      let d = qdot(qvals(w[rows[i] * params.stride + k]), xv);
      if (HAS_SCALES) {
        acc[i] += d * scale[srows[i] + kb];
      } else {
        acc[i] += d;
      }
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
