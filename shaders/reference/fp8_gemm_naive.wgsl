// fp8_gemm_naive.wgsl — the simplest correct block-FP8 GEMM (prefill), kept beside the optimised fp8_gemm so
// that `webmoe bench` measures the speedup. One invocation per output element; no tiling, no workgroup memory.
//   Y[t, r] = Σ_c e4m3(W[r, c]) · S[r / 128, c / 128] · X[t, c]          (Y = X · Wᵀ, PyTorch layout)
//
// Bindings (group 0):
//   0  w       array<u32>  [rows, stride]              read: E4M3FN codes of W [rows, cols], 4 per u32, padded
//                                                    rows as in src/gpu/ops/fp8-layout.ts (row r at word r·stride)
//   1  scale   array<f32>  [ceil(rows/128), ceil(cols/128)]  read
//   2  x       array<f32>  [tokens, cols]              read
//   3  y       array<f32>  [tokens, rows]              written
//   4  params  uniform     { rows, cols, scale_cols = ceil(cols / 128), tokens, stride (words per row) }  (in elements)
// Workgroup: WG (override, default 64) invocations along rows; dispatch (ceil(rows / WG), tokens).
// CPU counterpart: reference.ts linear on dequantizeFp8Block(W, S).

override WG: u32 = 64u;

struct Params {
  rows: u32,       // in elements
  cols: u32,       // in elements
  scale_cols: u32, // ceil(cols / 128)
  tokens: u32,     // in tokens
  stride: u32,     // u32 words per weight row (>= ceil(cols / 4))
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

// #include "naive_linear.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  let t = gid.y;
  if (r >= params.rows || t >= params.tokens) { return; }
  var acc = 0.0;
  for (var c = 0u; c < params.cols; c++) {
    let s = scale[(r / 128u) * params.scale_cols + c / 128u];
    acc += e4m3(code(r, c)) * s * x[t * params.cols + c];
  }
  y[t * params.rows + r] = acc;
}
