// shaders/include/grouped_tiled.wgsl: the body of the tiled grouped expert GEMMs (moe_gateup_tiled, moe_down_tiled),
// spliced after grouped.wgsl. fp8_gemm_tiled.wgsl's scheme on moe_align.wgsl's blocks: a workgroup takes TT = 4·TQ
// pairs of one block (part wid.y % PARTS of its BM = 16) and WG invocations x 4 weight rows each; per KC = 128
// columns it stages the pairs' activation rows, gathered through the plan, in workgroup memory (zeros for the
// columns past `cols` and the slots past the block's pairs), then every invocation decodes one word of each of its
// 4 rows once (× its scale: the exact f32 weights of the reference) and uses it for the TT pairs from registers.
// Codes are loaded a chunk CW of the format at a time (FP8 and BF16 a vec4<u32>, INT4 a vec2<u32>) and decoded by
// the format's wvals (FP8: two codes per op through f16 bit patterns, docs/kernels.md §3.1 (B)).
// Why workgroup memory (measured for fp8_gemm_tiled on lavapipe, docs/benchmarks.md "Prefill GEMM"): the
// barrier-free grouped kernels read x from the storage buffer at the same address in every invocation, a
// bounds-checked load per element, and those loads bound them; here one vec4 load from workgroup memory feeds 4
// rows. Each output sums its words in column order (the same order for any pairs sharing the block).
// The kernel binds codes / shCodes as array<CW> (rb: row starts in chunks) and supplies slot_x(pr): where the
// activation row of pair pr starts in xin.

override WG: u32 = 64u;
override TQ: u32 = 2u;    // pair quads per workgroup: 1, 2 or 4 (TT = 4·TQ of the block's BM pairs)
override RT: u32 = 4u;    // weight rows per invocation: 4 or 8
const KC: u32 = 128u;     // columns per stage
const KW: u32 = KC / 4u;  // staged vec4 per pair

// the stage: pair slot s (0 .. TT-1), columns 4j .. 4j+3 at s·KW + j (one spare vec4: xt's second operand)
var<workgroup> xs: array<vec4<f32>, 513>;
// the block's (expert, valid pairs), read by one invocation and made uniform
var<workgroup> blk: vec2<u32>;

fn parts() -> u32 { return BM / (4u * TQ); }

// RT ≤ 8 weight rows x 4 pairs (vec4 over the pairs); named fields, never dynamically indexed private arrays
struct Acc { r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>, r4: vec4<f32>, r5: vec4<f32>, r6: vec4<f32>, r7: vec4<f32> }
// the TQ quads of a tile
struct Tile { q0: Acc, q1: Acc, q2: Acc, q3: Acc }
// one decoded, scaled word of each of the RT rows
struct W8 { w0: WQ, w1: WQ, w2: WQ, w3: WQ, w4: WQ, w5: WQ, w6: WQ, w7: WQ }

// stage kb: the activations of the nv pairs at plan[ps ..], columns kb·KC .. + KC (0 past cols and past nv)
fn stage(kb: u32, cols: u32, ps: u32, nv: u32, lid: u32) {
  for (var i = lid; i < 4u * TQ * KW; i += WG) {
    let s = i / KW;
    let col = kb * KC + (i % KW) * 4u;
    var v = vec4<f32>(0.0);
    if (s < nv && col < cols) { v = x4m(slot_x(plan[ps + s]), col, cols); }
    xs[i] = v;
  }
}

// the word at stage column c (stage vec4 j = c / 4) of the RT rows against pairs s .. s+3
fn quad(a: ptr<function, Acc>, w: W8, s: u32, c: u32) {
  let i = s * KW + c / 4u;
  let x0 = xt(xs[i], xs[i + 1u], c);
  let x1 = xt(xs[i + KW], xs[i + KW + 1u], c);
  let x2 = xt(xs[i + 2u * KW], xs[i + 2u * KW + 1u], c);
  let x3 = xt(xs[i + 3u * KW], xs[i + 3u * KW + 1u], c);
  (*a).r0 = qfma4((*a).r0, w.w0, x0, x1, x2, x3);
  (*a).r1 = qfma4((*a).r1, w.w1, x0, x1, x2, x3);
  (*a).r2 = qfma4((*a).r2, w.w2, x0, x1, x2, x3);
  (*a).r3 = qfma4((*a).r3, w.w3, x0, x1, x2, x3);
  if (RT > 4u) {
    (*a).r4 = qfma4((*a).r4, w.w4, x0, x1, x2, x3);
    (*a).r5 = qfma4((*a).r5, w.w5, x0, x1, x2, x3);
    (*a).r6 = qfma4((*a).r6, w.w6, x0, x1, x2, x3);
    (*a).r7 = qfma4((*a).r7, w.w7, x0, x1, x2, x3);
  }
}

