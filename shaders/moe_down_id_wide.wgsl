// moe_down_id_wide.wgsl — moe_down_id.wgsl (same contract, bindings and result up to summation order) tuned for
// CPU adapters the way fp8_gemv_wide.wgsl is (docs/benchmarks.md "Tuning"):
//   out[t, d] = (accumulate ? out[t, d] : 0) + Σ_{k < K, ids[t,k] in shard} Dn_e[d] · h[t, k, :F]
//                                            + (doShared ? DnS[d] · h[t, K, :Fs] : 0)
//   - vec4<u32> loads: 16 codes per load (rows start on 16-byte boundaries, fp8-layout.ts; padding bytes 0);
//   - RPT consecutive output rows per invocation (override, 1, 2 or 4): every 16-column chunk of h is loaded
//     once and reused from registers by RPT rows (RPT independent accumulation chains);
//   - F16BITS (override): two codes per 32-bit op through f16 bit patterns + unpack2x16float (kernels.md §3.1 B):
//     the f16 value is the E4M3 value / 256, exact; the 256 is folded into the block scale.
// Each output row is owned by one thread, which loops over the slots in a fixed order: deterministic, no
// atomics. RPT divides 128, so a thread's rows share one scale row; rows past D recompute the last row and are
// not written. h past F (Fs) in a slot's row is masked to 0 (it is scratch of other widths).
//
// Bindings (group 0), as moe_down_id.wgsl with the codes viewed as vec4<u32>:
//   0  xin       array<f32>        [T, Ks, Fmax]            h
//   1  ids       array<u32>        [T, K]
//   2  codes     array<vec4<u32>>  stack [e1-e0, D, rsF / 4] down_proj of the shard's experts
//   3  scales    array<f32>        stack [e1-e0, ⌈D/128⌉, scF]
//   4  shCodes   array<vec4<u32>>  [D, rsFs / 4]             shared expert down_proj (any 16 bytes when Fs = 0)
//   5  shScales  array<f32>        [⌈D/128⌉, scFs]
//   6  out       array<f32>        [T, D]                    read (accumulate) and written
//   7  params    uniform           Params (as moe_down_id.wgsl)
// Workgroup: WG threads (override, default 64), RPT rows each, no barriers. Dispatch: (⌈D / (WG · RPT)⌉, T).
// CPU counterpart: model/reference.ts moe (Σ_k w_k · down_e(…) + shared).

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
  accumulate: u32,
  rsF: u32,       // words per routed down row (cols = F, a multiple of 4)
  rsFs: u32,      // words per shared down row (cols = Fs)
  Ks: u32,
  scF: u32,       // ⌈F / 128⌉
  scFs: u32,      // ⌈Fs / 128⌉
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> xin: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> codes: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read> shCodes: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> shScales: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

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

// RPT rows at b (+ o), word k of each, against one 16-column chunk of h
fn step_routed(b: u32, o: vec3<u32>, k: u32, x: X16, acc: ptr<function, vec4<f32>>) {
  (*acc).x += dot16(codes[b + k], x);
  if (RPT > 1u) { (*acc).y += dot16(codes[b + o.x + k], x); }
  if (RPT > 2u) {
    (*acc).z += dot16(codes[b + o.y + k], x);
    (*acc).w += dot16(codes[b + o.z + k], x);
  }
}

fn dot_routed(b: u32, s: u32, o: vec3<u32>, xo: u32, cols: u32, scols: u32) -> vec4<f32> {
  let full = cols / 16u; // vec4 words whose 16 columns all exist
  let mul = select(1.0, 256.0, F16BITS);
  var acc = vec4<f32>(0.0);
  var k = 0u;
  for (var kb = 0u; kb < scols; kb++) {
    let kend = min(kb * 8u + 8u, full); // 8 vec4 words = one 128-column block
    var part = vec4<f32>(0.0);
    for (; k < kend; k++) {
      step_routed(b, o, k, xfull(xo + 16u * k), &part);
    }
    if (kb + 1u == scols && (cols & 15u) != 0u) {
      // the last, partial vec4 word (always in the last block): padding codes are 0, h masked to 0 past cols
      step_routed(b, o, full, xtail(xo, 16u * full, cols), &part);
    }
    acc += part * (scales[s + kb] * mul);
  }
  return acc;
}
// the same over the shared expert's down_proj
fn step_shared(b: u32, o: vec3<u32>, k: u32, x: X16, acc: ptr<function, vec4<f32>>) {
  (*acc).x += dot16(shCodes[b + k], x);
  if (RPT > 1u) { (*acc).y += dot16(shCodes[b + o.x + k], x); }
  if (RPT > 2u) {
    (*acc).z += dot16(shCodes[b + o.y + k], x);
    (*acc).w += dot16(shCodes[b + o.z + k], x);
  }
}

fn dot_shared(b: u32, s: u32, o: vec3<u32>, xo: u32, cols: u32, scols: u32) -> vec4<f32> {
  let full = cols / 16u; // vec4 words whose 16 columns all exist
  let mul = select(1.0, 256.0, F16BITS);
  var acc = vec4<f32>(0.0);
  var k = 0u;
  for (var kb = 0u; kb < scols; kb++) {
    let kend = min(kb * 8u + 8u, full); // 8 vec4 words = one 128-column block
    var part = vec4<f32>(0.0);
    for (; k < kend; k++) {
      step_shared(b, o, k, xfull(xo + 16u * k), &part);
    }
    if (kb + 1u == scols && (cols & 15u) != 0u) {
      // the last, partial vec4 word (always in the last block): padding codes are 0, h masked to 0 past cols
      step_shared(b, o, full, xtail(xo, 16u * full, cols), &part);
    }
    acc += part * (shScales[s + kb] * mul);
  }
  return acc;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let d0 = gid.x * RPT;
  let t = wid.y;
  if (d0 >= p.D) { return; }
  let oo = t * p.D + d0;
  let nr = p.D - d0; // valid rows from d0
  var acc = vec4<f32>(0.0);
  if (p.accumulate != 0u) {
    acc.x = out[oo];
    if (RPT > 1u && nr > 1u) { acc.y = out[oo + 1u]; }
    if (RPT > 2u && nr > 2u) { acc.z = out[oo + 2u]; }
    if (RPT > 3u && nr > 3u) { acc.w = out[oo + 3u]; }
  }
  let rsv = p.rsF / 4u;
  let mw = p.D * rsv;                      // vec4 words per expert matrix
  let ms = ((p.D + 127u) / 128u) * p.scF;  // scales per expert matrix
  let srb = d0 / 128u;
  let o = rowOffsets(nr, rsv);
  for (var k = 0u; k < p.K; k++) {
    let e = ids[t * p.K + k];
    if (e >= p.e0 && e < p.e1) {
      let m = e - p.e0;
      acc += dot_routed(m * mw + d0 * rsv, m * ms + srb * p.scF, o, (t * p.Ks + k) * p.Fmax, p.F, p.scF);
    }
  }
  if (p.doShared != 0u) {
    let rsvs = p.rsFs / 4u;
    acc += dot_shared(d0 * rsvs, srb * p.scFs, rowOffsets(nr, rsvs), (t * p.Ks + p.K) * p.Fmax, p.Fs, p.scFs);
  }
  out[oo] = acc.x;
  if (RPT > 1u && nr > 1u) { out[oo + 1u] = acc.y; }
  if (RPT > 2u && nr > 2u) { out[oo + 2u] = acc.z; }
  if (RPT > 3u && nr > 3u) { out[oo + 3u] = acc.w; }
}
