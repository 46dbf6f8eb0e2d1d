// bench_stream_read.wgsl — the bandwidth ceiling for `webmoe bench`: stream a large buffer once with 16-byte
// loads and sum it. Used instead of copyBufferToBuffer, which on CPU adapters runs a memcpy ~10x faster than
// any shader can read (docs/webgpu-on-linux.md §5), so it is not a ceiling a kernel can reach.
//
// Bindings (group 0):
//   0  src     array<vec4<f32>>  [n_vec4]          read (the streamed buffer)
//   1  sink    array<f32>        [threads]         written: one sum per invocation, so no load is dead code
//   2  params  uniform           { n_vec4: u32 (16-byte words), per_thread: u32 (words, MODE 1 only) }
// Workgroup: WG invocations (override). Dispatch: any number of workgroups along x; threads = WG * num_workgroups.x.
// MODE (override): 0 = grid-stride (invocation i reads words i, i + threads, ...: adjacent lanes read adjacent
//                      words, the GPU-coalesced pattern)
//                  1 = contiguous chunk (invocation i reads words [i * per_thread, (i + 1) * per_thread):
//                      one sequential stream per lane, the CPU-cache-friendly pattern)
// The harness runs both modes and several grid sizes and keeps the fastest as the ceiling (bench/ceilings.ts).
// CPU counterpart: none (a micro-benchmark); bench/ceilings.ts checks the sum on a known buffer.

override WG: u32 = 256u;
override MODE: u32 = 0u;

struct Params {
  n_vec4: u32,     // in 16-byte words
  per_thread: u32, // in 16-byte words (MODE 1)
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> sink: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let tid = gid.x;
  let threads = nwg.x * WG;
  // two accumulators so consecutive adds do not wait on each other
  var a = vec4<f32>(0.0);
  var b = vec4<f32>(0.0);
  if (MODE == 0u) {
    var i = tid;
    loop {
      if (i + threads >= params.n_vec4) { break; }
      a += src[i];
      b += src[i + threads];
      i += 2u * threads;
    }
    if (i < params.n_vec4) { a += src[i]; }
  } else {
    let begin = min(tid * params.per_thread, params.n_vec4);
    let end = min(begin + params.per_thread, params.n_vec4);
    var i = begin;
    loop {
      if (i + 1u >= end) { break; }
      a += src[i];
      b += src[i + 1u];
      i += 2u;
    }
    if (i < end) { a += src[i]; }
  }
  let s = a + b;
  sink[tid] = s.x + s.y + s.z + s.w;
}
