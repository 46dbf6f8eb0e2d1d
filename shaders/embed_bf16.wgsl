// embed_bf16.wgsl — embedding gather from a BF16 table (docs/model.md §4.1), widened exactly to f32:
//   out[outOffset + t·D + j] = bf16(table[tokens[t], j])     for the tokens whose row lies in this chunk
// The table may be split by rows into chunks (binding-size limit); the launcher dispatches once per chunk and
// each dispatch writes only the tokens in [rowStart, rowStart + chunkRows).
//
// Bindings (group 0):
//   0  table   array<u32>  [chunkRows, stride]   BF16 codes, 2 per word (low half first)
//   1  tokens  array<u32>  [T]                   token ids (checked on the CPU to be < vocab)
//   2  out     array<f32>  [T, D] at outOffset
//   3  params  uniform     Params
// Workgroup: WG threads (override, default 64) along j. Dispatch: (⌈D / WG⌉, T).
// CPU counterpart: src/model/reference.ts embed.

override WG: u32 = 64u;

struct Params {
  D: u32,         // row width, in elements
  stride: u32,    // words per table row (>= ⌈D / 2⌉)
  rowStart: u32,  // first table row in this chunk
  chunkRows: u32, // rows in this chunk
  outOffset: u32, // in elements
  tokOffset: u32, // index of token 0 in `tokens`
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> table: array<u32>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  let t = gid.y;
  let id = tokens[params.tokOffset + t];
  if (j >= params.D || id < params.rowStart || id >= params.rowStart + params.chunkRows) {
    return;
  }
  let q = table[(id - params.rowStart) * params.stride + j / 2u];
  let bits = select(q << 16u, q & 0xFFFF0000u, (j & 1u) == 1u);
  out[params.outOffset + t * params.D + j] = bitcast<f32>(bits);
}
