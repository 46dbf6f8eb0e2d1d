// moe_gateup_union.wgsl — the gate/up half of the experts by expert (batched decode): the result of
// moe_gateup_id_wide.wgsl for the tokens t0 .. T - 1, bit for bit, with each selected expert's rows read and decoded
// once per group of up to 4 tokens that chose it instead of once per (token, slot):
//   for every pair (t, k), k < K, with ids[t, k] = e in the shard:
//     h[t, k, f] = w[t, k] · silu(G_e[f] · x_t) · (U_e[f] · x_t)                          f < F
//   doShared: the shared expert (weight 1) into slot K of every token, f < Fs
// A workgroup owns one expert (grid y: the shard's experts e0 .. e1 - 1, then the shared expert when doShared) and
// WG · RPT of its rows: each thread RPT consecutive rows (override, 1, 2 or 4), a gate and an up row each, as
// moe_gateup_id_wide. Every thread scans ids for the pairs that chose the expert (union_tokens.wgsl) and runs them
// in groups of up to 4: each chunk CW of its 2·RPT rows is loaded and decoded once (cdec) and dotted with each
// token's x chunk (cdotd). Per token that is exactly moe_gateup_id_wide's sequence of operations (cdot = cdotd ∘
// cdec, chunks in order, × the block scale per block), so a token's h does not depend on the other tokens of its
// group or step (batch invariance) and equals the by-id kernel's (test/kernels/moe-experts.gpu.test.ts).
// Rows past F (or Fs) recompute the last row and are not written; the ragged last chunk multiplies x masked to 0.
// A kernel family: moe_gateup_union (FP8; F16BITS as moe_gateup_id_wide), _bf16, _int4.
//
// Bindings (group 0): those of moe_gateup_id_wide.wgsl (gateup_wide_io.wgsl), codes as chunks CW of the format:
//   0  xin       array<f32>  [T, D]
//   1  ids       array<u32>  [T, K]
//   2  wts       array<f32>  [T, K]
//   3  codes     array<CW>   stack [2·(e1-e0), F, rsD / CWORDS]   gate_e, up_e of the shard's experts
//   4  scales    array<f32>  stack [2·(e1-e0), smat(F, scD)]   (any 16 bytes for BF16)
//   5  shCodes   array<CW>   stack [2, Fs, rsD / CWORDS]     shared expert gate, up (any 16 bytes when Fs = 0)
//   6  shScales  array<f32>  stack [2, smat(Fs, scD)]
//   7  h         array<f32>  [T, Ks, Fmax]               written at the pairs of the dispatch's experts
//   8  params    uniform     Params (gateup_params.wgsl; here T is one past the last token of the dispatch)
// Workgroup: WG threads (override, default 64), RPT rows each, no barriers.
// Dispatch: (⌈Fmax / (WG · RPT)⌉, (e1 - e0) + doShared): tokens t0 .. T - 1.
// CPU counterpart: model/reference.ts moe (silu(gate·x) ⊙ up·x per selected expert, × its weight).
// #formats fp8 bf16 int4

override WG: u32 = 64u;
override RPT: u32 = 2u;         // rows per invocation: 1, 2 or 4

// #include "gateup_wide_io.wgsl"
// #include "format.wgsl"
// #include "wide_rows.wgsl"
// #include "union_tokens.wgsl"

// per token of a group: the dots of the thread's RPT gate rows and RPT up rows
struct GU { g: vec4<f32>, u: vec4<f32> }
struct GU4 { t0: GU, t1: GU, t2: GU, t3: GU }

// one token's x chunk against the decoded chunks of the 2·RPT rows (separate variables per token, not an indexed
// array: a CPU adapter keeps them in registers)
fn acc1(g0: CD, g1: CD, g2: CD, g3: CD, u0: CD, u1: CD, u2: CD, u3: CD, x: XC, a: ptr<function, GU>) {
  (*a).g.x += cdotd(g0, x);
  (*a).u.x += cdotd(u0, x);
  if (RPT > 1u) {
    (*a).g.y += cdotd(g1, x);
    (*a).u.y += cdotd(u1, x);
  }
  if (RPT > 2u) {
    (*a).g.z += cdotd(g2, x);
    (*a).u.z += cdotd(u2, x);
    (*a).g.w += cdotd(g3, x);
    (*a).u.w += cdotd(u3, x);
  }
}

fn xchunk(xo: u32, c: u32, full: bool) -> XC {
  if (full) { return xc_full(xo + c); }
  return xc_tail(xo, c, p.D);
}

// #each SUF W S: routed codes scales; shared shCodes shScales
// chunk k (column c) of the 2·RPT rows, decoded once, against the group's n tokens (x rows at xo)
fn step4_$SUF(gb: u32, ub: u32, o: vec3<u32>, k: u32, c: u32, full: bool, xo: vec4<u32>, n: u32, a: ptr<function, GU4>) {
  let g0 = cdec($W[gb + k]);
  let u0 = cdec($W[ub + k]);
  var g1 = g0; var u1 = u0; var g2 = g0; var u2 = u0; var g3 = g0; var u3 = u0;
  if (RPT > 1u) { g1 = cdec($W[gb + o.x + k]); u1 = cdec($W[ub + o.x + k]); }
  if (RPT > 2u) {
    g2 = cdec($W[gb + o.y + k]); u2 = cdec($W[ub + o.y + k]);
    g3 = cdec($W[gb + o.z + k]); u3 = cdec($W[ub + o.z + k]);
  }
  acc1(g0, g1, g2, g3, u0, u1, u2, u3, xchunk(xo.x, c, full), &(*a).t0);
  if (n > 1u) { acc1(g0, g1, g2, g3, u0, u1, u2, u3, xchunk(xo.y, c, full), &(*a).t1); }
  if (n > 2u) { acc1(g0, g1, g2, g3, u0, u1, u2, u3, xchunk(xo.z, c, full), &(*a).t2); }
  if (n > 3u) { acc1(g0, g1, g2, g3, u0, u1, u2, u3, xchunk(xo.w, c, full), &(*a).t3); }
}

