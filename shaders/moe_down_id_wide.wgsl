// moe_down_id_wide.wgsl — moe_down_id.wgsl (same contract, bindings and result up to summation order) tuned for
// CPU adapters the way fp8_gemv_wide.wgsl is (docs/benchmarks.md "Tuning"):
//   out[t, d] = (accumulate ? out[t, d] : 0) + Σ_{k < K, ids[t,k] in shard} Dn_e[d] · h[t, k, :F]
//                                            + (doShared ? DnS[d] · h[t, K, :Fs] : 0)
//   - chunk loads (CW of the format): FP8 and BF16 a vec4<u32> (16 / 8 columns), INT4 a vec2<u32> (16 columns);
//   - RPT consecutive output rows per invocation (override, 1, 2 or 4): every chunk of h is loaded once and reused
//     from registers by RPT rows (RPT independent accumulation chains);
//   - the format's chunk decoder (format_*.wgsl cdot; FP8 F16BITS as in moe_gateup_id_wide.wgsl).
// A kernel family: moe_down_id_wide (FP8), _bf16, _int4. Each output row is owned by one thread, which loops over
// the slots in a fixed order: deterministic, no atomics. Rows past D recompute the last row and are not written.
// h past F (Fs) in a slot's row is masked to 0 (it is scratch of other widths).
// XS (override, default false): the workgroup's token's Ks slot rows of h are staged in workgroup memory first (xs,
// XSN vec4s, ⌈Fmax / 16⌉ · 4 per slot, masked to 0 past the slot's width; one barrier before any invocation
// returns) and every chunk reads them there, as moe_gateup_id_wide's XS: the same values, no result bit changes.
// XSLOT (override, with XS): where the Ks rows do not fit (Kimi widths: 9 rows of 2048), xs holds one slot row at a
// time, staged between two barriers before each slot (every slot, in or out of the dispatch's shard, so the barriers
// stay in uniform control flow); invocations past D stay for the barriers and write nothing.
//
// Bindings (group 0), as moe_down_id.wgsl with the codes viewed as chunks CW:
//   0  xin       array<f32>        [T, Ks, Fmax]            h
//   1  ids       array<u32>        [T, K]
//   2  codes     array<CW>        stack [e1-e0, D, rsF / CWORDS] down_proj of the shard's experts
//   3  scales    array<f32>        stack [e1-e0, smat(D, scF)]
//   4  shCodes   array<CW>        [D, rsFs / CWORDS]             shared expert down_proj (any 16 bytes when Fs = 0)
//   5  shScales  array<f32>        [smat(D, scFs)]
//   6  out       array<f32>        [T, D]                    read (accumulate) and written
//   7  params    uniform           Params (as moe_down_id.wgsl)
// Workgroup: WG threads (override, default 64), RPT rows each; one barrier under XS (2 per slot under XSLOT), none
// otherwise. Dispatch: (⌈D / (WG · RPT)⌉, Tw): tokens t0 .. t0 + Tw - 1.
// CPU counterpart: model/reference.ts moe (Σ_k w_k · down_e(…) + shared).
// #formats fp8 bf16 int4

override WG: u32 = 64u;
override RPT: u32 = 2u;         // rows per invocation: 1, 2 or 4
override XS: bool = false;      // the token's slot rows of h staged in workgroup memory
override XSN: u32 = 1u;         // XS: capacity of xs in vec4s (≥ Ks · ⌈Fmax / 16⌉ · 4 + 4; XSLOT: one row's + 4)
override XSLOT: bool = false;   // XS one slot row at a time

// #include "down_wide_io.wgsl"

// #include "format.wgsl"
// #include "wide_rows.wgsl"

var<workgroup> xs: array<vec4<f32>, XSN>; // XS: [Ks, ⌈Fmax / 16⌉ · 4] the token's slot rows, 0 past their widths

// vec4s per slot row of xs
fn xsRow() -> u32 {
  return ((p.Fmax + 15u) / 16u) * 4u;
}

// chunk k of slot `slot`'s row (at xo in xin, `cols` wide): from xs (XS; an 8-column chunk takes the first two
// vec4s), else from xin (masked past cols)
fn xget(slot: u32, xo: u32, k: u32, full: bool, cols: u32) -> XC {
  if (XS) {
    let v = select(slot, 0u, XSLOT) * xsRow() + k * (CCOLS / 4u);
    return xc4(xs[v], xs[v + 1u], xs[v + 2u], xs[v + 3u]);
  }
  if (full) { return xc_full(xo + CCOLS * k); }
  return xc_tail(xo, CCOLS * k, cols);
}

