// sample.wgsl — draws the next token from one row of logits (temperature, top-k, top-p) with the uniform number
// u in [0, 1) drawn on the CPU (StepSampling.uniform), so a seed reproduces a run. The rule is that of
// src/engine/sampler.ts sampleToken (its CPU counterpart), in sampling order = (logit desc, index asc):
//   0. a NaN or +Infinity logit, or no finite logit: writes NONE (0xFFFFFFFF) instead of a token id; the engine
//      turns it into a NumericError (sampler.ts checkSampledToken). Detected on the bits, not with comparisons.
//   1. temperature < GREEDY_BELOW (sampler.ts GREEDY_BELOW_TEMPERATURE, why there) or topK == 1: argmax (ties:
//      lowest index).
//   2. top-k (0 < topK < V): the first topK tokens in order. Exact: a 4-pass radix select (8 bits per pass,
//      256-bin histogram) over order-preserving u32 keys of the logits finds the topK-th key θ; tokens tied at θ
//      are kept in index order up to the count still needed.
//   3. w_i = exp((l_i − l_max) / temperature) for kept tokens (dropped tokens get w = 0); Z = Σ w.
//   4. top-p (0 < topP < 1): keep the shortest prefix in order whose sum reaches topP·Z.
//   5. the first token in order whose running sum exceeds u·W (W = what is left), else the last one left.
// Steps 4 and 5 find "the first token in order where the running sum crosses a goal" the same way: a 32-step
// bisection over the u32 key space finds the key κ of that token (the largest κ with Σ_{key >= κ} w crossing the
// goal), then the tokens tied at κ are walked in index order. Sums are f32 here and f64 on the CPU: the two
// agree unless u·W or topP·Z falls within ~1e-6 of a running-sum boundary.
//
// Bindings (group 0):
//   0  logits  array<f32>  [V] at logitsOffset
//   1  probs   array<f32>  [V]  scratch: w_i (0 for dropped tokens)
//   2  out     array<u32>  token ids; element outIndex is written
//   3  params  uniform     Params
// Workgroup: WG = 256 threads (fixed: one histogram bin per thread); thread j owns the contiguous chunk j of
// ⌈V / WG⌉ tokens; reductions go through workgroup memory and are combined by thread 0 in chunk order.
// Dispatch: 1 workgroup.
// CPU counterpart: src/engine/sampler.ts sampleToken.

const WG: u32 = 256u;
const NONE: u32 = 0xFFFFFFFFu;
const NEG_INF_BITS: u32 = 0xFF800000u;
const GREEDY_BELOW: f32 = 1e-30;

