// shaders/include/expert_scales.wgsl: the scale lookup of the expert kernels that read scales one at a time
// (rowdot.wgsl, the grouped GEMMs), spliced after their format include: scale i of the routed stack (scales) or of
// the shared expert (shScales), 1 for a format without scales (the buffers are bound, not read).
// #each SUF S: routed scales; shared shScales
fn scale_$SUF(i: u32) -> f32 {
  if (HAS_SCALES) { return $S[i]; }
  return 1.0;
}
// #end