// one token's block partials × the block's scales into its sums
fn scaled_$SUF(part: GU, sum: ptr<function, GU>, gs: u32, us: u32, so: vec3<u32>, kb: u32) {
  if (HAS_SCALES) {
    (*sum).g += part.g * (vec4<f32>($S[gs + kb], $S[gs + so.x + kb], $S[gs + so.y + kb], $S[gs + so.z + kb]) * cmul());
    (*sum).u += part.u * (vec4<f32>($S[us + kb], $S[us + so.x + kb], $S[us + so.y + kb], $S[us + so.z + kb]) * cmul());
  } else {
    (*sum).g += part.g;
    (*sum).u += part.u;
  }
}

// gate and up dots of the group's tokens; gs / us: the first row's scale rows, so: the other rows' offsets
fn gu4_$SUF(gb: u32, ub: u32, gs: u32, us: u32, o: vec3<u32>, so: vec3<u32>, xo: vec4<u32>, n: u32) -> GU4 {
  let ch = chunks(p.D);
  let z = GU(vec4<f32>(0.0), vec4<f32>(0.0));
  var r = GU4(z, z, z, z);
  for (var k0 = 0u; k0 < ch.y; k0 += ch.z) {
    let kend = min(k0 + ch.z, ch.x);
    // explicitly zeroed per block (see fp8_gemv_wide.wgsl)
    var a = GU4(z, z, z, z);
    for (var k = k0; k < kend; k++) {
      step4_$SUF(gb, ub, o, k, CCOLS * k, true, xo, n, &a);
    }
    if (kend < min(k0 + ch.z, ch.y)) {
      // the last, partial chunk (always in the last block): x masked to 0 past D
      step4_$SUF(gb, ub, o, ch.x, CCOLS * ch.x, false, xo, n, &a);
    }
    let kb = k0 / ch.z;
    scaled_$SUF(a.t0, &r.t0, gs, us, so, kb);
    if (n > 1u) { scaled_$SUF(a.t1, &r.t1, gs, us, so, kb); }
    if (n > 2u) { scaled_$SUF(a.t2, &r.t2, gs, us, so, kb); }
    if (n > 3u) { scaled_$SUF(a.t3, &r.t3, gs, us, so, kb); }
  }
  return r;
}
// #end

// h of token i of the group: its weight · silu(gate) ⊙ up, rows f0 .. (past `rows` not written)
fn store(r: GU, grp: Group, i: u32, isShared: bool, f0: u32, rows: u32) {
  var wt = 1.0;
  if (!isShared) { wt = wts[grp.t[i] * p.K + grp.k[i]]; }
  let hv = wt * (r.g / (vec4<f32>(1.0) + exp(-r.g))) * r.u;
  let ho = (grp.t[i] * p.Ks + grp.k[i]) * p.Fmax + f0;
  h[ho] = hv.x;
  if (RPT > 1u && f0 + 1u < rows) { h[ho + 1u] = hv.y; }
  if (RPT > 2u && f0 + 2u < rows) { h[ho + 2u] = hv.z; }
  if (RPT > 3u && f0 + 3u < rows) { h[ho + 3u] = hv.w; }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  _ = &scales; // one binding layout for every format (BF16 reads no scales)
  _ = &shScales;
  let f0 = gid.x * RPT;
  let isShared = wid.y == p.e1 - p.e0; // the grid's last row when doShared
  let e = p.e0 + wid.y;
  let rows = select(p.F, p.Fs, isShared);
  if (f0 >= rows) { return; }
  let rsv = p.rsD / CWORDS;             // chunks per row
  let mw = rows * rsv;                  // chunks per matrix
  let ms = smat(rows, p.scD);           // scales per matrix
  let m = select(2u * (e - p.e0), 0u, isShared); // gate matrix of the stack; up is m + 1
  let sr = srow(f0, p.scD);
  let gb = m * mw + f0 * rsv;
  let gs = m * ms + sr;
  let o = rowOffsets(rows - f0, rsv);
  let so = scaleRowOffsets(f0, rows - f0, p.scD);
  var s = select(p.t0 * p.K, p.t0, isShared);
  loop {
    let grp = nextGroup(e, isShared, &s, p.T);
    if (grp.n == 0u) { break; }
    let xo = grp.t * p.D;
    var r: GU4;
    if (isShared) {
      r = gu4_shared(gb, gb + mw, gs, gs + ms, o, so, xo, grp.n);
    } else {
      r = gu4_routed(gb, gb + mw, gs, gs + ms, o, so, xo, grp.n);
    }
    store(r.t0, grp, 0u, isShared, f0, rows);
    if (grp.n > 1u) { store(r.t1, grp, 1u, isShared, f0, rows); }
    if (grp.n > 2u) { store(r.t2, grp, 2u, isShared, f0, rows); }
    if (grp.n > 3u) { store(r.t3, grp, 3u, isShared, f0, rows); }
  }
}
