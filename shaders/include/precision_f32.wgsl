// shaders/include/precision_f32.wgsl: the f32 precision of the kernel families with a `// #precisions f32 f16` line
// (fp8_gemv, fp8_gemm), spliced at `// #include "precision.wgsl"`, which stands before any declaration of the kernel
// (precision_f16.wgsl starts with `enable f16;`). The interface every precision_*.wgsl implements (kernel bodies use
// nothing else of a precision):
//   XV          4 decoded codes, or the 4 x values they multiply (vec4 of f32 or f16)
//   pvals(q)    the 4 E4M3FN codes of q (byte k = column k) divided by SMUL, exact (NaN codes give ±480 / SMUL)
//   SMUL        the factor pvals leaves out: the kernel multiplies each block scale by it
//   xv(v)       4 x values as XV
//   pdot(w, x)  Σ w ⊙ x formed in this precision, as f32 (the kernels accumulate in f32)
// f32: the f32 bit trick (docs/kernels.md §3.1 (A)), SMUL = 1, products and 4-term dots in f32.
// #include "e4m3.wgsl"
// #include "decode4.wgsl"

alias XV = vec4<f32>;
const SMUL: f32 = 1.0;
fn pvals(q: u32) -> XV { return decode4(q); }
fn xv(v: vec4<f32>) -> XV { return v; }
fn pdot(w: XV, x: XV) -> f32 { return dot(w, x); }
