// moe_gateup_id_wide.wgsl — moe_gateup_id.wgsl (same contract, bindings and result up to summation order) tuned
// for CPU adapters the way fp8_gemv_wide.wgsl is (docs/benchmarks.md "Tuning"):
//   slot k < K:  e = ids[t, k];  h[t, k, f] = w[t, k] · silu(G_e[f] · x_t) · (U_e[f] · x_t)    f < F
//   slot K:      the shared expert (weight 1), f < Fs
//   - vec4<u32> loads: 16 codes per load (rows start on 16-byte boundaries, fp8-layout.ts; padding bytes 0);
//   - RPT consecutive rows per invocation (override, 1, 2 or 4), gate and up of each: every 16-column chunk of
//     x is loaded once and reused from registers by 2·RPT rows (2·RPT independent accumulation chains);
//   - F16BITS (override): two codes per 32-bit op through f16 bit patterns + unpack2x16float (kernels.md §3.1 B,
//     core WGSL): the f16 value is the E4M3 value / 256, exact (subnormals included); the 256 is folded into the
//     block scale. F16BITS = false decodes with the f32 bit trick (§3.1 A) for comparison.
// RPT divides 128 and a thread's first row is a multiple of RPT, so a thread's rows share one scale row. Rows
// past F (or Fs) recompute the last row and are not written; the ragged last vec4 word of a row multiplies
// x masked to 0 past D.
//
// Bindings (group 0), as moe_gateup_id.wgsl with the codes viewed as vec4<u32>:
//   0  xin       array<f32>        [T, D]
//   1  ids       array<u32>        [T, K]
//   2  wts       array<f32>        [T, K]
//   3  codes     array<vec4<u32>>  stack [2·(e1-e0), F, rsD / 4]   gate_e, up_e of the shard's experts
//   4  scales    array<f32>        stack [2·(e1-e0), ⌈F/128⌉, scD]
//   5  shCodes   array<vec4<u32>>  stack [2, Fs, rsD / 4]          shared expert gate, up (any 16 bytes: Fs = 0)
//   6  shScales  array<f32>        stack [2, ⌈Fs/128⌉, scD]
//   7  h         array<f32>        [T, Ks, Fmax]                   written
//   8  params    uniform           Params (as moe_gateup_id.wgsl)
// Workgroup: WG threads (override, default 64), RPT rows each, no barriers.
// Dispatch: (⌈Fmax / (WG · RPT)⌉, K or Ks slots, T).
// CPU counterpart: model/reference.ts moe (silu(gate·x) ⊙ up·x per selected expert, × its weight).

override WG: u32 = 64u;
override RPT: u32 = 2u;         // rows per invocation: 1, 2 or 4
override F16BITS: bool = true;  // unpack2x16float decode (true) or the f32 bit trick (false)

struct Params {
  T: u32,
  D: u32,
  K: u32,
  F: u32,
  Fs: u32,
  Fmax: u32,
  e0: u32,
  e1: u32,
  doShared: u32,
  rsD: u32,       // words per weight row (a multiple of 4)
  scD: u32,       // ⌈D / 128⌉
  Ks: u32,
}

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> wts: array<f32>;
@group(0) @binding(3) var<storage, read> codes: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> scales: array<f32>;
@group(0) @binding(5) var<storage, read> shCodes: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read> shScales: array<f32>;
@group(0) @binding(7) var<storage, read_write> h: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

// E4M3FN code (low 8 bits of b) -> f32, exact (the f32 bit trick)
// #include "e4m3.wgsl"

// Σ_j code_j(q) · xv[j] over the 4 codes of q; F16BITS: the sum / 256
fn dot4(q: u32, xv: vec4<f32>) -> f32 {
  if (F16BITS) {
    let ev = unpack2x16float(((q << 7u) & 0x3F803F80u) | ((q << 8u) & 0x80008000u)); // codes 0, 2
    let od = unpack2x16float(((q >> 1u) & 0x3F803F80u) | (q & 0x80008000u));        // codes 1, 3
    return dot(ev, xv.xz) + dot(od, xv.yw);
  }
  return dot(vec4<f32>(e4m3(q), e4m3(q >> 8u), e4m3(q >> 16u), e4m3(q >> 24u)), xv);
}

