// shaders/include/naive_fp8.wgsl: how the naive FP8 twins read a weight, one code at a time: byte_of picks code c
// (column c of the row) from its packed word (4 codes per u32, little-endian), e4m3 decodes it (§3.1 (A), exact).
// #include "e4m3.wgsl"

fn byte_of(word: u32, c: u32) -> u32 {
  return (word >> ((c & 3u) * 8u)) & 0xFFu;
}
