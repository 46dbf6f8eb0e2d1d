// mla_attention.wgsl — causal flash attention of latent queries over the latent KV cache (docs/model.md §4.5,
// absorbed form; the same kernel serves prefill chunks and decode steps):
//   for each row ρ = (t, h) (ρ = t·H + h), visible keys j ≤ p0 + t (docs/model.md §4.4, any chunk start p0):
//   score(ρ, j) = scale · qLat[ρ] · [ĉ_j | k_pe_j]         (= scale · (q̃·ĉ_j + q_pe·k_pe_j), L = R + Dr wide)
//   ō[ρ] = Σ_j softmax_j(score) · ĉ_j                        (R wide)
// Online softmax (running max m, sum l, rescaled accumulator); no score matrix in memory beyond one
// [BM, BN] tile. A workgroup owns BM rows and walks the cache in tiles of BN rows staged in workgroup memory,
// so every tile serves BM rows (all heads of a decode token at once when H ≤ BM).
// Split mode (flash-decoding): workgroup (rb, s) covers keys [s·chunk, (s+1)·chunk) and writes the
// unnormalised partial (o, m, l); mla_decode_reduce.wgsl merges the splits. Otherwise it writes ō = o / l.
//
// Bindings (group 0):
//   0  qLat    array<f32>  [T, H, L]           latent queries (mla_absorb_q.wgsl)
//   1  cacheC  array<f32>  ĉ_j[r] at j·cStride + r            (the layer's latent cache)
//   2  cachePe array<f32>  k_pe_j[i] at j·peStride + peOffset + i (may alias cacheC: both read-only)
//   3  outO    array<f32>  no split: ō [T·H, R]; split: partial o [splits, T·H, R]
//   4  outML   array<f32>  split: [splits, T·H, 2] (m, l); no split: unused (any 16-byte buffer)
//   5  params  uniform     Params (include/mla_attention_io.wgsl)
// Workgroup: WG threads (override, default 64); BM rows and BN cache rows per tile (parameters) within the
// array capacities TILE ≥ BN·L, SC ≥ BM·BN, ROWS ≥ BM (overrides). Thread i accumulates latent dims i, i+WG, ... (rpt = ⌈R/WG⌉) of all
// BM rows: BM·rpt ≤ 64 private floats. Dispatch: (⌈T·H / BM⌉, splits).
// CPU counterpart: model/reference.ts attentionAbsorbed (up to the W_UV product).

override WG: u32 = 64u;
// workgroup array capacities, set to the launch's exact needs: SwiftShader's compile time grows by ~2 ms per
// workgroup array element, so nothing is sized for the worst case
override TILE: u32 = 256u; // floats of the cache tile (≥ BN · L)
override SC: u32 = 64u;    // ≥ BM · BN
override ROWS: u32 = 8u;   // ≥ BM

const MAX_ACC: u32 = 64u;
const NEG: f32 = -3.0e38; // "-inf" of the running max; exp(NEG - m) == 0 for every finite m

// #include "mla_attention_io.wgsl"

var<workgroup> kt: array<f32, TILE>;   // [BN, L] cache tile
var<workgroup> sc: array<f32, SC>;     // [BM, BN] scores, then probabilities
var<workgroup> alpha: array<f32, ROWS>; // [BM] per-row rescale of this tile
var<workgroup> lsum: array<f32, ROWS>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let H = p.H;
  let BM = p.BM;
  let BN = p.BN;
  let R = p.R;
  let L = R + p.Dr;
  let rows = p.T * H;
  let row0 = wid.x * BM;
  let s = wid.y;
  // keys of this workgroup: its split, up to the last position any of its rows can see
  let lastRow = min(row0 + BM, rows) - 1u;
  let j0 = s * p.chunk;
  let j1 = min(j0 + p.chunk, p.p0 + lastRow / H + 1u);

  var m = NEG; // running max and sum of row row0 + lid (threads lid < BM)
  var l = 0.0;
  var acc: array<f32, MAX_ACC>;
  for (var i = 0u; i < MAX_ACC; i++) { acc[i] = 0.0; }

  for (var jt = j0; jt < j1; jt += BN) {
    for (var i = lid; i < BN * L; i += WG) {
      let j = jt + i / L;
      let c = i % L;
      var v = 0.0;
      if (j < j1) {
        if (c < R) { v = cacheC[j * p.cStride + c]; } else { v = cachePe[j * p.peStride + p.peOffset + c - R]; }
      }
      kt[i] = v;
    }
    workgroupBarrier();

    for (var i = lid; i < BM * BN; i += WG) {
      let row = row0 + i / BN;
      let b = i % BN;
      let j = jt + b;
      var v = NEG;
      if (row < rows && j < j1 && j <= p.p0 + row / H) {
        let qo = row * L;
        let ko = b * L;
        var d = 0.0;
        for (var c = 0u; c < L; c++) { d += qLat[qo + c] * kt[ko + c]; }
        v = d * p.scale;
      }
      sc[i] = v;
    }
    workgroupBarrier();

    if (lid < BM) {
      var mt = m;
      for (var b = 0u; b < BN; b++) { mt = max(mt, sc[lid * BN + b]); }
      let al = exp(m - mt);
      var ls = 0.0;
      for (var b = 0u; b < BN; b++) {
        let v = sc[lid * BN + b];
        let pv = select(0.0, exp(v - mt), v > 0.5 * NEG);
        sc[lid * BN + b] = pv;
        ls += pv;
      }
      l = l * al + ls;
      m = mt;
      alpha[lid] = al;
    }
    workgroupBarrier();

    for (var a = 0u; a < BM; a++) {
      let al = alpha[a];
      for (var i = 0u; i < p.rpt; i++) {
        let r = lid + i * WG;
        if (r < R) {
          var v = acc[a * p.rpt + i] * al;
          for (var b = 0u; b < BN; b++) { v += sc[a * BN + b] * kt[b * L + r]; }
          acc[a * p.rpt + i] = v;
        }
      }
    }
    workgroupBarrier();
  }

  if (lid < BM) {
    lsum[lid] = l;
    let row = row0 + lid;
    if (p.split != 0u && row < rows) {
      outML[(s * rows + row) * 2u] = m;
      outML[(s * rows + row) * 2u + 1u] = l;
    }
  }
  workgroupBarrier();
  for (var a = 0u; a < BM; a++) {
    let row = row0 + a;
    if (row < rows) {
      for (var i = 0u; i < p.rpt; i++) {
        let r = lid + i * WG;
        if (r < R) {
          if (p.split != 0u) {
            outO[(s * rows + row) * R + r] = acc[a * p.rpt + i];
          } else {
            outO[row * R + r] = acc[a * p.rpt + i] / lsum[a];
          }
        }
      }
    }
  }
}