// one 16-column chunk of x, in registers
struct X16 { a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32> }

fn dot16(q: vec4<u32>, x: X16) -> f32 {
  return (dot4(q.x, x.a) + dot4(q.y, x.b)) + (dot4(q.z, x.c) + dot4(q.w, x.d));
}

// xin[at .. at + 15], all inside the row
fn xfull(at: u32) -> X16 {
  return X16(vec4<f32>(xin[at], xin[at + 1u], xin[at + 2u], xin[at + 3u]),
             vec4<f32>(xin[at + 4u], xin[at + 5u], xin[at + 6u], xin[at + 7u]),
             vec4<f32>(xin[at + 8u], xin[at + 9u], xin[at + 10u], xin[at + 11u]),
             vec4<f32>(xin[at + 12u], xin[at + 13u], xin[at + 14u], xin[at + 15u]));
}

fn xm(xo: u32, c: u32, n: u32) -> f32 {
  return select(0.0, xin[xo + min(c, n - 1u)], c < n);
}

// columns c .. c + 15 of the row at xo of length n, 0 at or past n
fn xtail(xo: u32, c: u32, n: u32) -> X16 {
  return X16(vec4<f32>(xm(xo, c, n), xm(xo, c + 1u, n), xm(xo, c + 2u, n), xm(xo, c + 3u, n)),
             vec4<f32>(xm(xo, c + 4u, n), xm(xo, c + 5u, n), xm(xo, c + 6u, n), xm(xo, c + 7u, n)),
             vec4<f32>(xm(xo, c + 8u, n), xm(xo, c + 9u, n), xm(xo, c + 10u, n), xm(xo, c + 11u, n)),
             vec4<f32>(xm(xo, c + 12u, n), xm(xo, c + 13u, n), xm(xo, c + 14u, n), xm(xo, c + 15u, n)));
}

// Row offsets (vec4 words) of rows 1..3 of a thread relative to its first row: rows past the last valid one
// (nr rows from the first) repeat it.
fn rowOffsets(nr: u32, rsv: u32) -> vec3<u32> {
  return vec3<u32>(min(1u, nr - 1u), min(2u, nr - 1u), min(3u, nr - 1u)) * rsv;
}

struct GU { g: vec4<f32>, u: vec4<f32> }

// 2·RPT rows of one 16-column chunk: gate rows at gb (+ o), up rows at ub (+ o), word k of each row
fn step_routed(gb: u32, ub: u32, o: vec3<u32>, k: u32, x: X16, pg: ptr<function, vec4<f32>>, pu: ptr<function, vec4<f32>>) {
  (*pg).x += dot16(codes[gb + k], x);
  (*pu).x += dot16(codes[ub + k], x);
  if (RPT > 1u) {
    (*pg).y += dot16(codes[gb + o.x + k], x);
    (*pu).y += dot16(codes[ub + o.x + k], x);
  }
  if (RPT > 2u) {
    (*pg).z += dot16(codes[gb + o.y + k], x);
    (*pu).z += dot16(codes[ub + o.y + k], x);
    (*pg).w += dot16(codes[gb + o.z + k], x);
    (*pu).w += dot16(codes[ub + o.z + k], x);
  }
}

fn gu_routed(gb: u32, ub: u32, gs: u32, us: u32, o: vec3<u32>, xo: u32) -> GU {
  let full = p.D / 16u; // vec4 words whose 16 columns all exist
  let mul = select(1.0, 256.0, F16BITS);
  var ag = vec4<f32>(0.0);
  var au = vec4<f32>(0.0);
  var k = 0u;
  for (var kb = 0u; kb < p.scD; kb++) {
    let kend = min(kb * 8u + 8u, full); // 8 vec4 words = one 128-column block
    var pg = vec4<f32>(0.0);
    var pu = vec4<f32>(0.0);
    for (; k < kend; k++) {
      step_routed(gb, ub, o, k, xfull(xo + 16u * k), &pg, &pu);
    }
    if (kb + 1u == p.scD && (p.D & 15u) != 0u) {
      // the last, partial vec4 word (always in the last block): padding codes are 0, x masked to 0
      step_routed(gb, ub, o, full, xtail(xo, 16u * full, p.D), &pg, &pu);
    }
    ag += pg * (scales[gs + kb] * mul);
    au += pu * (scales[us + kb] * mul);
  }
  return GU(ag, au);
}

