// moe_gateup_id_wide.wgsl — moe_gateup_id.wgsl (same contract, bindings and result up to summation order) tuned
// for CPU adapters the way fp8_gemv_wide.wgsl is (docs/benchmarks.md "Tuning"):
//   slot k < K:  e = ids[t, k];  h[t, k, f] = w[t, k] · silu(G_e[f] · x_t) · (U_e[f] · x_t)    f < F
//   slot K:      the shared expert (weight 1), f < Fs
//   - chunk loads (CW of the format): FP8 and BF16 a vec4<u32> (16 / 8 columns), INT4 a vec2<u32> (16 columns,
//     half a 32-column scale group); rows start on 16-byte boundaries, padding 0;
//   - RPT consecutive rows per invocation (override, 1, 2 or 4), gate and up of each: every chunk of x is loaded
//     once and reused from registers by 2·RPT rows (2·RPT independent accumulation chains);
//   - the format's chunk decoder (shaders/include/format_*.wgsl cdot): FP8 with F16BITS (override) decodes two codes
//     per 32-bit op through f16 bit patterns + unpack2x16float (docs/kernels.md §3.1 (B)), exact, the 256 folded into
//     the scale; INT4 nibbles through the f32 bit trick, exact.
// A kernel family: moe_gateup_id_wide (FP8), _bf16, _int4. Each row has its own scale lookup (FP8: RPT divides
// 128, so a thread's rows share one scale row). Rows past F (or Fs) recompute the last row and are not written;
// the ragged last chunk of a row multiplies x masked to 0 past D.
// XS (override, default false): the workgroup's token row x_t is staged in workgroup memory first (xs, XSN vec4s,
// ⌈D / 16⌉ · 4 used, 0 past D; one barrier before any invocation returns) and every chunk reads it there, as
// fp8_gemv_wide's XS (on lavapipe a storage load at a workgroup-uniform address in a loop is a per-lane gather):
// the same values, so no result bit changes.
//
// Bindings (group 0), as moe_gateup_id.wgsl with the codes viewed as chunks CW:
//   0  xin       array<f32>        [T, D]
//   1  ids       array<u32>        [T, K]
//   2  wts       array<f32>        [T, K]
//   3  codes     array<CW>        stack [2·(e1-e0), F, rsD / CWORDS]   gate_e, up_e of the shard's experts
//   4  scales    array<f32>        stack [2·(e1-e0), smat(F, scD)]
//   5  shCodes   array<CW>        stack [2, Fs, rsD / CWORDS]          shared expert gate, up (any 16 bytes: Fs = 0)
//   6  shScales  array<f32>        stack [2, smat(Fs, scD)]
//   7  h         array<f32>        [T, Ks, Fmax]                   written
//   8  params    uniform           Params (as moe_gateup_id.wgsl)
// Workgroup: WG threads (override, default 64), RPT rows each; one barrier under XS, none otherwise.
// Dispatch: (⌈Fmax / (WG · RPT)⌉, K or Ks slots, Tw): tokens t0 .. t0 + Tw - 1 (Tw = T, t0 = 0 unless offloading runs waves).
// CPU counterpart: model/reference.ts moe (silu(gate·x) ⊙ up·x per selected expert, × its weight).
// #formats fp8 bf16 int4

override WG: u32 = 64u;
override RPT: u32 = 2u;         // rows per invocation: 1, 2 or 4
override XS: bool = false;      // x_t staged in workgroup memory
override XSN: u32 = 1u;         // XS: capacity of xs in vec4s (≥ ⌈D / 16⌉ · 4 + 4)

// #include "gateup_wide_io.wgsl"

// #include "format.wgsl"
// #include "wide_rows.wgsl"

struct GU { g: vec4<f32>, u: vec4<f32> }

var<workgroup> xs: array<vec4<f32>, XSN>; // XS: x_t, 0 past D

// chunk k of x_t: from xs (XS; an 8-column chunk takes the first two vec4s), else from xin (masked past D)
fn xget(xo: u32, k: u32, full: bool) -> XC {
  if (XS) {
    let v = k * (CCOLS / 4u);
    return xc4(xs[v], xs[v + 1u], xs[v + 2u], xs[v + 3u]);
  }
  if (full) { return xc_full(xo + CCOLS * k); }
  return xc_tail(xo, CCOLS * k, p.D);
}

