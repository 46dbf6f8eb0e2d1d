// shaders/include/union_tokens.wgsl: spliced into the by-expert kernels (moe_gateup_union, moe_down_union): the
// (token, slot) pairs that chose one expert, found by every thread of the workgroup scanning ids in token order
// (the same scan in every thread: uniform control flow, no barriers), handed out in groups of up to 4.
// The kernel declares `ids: array<u32>` [T, K] and Params with K.

struct Group {
  t: vec4<u32>, // tokens
  k: vec4<u32>, // their slots (K for the shared expert)
  n: u32,       // valid lanes; lanes ≥ n repeat lane 0 (never written)
}

// The next group after scan position *s, tokens below t1. Routed expert e: *s runs over the pairs t·K + k
// (start it at t0·K) and keeps those whose id is e; the shared expert (isShared = true): *s runs over the tokens
// (start it at t0), slot K each.
fn nextGroup(e: u32, isShared: bool, s: ptr<function, u32>, t1: u32) -> Group {
  var g = Group(vec4<u32>(0u), vec4<u32>(0u), 0u);
  if (isShared) {
    while (g.n < 4u && *s < t1) {
      g.t[g.n] = *s;
      g.k[g.n] = p.K;
      g.n += 1u;
      *s += 1u;
    }
  } else {
    let end = t1 * p.K;
    while (g.n < 4u && *s < end) {
      if (ids[*s] == e) {
        g.t[g.n] = *s / p.K;
        g.k[g.n] = *s % p.K;
        g.n += 1u;
      }
      *s += 1u;
    }
  }
  for (var j = g.n; j < 4u; j++) {
    g.t[j] = g.t.x;
    g.k[j] = g.k.x;
  }
  return g;
}
