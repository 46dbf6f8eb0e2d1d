// shaders/include/gemm_t4.wgsl: the entry point of the thread-per-row GEMMs (fp8_gemm, fp8_gemm_f16, bf16_gemm). Each
// thread owns one weight row r and a tile of TT = 4 tokens, so a decoded word serves the 4 tokens from registers
// and the weights are read ⌈T / 4⌉ times instead of T times (vec4 accumulators, no private arrays: lavapipe spills
// dynamically indexed private arrays to memory, 10x slower). No workgroup memory, no barriers (docs/kernels.md
// §3.4). The kernel supplies row4(r, o): row r against the 4 tokens whose x rows start at o.x .. o.w; tokens past T
// read the last token (in bounds) and are not written (linear.wgsl store4). Dispatch: (⌈rows / WG⌉, ⌈T / 4⌉).
const TT: u32 = 4u; // tokens per thread

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  let t0 = gid.y * TT;
  if (r >= params.rows || t0 >= params.T) {
    return;
  }
  let last = params.T - 1u;
  let o = params.xOffset + vec4<u32>(t0, min(t0 + 1u, last), min(t0 + 2u, last), min(t0 + 3u, last)) * params.xStride;
  store4(t0, r, row4(r, o));
}