struct Params {
  V: u32,
  logitsOffset: u32,
  outIndex: u32,
  topK: u32,         // 0 = off
  temperature: f32,  // < GREEDY_BELOW: greedy
  topP: f32,         // <= 0 or >= 1: off
  uniform: f32,      // in [0, 1)
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> probs: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> hist: array<atomic<u32>, WG>;
var<workgroup> redF: array<f32, WG>;
var<workgroup> redF2: array<f32, WG>;
var<workgroup> redU: array<u32, WG>;
var<workgroup> shF: f32;
var<workgroup> shU: u32;
var<workgroup> shU2: u32;
var<workgroup> nonFinite: atomic<u32>;  // zero-initialised; set when a thread sees NaN / +Infinity

// order-preserving key: a < b as f32 <=> key(a) < key(b) as u32
fn key(f: f32) -> u32 {
  let b = bitcast<u32>(f);
  return select(~b, b | 0x80000000u, (b & 0x80000000u) == 0u);
}

fn logit(i: u32) -> f32 {
  return logits[params.logitsOffset + i];
}

fn chunkOf(lid: u32) -> vec2<u32> {
  let chunk = (params.V + WG - 1u) / WG;
  let c0 = min(lid * chunk, params.V);
  return vec2<u32>(c0, min(c0 + chunk, params.V));
}

// Σ_{key_i >= kappa} w_i, summed per chunk then over chunks in order; uniform result
fn massFrom(kappa: u32, lid: u32) -> f32 {
  let c = chunkOf(lid);
  var s = 0.0;
  for (var i = c.x; i < c.y; i++) {
    if (key(logit(i)) >= kappa) { s += probs[i]; }
  }
  redF[lid] = s;
  workgroupBarrier();
  if (lid == 0u) {
    var t = 0.0;
    for (var j = 0u; j < WG; j++) { t += redF[j]; }
    shF = t;
  }
  return workgroupUniformLoad(&shF);
}

fn crosses(run: f32, goal: f32, strict: bool) -> bool {
  return select(run >= goal, run > goal, strict);
}

// The first token in sampling order whose running sum of w crosses `goal` (>= or, when strict, >); the last
// kept token in order when rounding leaves none. Returns (key, index) of that token; uniform.
fn crossing(goal: f32, strict: bool, lid: u32) -> vec2<u32> {
  var lo = 0u;
  var hi = NONE;
  for (var it = 0u; it < 32u; it++) {
    let d = hi - lo;
    let mid = lo + (d >> 1u) + (d & 1u);
    if (crosses(massFrom(mid, lid), goal, strict)) { lo = mid; } else { hi = mid - 1u; }
  }
  let kappa = lo;
  let c = chunkOf(lid);
  var gt = 0.0;
  var eq = 0.0;
  for (var i = c.x; i < c.y; i++) {
    let k = key(logit(i));
    if (k > kappa) { gt += probs[i]; } else if (k == kappa) { eq += probs[i]; }
  }
  redF[lid] = gt;
  redF2[lid] = eq;
  workgroupBarrier();
  if (lid == 0u) {
    var run = 0.0;
    for (var j = 0u; j < WG; j++) { run += redF[j]; }
    var jSel = NONE;
    for (var j = 0u; j < WG; j++) {
      if (redF2[j] > 0.0 && crosses(run + redF2[j], goal, strict)) { jSel = j; break; }
      run += redF2[j];
    }
    var pick = NONE;
    if (jSel != NONE) {
      let cj = chunkOf(jSel);
      for (var i = cj.x; i < cj.y; i++) {
        if (key(logit(i)) == kappa && probs[i] > 0.0) {
          run += probs[i];
          pick = i;
          if (crosses(run, goal, strict)) { break; }
        }
      }
    }
    if (pick == NONE) {
      // rounding: the last kept token in order (smallest key, then largest index)
      var bestK = NONE;
      for (var i = 0u; i < params.V; i++) {
        let k = key(logit(i));
        if (probs[i] > 0.0 && k <= bestK) { bestK = k; pick = i; }
      }
    }
    shU = pick;
    shU2 = key(logit(pick));
  }
  let pick = workgroupUniformLoad(&shU);
  return vec2<u32>(workgroupUniformLoad(&shU2), pick);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  let V = params.V;
  let c = chunkOf(lid);

  // 1. max and its lowest index
  var bv = 0.0;
  var bi = NONE;
  var bad = false;
  for (var i = c.x; i < c.y; i++) {
    let v = logit(i);
    let b = bitcast<u32>(v);
    bad = bad || ((b & 0x7F800000u) == 0x7F800000u && b != NEG_INF_BITS);
    if (bi == NONE || v > bv) { bv = v; bi = i; }
  }
  if (bad) { atomicOr(&nonFinite, 1u); }
  redF[lid] = bv;
  redU[lid] = bi;
  workgroupBarrier();
  if (lid == 0u) {
    var v = 0.0;
    var idx = NONE;
    for (var j = 0u; j < WG; j++) {
      if (redU[j] != NONE && (idx == NONE || redF[j] > v)) { v = redF[j]; idx = redU[j]; }
    }
    shF = v;
    // NONE when a logit is NaN / +Infinity, or every logit is -Infinity (then no weight is defined)
    shU = select(idx, NONE, atomicLoad(&nonFinite) != 0u || bitcast<u32>(v) == NEG_INF_BITS);
  }
  let mx = workgroupUniformLoad(&shF);
  let greedy = workgroupUniformLoad(&shU);
  if (greedy == NONE || params.temperature < GREEDY_BELOW || params.topK == 1u) {
    if (lid == 0u) { out[params.outIndex] = greedy; }
    return;
  }

  // 2. top-k: θ = the topK-th largest key; `need` = how many tokens tied at θ are kept (lowest indices first)
  let useTopK = params.topK > 0u && params.topK < V;
  var theta = 0u;
  var need = NONE;
  var eqSeen = 0u;
  if (useTopK) {
    var prefix = 0u;
    var mask = 0u;
    need = params.topK;
    for (var round = 0u; round < 4u; round++) {
      let shift = 24u - 8u * round;
      atomicStore(&hist[lid], 0u);
      workgroupBarrier();
      for (var i = c.x; i < c.y; i++) {
        let k = key(logit(i));
        if ((k & mask) == prefix) { atomicAdd(&hist[(k >> shift) & 255u], 1u); }
      }
      workgroupBarrier();
      if (lid == 0u) {
        var rem = need;
        var sel = 0u;
        for (var b = 255i; b >= 0i; b--) {
          let h = atomicLoad(&hist[u32(b)]);
          if (rem <= h) { sel = u32(b); break; }
          rem -= h;
        }
        shU = prefix | (sel << shift);
        shU2 = rem;
      }
      prefix = workgroupUniformLoad(&shU);
      need = workgroupUniformLoad(&shU2);
      mask |= 255u << shift;
    }
    theta = prefix;
    // tokens tied at θ before this chunk, in index order
    var eq = 0u;
    for (var i = c.x; i < c.y; i++) {
      if (key(logit(i)) == theta) { eq++; }
    }
    redU[lid] = eq;
    workgroupBarrier();
    if (lid == 0u) {
      var run = 0u;
      for (var j = 0u; j < WG; j++) {
        let e = redU[j];
        redU[j] = run;
        run += e;
      }
    }
    workgroupBarrier();
    eqSeen = redU[lid];
  }

  // 3. weights of the kept tokens
  let invT = 1.0 / params.temperature;
  for (var i = c.x; i < c.y; i++) {
    let l = logit(i);
    var keep = true;
    if (useTopK) {
      let k = key(l);
      keep = k > theta;
      if (k == theta) {
        keep = eqSeen < need;
        eqSeen++;
      }
    }
    probs[i] = select(0.0, exp((l - mx) * invT), keep);
  }
  storageBarrier();
  let Z = massFrom(0u, lid);

  // 4. top-p: drop every token after the one where the running sum reaches topP·Z
  if (params.topP > 0.0 && params.topP < 1.0) {
    let cut = crossing(params.topP * Z, false, lid);
    for (var i = c.x; i < c.y; i++) {
      let k = key(logit(i));
      if (k < cut.x || (k == cut.x && i > cut.y)) { probs[i] = 0.0; }
    }
    storageBarrier();
  }

  // 5. inverse CDF in sampling order
  let W = massFrom(0u, lid);
  let pick = crossing(params.uniform * W, true, lid);
  if (lid == 0u) { out[params.outIndex] = pick.y; }
}
