// shaders/include/silu_store.wgsl: the output of the grouped gate/up GEMMs (moe_gateup_grouped, moe_gateup_tiled):
// h[pr, f] = w · silu(g) · u for pair pr = t·Ks + k (w = 1 for the shared slot k = K). The kernel binds wts, h, p.
fn store(pr: u32, f: u32, g: f32, u: f32) {
  let t = pr / p.Ks;
  let k = pr % p.Ks;
  var wt = 1.0;
  if (k < p.K) { wt = wts[t * p.K + k]; }
  h[pr * p.Fmax + f] = wt * (g / (1.0 + exp(-g))) * u;
}