// XSLOT: slot `slot`'s row of token t into xs, between two barriers (every invocation calls it, uniform control flow)
fn stageSlot(t: u32, slot: u32, lid: u32) {
  workgroupBarrier();
  for (var v = lid; v < xsRow(); v += WG) {
    xs[v] = x4m((t * p.Ks + slot) * p.Fmax, v * 4u, select(p.F, p.Fs, slot == p.K));
  }
  workgroupBarrier();
}

// #each SUF W S: routed codes scales; shared shCodes shScales
// RPT rows at b (+ o), chunk k of each, against one chunk of h
fn step_$SUF(b: u32, o: vec3<u32>, k: u32, x: XC, acc: ptr<function, vec4<f32>>) {
  (*acc).x += cdot($W[b + k], x);
  if (RPT > 1u) { (*acc).y += cdot($W[b + o.x + k], x); }
  if (RPT > 2u) {
    (*acc).z += cdot($W[b + o.y + k], x);
    (*acc).w += cdot($W[b + o.z + k], x);
  }
}

// s: the first row's scale row, so: the other rows' scale-row offsets
fn dot_$SUF(b: u32, s: u32, o: vec3<u32>, so: vec3<u32>, slot: u32, xo: u32, cols: u32) -> vec4<f32> {
  let ch = chunks(cols);
  var acc = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < ch.y; k0 += ch.z) {
    let kend = min(k0 + ch.z, ch.x);
    var part = vec4<f32>(0.0);
    for (var k = k0; k < kend; k++) {
      step_$SUF(b, o, k, xget(slot, xo, k, true, cols), &part);
    }
    if (kend < min(k0 + ch.z, ch.y)) {
      // the last, partial chunk (always in the last block): h masked to 0 past cols
      step_$SUF(b, o, ch.x, xget(slot, xo, ch.x, false, cols), &part);
    }
    let kb = k0 / ch.z;
    if (HAS_SCALES) {
      acc += part * (vec4<f32>($S[s + kb], $S[s + so.x + kb], $S[s + so.y + kb], $S[s + so.z + kb]) * cmul());
    } else {
      acc += part;
    }
  }
  return acc;
}
// #end

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  _ = &scales; // one binding layout for every format (BF16 reads no scales)
  _ = &shScales;
  let t = wid.y + p.t0;
  let live = gid.x * RPT < p.D;
  // an invocation past D stays (XSLOT's barriers follow: no return before them), skips every dot and writes nothing
  let d0 = select(0u, gid.x * RPT, live);
  if (XS && !XSLOT) {
    let xr = xsRow();
    for (var v = lid; v < p.Ks * xr; v += WG) {
      let slot = v / xr;
      xs[v] = x4m((t * p.Ks + slot) * p.Fmax, (v % xr) * 4u, select(p.F, p.Fs, slot == p.K));
    }
    workgroupBarrier();
  }
  let oo = t * p.D + d0;
  let nr = p.D - d0; // valid rows from d0
  var acc = vec4<f32>(0.0);
  if (p.accumulate != 0u && live) {
    acc.x = out[oo];
    if (RPT > 1u && nr > 1u) { acc.y = out[oo + 1u]; }
    if (RPT > 2u && nr > 2u) { acc.z = out[oo + 2u]; }
    if (RPT > 3u && nr > 3u) { acc.w = out[oo + 3u]; }
  }
  let rsv = p.rsF / CWORDS;
  let mw = p.D * rsv;            // chunks per expert matrix
  let ms = smat(p.D, p.scF);     // scales per expert matrix
  let o = rowOffsets(nr, rsv);
  let so = scaleRowOffsets(d0, nr, p.scF);
  for (var k = 0u; k < p.K; k++) {
    if (XSLOT) { stageSlot(t, k, lid); }
    let e = ids[t * p.K + k];
    if (live && e >= p.e0 && e < p.e1) {
      let m = e - p.e0;
      acc += dot_routed(m * mw + d0 * rsv, m * ms + srow(d0, p.scF), o, so, k, (t * p.Ks + k) * p.Fmax, p.F);
    }
  }
  if (p.doShared != 0u) {
    if (XSLOT) { stageSlot(t, p.K, lid); }
    let rsvs = p.rsFs / CWORDS;
    if (!live) { return; }
    acc += dot_shared(d0 * rsvs, srow(d0, p.scFs), rowOffsets(nr, rsvs), scaleRowOffsets(d0, nr, p.scFs), p.K, (t * p.Ks + p.K) * p.Fmax, p.Fs);
  }
  if (!live) { return; }
  out[oo] = acc.x;
  if (RPT > 1u && nr > 1u) { out[oo + 1u] = acc.y; }
  if (RPT > 2u && nr > 2u) { out[oo + 2u] = acc.z; }
  if (RPT > 3u && nr > 3u) { out[oo + 3u] = acc.w; }
}