// #each SUF W: routed codes; shared shCodes
// the RT rows starting at chunks rb (rows 0-3) and rb2 (rows 4-7; scale rows sb, sb2) of `cols` columns against
// the nv pairs at plan[ps ..]; workgroup-uniform arguments but lid (barriers inside); the buffer choice stays
// outside the chunk loop, as in the grouped kernels
fn tile_$SUF(rb: vec4<u32>, rb2: vec4<u32>, sb: vec4<u32>, sb2: vec4<u32>, cols: u32, ps: u32, nv: u32, lid: u32) -> Tile {
  var a0: Acc;
  var a1: Acc;
  var a2: Acc;
  var a3: Acc;
  let cc = QCOLS * CWORDS;            // columns per chunk (one load per row)
  let chunks = (cols + cc - 1u) / cc; // chunks of a row holding its columns (rows are padded to whole chunks)
  let kc = KC / cc;                   // chunks per stage
  let m = cmul();                     // the decoder's constant factor, folded into the scale (exact: a power of 2)
  for (var kb = 0u; kb * KC < cols; kb++) {
    workgroupBarrier();
    stage(kb, cols, ps, nv, lid);
    workgroupBarrier();
    let kend = min(kb * kc + kc, chunks);
    for (var k = kb * kc; k < kend; k++) {
      let sk = (k * cc) / SCOLS; // the chunk's scale column (a chunk never spans two scale blocks)
      let q0 = $W[rb.x + k];
      let q1 = $W[rb.y + k];
      let q2 = $W[rb.z + k];
      let q3 = $W[rb.w + k];
      let s0 = scale_$SUF(sb.x + sk) * m;
      let s1 = scale_$SUF(sb.y + sk) * m;
      let s2 = scale_$SUF(sb.z + sk) * m;
      let s3 = scale_$SUF(sb.w + sk) * m;
      var q4 = q0;
      var q5 = q0;
      var q6 = q0;
      var q7 = q0;
      var s4 = 0.0;
      var s5 = 0.0;
      var s6 = 0.0;
      var s7 = 0.0;
      if (RT > 4u) {
        q4 = $W[rb2.x + k];
        q5 = $W[rb2.y + k];
        q6 = $W[rb2.z + k];
        q7 = $W[rb2.w + k];
        s4 = scale_$SUF(sb2.x + sk) * m;
        s5 = scale_$SUF(sb2.y + sk) * m;
        s6 = scale_$SUF(sb2.z + sk) * m;
        s7 = scale_$SUF(sb2.w + sk) * m;
      }
      for (var j = 0u; j < CWORDS; j++) {
        var w: W8;
        w.w0 = wvals(q0[j]) * s0;
        w.w1 = wvals(q1[j]) * s1;
        w.w2 = wvals(q2[j]) * s2;
        w.w3 = wvals(q3[j]) * s3;
        if (RT > 4u) {
          w.w4 = wvals(q4[j]) * s4;
          w.w5 = wvals(q5[j]) * s5;
          w.w6 = wvals(q6[j]) * s6;
          w.w7 = wvals(q7[j]) * s7;
        }
        let c = (k - kb * kc) * cc + j * QCOLS;
        quad(&a0, w, 0u, c);
        if (TQ > 1u && nv > 4u) { quad(&a1, w, 4u, c); }
        if (TQ > 2u && nv > 8u) { quad(&a2, w, 8u, c); }
        if (TQ > 3u && nv > 12u) { quad(&a3, w, 12u, c); }
      }
    }
  }
  return Tile(a0, a1, a2, a3);
}
// #end

// What workgroup (wid.x, wid.y) computes: the block's expert e, its part's pair ids at plan[ps ..], nv of them
// (0: nothing to do: a block of another shard, or a part past the block's pairs), the first of its rows (the row
// tile wid.y / PARTS times `rows` rows per workgroup), and whether e is the shared expert. Uniform: every
// invocation gets the same.
struct Part { e: u32, ps: u32, nv: u32, row0: u32, isShared: bool }

fn block_part(wid: vec3<u32>, lid: u32, rows: u32) -> Part {
  let pb = p.pb + wid.x * BM;
  if (lid == 0u) { blk = vec2<u32>(plan[wid.x], pairs(pb)); }
  let info = workgroupUniformLoad(&blk);
  let s0 = (wid.y % parts()) * 4u * TQ;
  var nv = 0u;
  if (runs(info.x) && s0 < info.y) { nv = min(info.y - s0, 4u * TQ); }
  return Part(info.x, pb + s0, nv, (wid.y / parts()) * rows, info.x == p.E);
}

// quad q of a tile as an Acc
fn quad_of(t: Tile, q: u32) -> Acc {
  switch (q) {
    case 0u: { return t.q0; }
    case 1u: { return t.q1; }
    case 2u: { return t.q2; }
    default: { return t.q3; }
  }
}