// the same over the shared expert's stack
fn step_shared(gb: u32, ub: u32, o: vec3<u32>, k: u32, x: X16, pg: ptr<function, vec4<f32>>, pu: ptr<function, vec4<f32>>) {
  (*pg).x += dot16(shCodes[gb + k], x);
  (*pu).x += dot16(shCodes[ub + k], x);
  if (RPT > 1u) {
    (*pg).y += dot16(shCodes[gb + o.x + k], x);
    (*pu).y += dot16(shCodes[ub + o.x + k], x);
  }
  if (RPT > 2u) {
    (*pg).z += dot16(shCodes[gb + o.y + k], x);
    (*pu).z += dot16(shCodes[ub + o.y + k], x);
    (*pg).w += dot16(shCodes[gb + o.z + k], x);
    (*pu).w += dot16(shCodes[ub + o.z + k], x);
  }
}

fn gu_shared(gb: u32, ub: u32, gs: u32, us: u32, o: vec3<u32>, xo: u32) -> GU {
  let full = p.D / 16u; // vec4 words whose 16 columns all exist
  let mul = select(1.0, 256.0, F16BITS);
  var ag = vec4<f32>(0.0);
  var au = vec4<f32>(0.0);
  var k = 0u;
  for (var kb = 0u; kb < p.scD; kb++) {
    let kend = min(kb * 8u + 8u, full); // 8 vec4 words = one 128-column block
    var pg = vec4<f32>(0.0);
    var pu = vec4<f32>(0.0);
    for (; k < kend; k++) {
      step_shared(gb, ub, o, k, xfull(xo + 16u * k), &pg, &pu);
    }
    if (kb + 1u == p.scD && (p.D & 15u) != 0u) {
      // the last, partial vec4 word (always in the last block): padding codes are 0, x masked to 0
      step_shared(gb, ub, o, full, xtail(xo, 16u * full, p.D), &pg, &pu);
    }
    ag += pg * (shScales[gs + kb] * mul);
    au += pu * (shScales[us + kb] * mul);
  }
  return GU(ag, au);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let f0 = gid.x * RPT;
  let k = wid.y;
  let t = wid.z;
  let xo = t * p.D;
  let rsv = p.rsD / 4u;
  let srb = (f0 / 128u) * p.scD; // scale row of rows f0 .. f0 + RPT - 1 within one matrix
  var r: GU;
  var wt = 1.0;
  var rows = 0u;
  if (k < p.K) {
    let e = ids[t * p.K + k];
    if (e < p.e0 || e >= p.e1 || f0 >= p.F) { return; }
    wt = wts[t * p.K + k];
    rows = p.F;
    let mw = p.F * rsv;                     // vec4 words per matrix
    let ms = ((p.F + 127u) / 128u) * p.scD; // scales per matrix
    let m = 2u * (e - p.e0);                // gate matrix; up is m + 1
    r = gu_routed(m * mw + f0 * rsv, (m + 1u) * mw + f0 * rsv, m * ms + srb, (m + 1u) * ms + srb, rowOffsets(p.F - f0, rsv), xo);
  } else {
    if (p.doShared == 0u || f0 >= p.Fs) { return; }
    rows = p.Fs;
    let mw = p.Fs * rsv;
    let ms = ((p.Fs + 127u) / 128u) * p.scD;
    r = gu_shared(f0 * rsv, mw + f0 * rsv, srb, ms + srb, rowOffsets(p.Fs - f0, rsv), xo);
  }
  let hv = wt * (r.g / (vec4<f32>(1.0) + exp(-r.g))) * r.u;
  let ho = (t * p.Ks + k) * p.Fmax + f0;
  h[ho] = hv.x;
  if (RPT > 1u && f0 + 1u < rows) { h[ho + 1u] = hv.y; }
  if (RPT > 2u && f0 + 2u < rows) { h[ho + 2u] = hv.z; }
  if (RPT > 3u && f0 + 3u < rows) { h[ho + 3u] = hv.w; }
}
