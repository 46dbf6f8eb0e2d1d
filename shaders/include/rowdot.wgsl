// shaders/include/rowdot.wgsl: spliced into the thread-per-row expert kernels (moe_gateup_id, moe_down_id) after
// their format include. The dot of one weight row with an activation row, for the routed stack (codes, scales)
// and the shared one (shCodes, shScales): Σ_c W[row, c] · xin[xo + c] for the row at word `base` whose scale row
// starts at `sr`; one partial sum per scale block, times its scale.
// #include "expert_scales.wgsl"

// #each SUF W: routed codes; shared shCodes
fn dot_$SUF(base: u32, sr: u32, xo: u32, cols: u32) -> f32 {
  let words = (cols + QCOLS - 1u) / QCOLS;
  let bw = SCOLS / QCOLS; // words per scale block
  var acc = 0.0;
  for (var w0 = 0u; w0 < words; w0 += bw) {
    let w1 = min(words, w0 + bw);
    var part = WQ();
    for (var wi = w0; wi < w1; wi++) { part = qfma(part, qvals($W[base + wi]), xq(xo, wi * QCOLS, cols)); }
    acc += qsum(part) * scale_$SUF(sr + w0 / bw);
  }
  return acc;
}
// #end
