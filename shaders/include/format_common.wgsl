// shaders/include/format_common.wgsl: spliced by every shaders/include/format_*.wgsl.
// Where a weight's scales sit, for any format (SROWS from the format; sc = the host's scale columns per scale row,
// 0 for formats without scales): row r of a [rows, cols] matrix uses the scale row at srow(r, sc), column c the
// scale at srow(r, sc) + c / SCOLS; a matrix of a stack holds smat(rows, sc) scales.
fn srow(r: u32, sc: u32) -> u32 { return (r / SROWS) * sc; }
fn smat(rows: u32, sc: u32) -> u32 { return ((rows + SROWS - 1u) / SROWS) * sc; }