// #each SUF W S: routed codes scales; shared shCodes shScales
// 2·RPT rows of one chunk: gate rows at gb (+ o), up rows at ub (+ o), chunk k of each row
fn step_$SUF(gb: u32, ub: u32, o: vec3<u32>, k: u32, x: XC, pg: ptr<function, vec4<f32>>, pu: ptr<function, vec4<f32>>) {
  (*pg).x += cdot($W[gb + k], x);
  (*pu).x += cdot($W[ub + k], x);
  if (RPT > 1u) {
    (*pg).y += cdot($W[gb + o.x + k], x);
    (*pu).y += cdot($W[ub + o.x + k], x);
  }
  if (RPT > 2u) {
    (*pg).z += cdot($W[gb + o.y + k], x);
    (*pu).z += cdot($W[ub + o.y + k], x);
    (*pg).w += cdot($W[gb + o.z + k], x);
    (*pu).w += cdot($W[ub + o.z + k], x);
  }
}

// gate and up rows' dots; gs / us: the first row's scale rows, so: the other rows' scale-row offsets
fn gu_$SUF(gb: u32, ub: u32, gs: u32, us: u32, o: vec3<u32>, so: vec3<u32>, xo: u32) -> GU {
  let ch = chunks(p.D);
  var ag = vec4<f32>(0.0);
  var au = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < ch.y; k0 += ch.z) {
    let kend = min(k0 + ch.z, ch.x);
    var pg = vec4<f32>(0.0);
    var pu = vec4<f32>(0.0);
    for (var k = k0; k < kend; k++) {
      step_$SUF(gb, ub, o, k, xget(xo, k, true), &pg, &pu);
    }
    if (kend < min(k0 + ch.z, ch.y)) {
      // the last, partial chunk (always in the last block): x masked to 0 past D
      step_$SUF(gb, ub, o, ch.x, xget(xo, ch.x, false), &pg, &pu);
    }
    let kb = k0 / ch.z;
    if (HAS_SCALES) {
      ag += pg * (vec4<f32>($S[gs + kb], $S[gs + so.x + kb], $S[gs + so.y + kb], $S[gs + so.z + kb]) * cmul());
      au += pu * (vec4<f32>($S[us + kb], $S[us + so.x + kb], $S[us + so.y + kb], $S[us + so.z + kb]) * cmul());
    } else {
      ag += pg;
      au += pu;
    }
  }
  return GU(ag, au);
}
// #end

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  _ = &scales; // one binding layout for every format (BF16 reads no scales)
  _ = &shScales;
  let f0 = gid.x * RPT;
  let k = wid.y;
  let t = wid.z + p.t0;
  let xo = t * p.D;
  if (XS) {
    for (var v = lid; v < ((p.D + 15u) / 16u) * 4u; v += WG) { xs[v] = x4m(xo, v * 4u, p.D); }
    workgroupBarrier();
  }
  let rsv = p.rsD / CWORDS;
  var r: GU;
  var wt = 1.0;
  var rows = 0u;
  if (k < p.K) {
    let e = ids[t * p.K + k];
    if (e < p.e0 || e >= p.e1 || f0 >= p.F) { return; }
    wt = wts[t * p.K + k];
    rows = p.F;
    let mw = p.F * rsv;               // chunks per matrix
    let ms = smat(p.F, p.scD);        // scales per matrix
    let m = 2u * (e - p.e0);          // gate matrix; up is m + 1
    let sr = srow(f0, p.scD);
    r = gu_routed(m * mw + f0 * rsv, (m + 1u) * mw + f0 * rsv, m * ms + sr, (m + 1u) * ms + sr,
                  rowOffsets(p.F - f0, rsv), scaleRowOffsets(f0, p.F - f0, p.scD), xo);
  } else {
    if (p.doShared == 0u || f0 >= p.Fs) { return; }
    rows = p.Fs;
    let mw = p.Fs * rsv;
    let sr = srow(f0, p.scD);
    r = gu_shared(f0 * rsv, mw + f0 * rsv, sr, smat(p.Fs, p.scD) + sr,
                  rowOffsets(p.Fs - f0, rsv), scaleRowOffsets(f0, p.Fs - f0, p.scD), xo);
  }
  let hv = wt * (r.g / (vec4<f32>(1.0) + exp(-r.g))) * r.u;
  let ho = (t * p.Ks + k) * p.Fmax + f0;
  h[ho] = hv.x;
  if (RPT > 1u && f0 + 1u < rows) { h[ho + 1u] = hv.y; }
  if (RPT > 2u && f0 + 2u < rows) { h[ho + 2u] = hv.z; }
  if (RPT > 3u && f0 + 3u < rows) { h[ho + 3u] = hv.w; }
}
