// shaders/include/rowdot4.wgsl: spliced into the by-expert kernels (moe_gateup_union, moe_down_union) after their
// format include and wide_rows.wgsl. The dots of ONE weight row with up to 4 activation rows (one per token of a
// group): each chunk CW of the row is loaded once (the wide kernels' load) and each of its words decoded once
// (wvals) and multiplied into every token's sum, so a group of n tokens reads and decodes the row once instead of
// n times. Per token the order is fixed (word by word within a scale block, then × the block's scale, blocks in
// order) and independent of the other tokens of the group: a token's result does not depend on which tokens share
// its expert (batch invariance). Lanes j ≥ n are not computed (0).
// #each SUF W S: routed codes scales; shared shCodes shScales
// the row starting at chunk `base` (n columns `cols`), its scale row at `sr`, against the x rows at xo
fn dot4_$SUF(base: u32, sr: u32, xo: vec4<u32>, cols: u32, n: u32) -> vec4<f32> {
  let ch = chunks(cols);
  var acc = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < ch.y; k0 += ch.z) {
    let k1 = min(k0 + ch.z, ch.y);
    var part = vec4<f32>(0.0);
    for (var k = k0; k < k1; k++) {
      let q = $W[base + k];
      for (var i = 0u; i < CWORDS; i++) {
        let c = (k * CWORDS + i) * QCOLS;
        if (c >= cols) { break; } // the padding words of a ragged last chunk
        let w = wvals(q[i]);
        part.x += qdot(w, xq(xo.x, c, cols));
        if (n > 1u) { part.y += qdot(w, xq(xo.y, c, cols)); }
        if (n > 2u) { part.z += qdot(w, xq(xo.z, c, cols)); }
        if (n > 3u) { part.w += qdot(w, xq(xo.w, c, cols)); }
      }
    }
    if (HAS_SCALES) { acc += part * ($S[sr + k0 / ch.z] * cmul()); } else { acc += part; }
  }
  return acc;
}
// #end
