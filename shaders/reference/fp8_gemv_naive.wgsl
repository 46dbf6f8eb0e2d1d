// fp8_gemv_naive.wgsl — the simplest correct block-FP8 GEMV, kept beside the optimised fp8_gemv so that
// `webmoe bench` measures the speedup instead of claiming it. One invocation per output row; each weight is
// decoded and scaled on its own (no block-scale folding, no wide loads, no reduction).
//   y[r] = Σ_c e4m3(W[r, c]) · S[r / 128, c / 128] · x[c]
//
// Bindings (group 0):
//   0  w       array<u32>  [rows, stride]              read: E4M3FN codes of W [rows, cols], 4 per u32, in the
//                                                    padded-row layout of src/gpu/ops/fp8-layout.ts: row r
//                                                    starts at word r·stride, code c is byte c % 4 of word c / 4
//   1  scale   array<f32>  [ceil(rows/128), ceil(cols/128)]  read: weight_scale_inv (a multiplier)
//   2  x       array<f32>  [cols]                      read
//   3  y       array<f32>  [rows]                      written
//   4  params  uniform     { rows, cols, scale_cols = ceil(cols / 128), stride (words per row) }  (in elements)
// Workgroup: WG (override, default 64) invocations, one row each; dispatch ceil(rows / WG) workgroups.
// CPU counterpart: reference.ts matVec on dequantizeFp8Block(W, S) (format/fp8.ts).

override WG: u32 = 64u;

struct Params {
  rows: u32,       // in elements
  cols: u32,       // in elements
  scale_cols: u32, // ceil(cols / 128)
  stride: u32,     // u32 words per weight row (>= ceil(cols / 4))
}

// #include "naive_linear.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  if (r >= params.rows) { return; }
  var acc = 0.0;
  for (var c = 0u; c < params.cols; c++) {
    let s = scale[(r / 128u) * params.scale_cols + c / 128u];
    acc += e4m3(code(r, c)) * s * x[c];
  }
  y[r] = acc;
}
