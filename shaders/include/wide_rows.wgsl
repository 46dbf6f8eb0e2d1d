// shaders/include/wide_rows.wgsl: spliced into the wide expert kernels (moe_gateup_id_wide, moe_down_id_wide) after
// their format include: where a thread's RPT rows and their chunks are.

const CCOLS: u32 = CWORDS * QCOLS; // columns per chunk (one CW load)

// (chunks whose columns all exist, all chunks, chunks per scale block) of a row of n columns
fn chunks(n: u32) -> vec3<u32> {
  return vec3<u32>(n / CCOLS, (n + CCOLS - 1u) / CCOLS, max(1u, SCOLS / CCOLS));
}

// Row offsets (chunks) of rows 1..3 of a thread relative to its first row: rows past the last valid one
// (nr rows from the first) repeat it.
fn rowOffsets(nr: u32, rsv: u32) -> vec3<u32> {
  return vec3<u32>(min(1u, nr - 1u), min(2u, nr - 1u), min(3u, nr - 1u)) * rsv;
}

// Scale-row offsets of rows 1..3 relative to row r0 (0 when the rows share a scale row, as FP8's do)
fn scaleRowOffsets(r0: u32, nr: u32, sc: u32) -> vec3<u32> {
  let b = srow(r0, sc);
  return vec3<u32>(srow(r0 + min(1u, nr - 1u), sc), srow(r0 + min(2u, nr - 1u), sc), srow(r0 + min(3u, nr - 1u), sc)) - vec3<u32>(b);
}
