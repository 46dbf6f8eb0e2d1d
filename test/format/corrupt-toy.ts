/**
 * Toy checkpoints (the `tiny` config, FP8) with one tensor's bytes patched to a non-finite value, for the
 * load-time scan tests (format/verify.ts) on both backends. Each case names the tensor the error must name.
 */
import { openSafetensors } from '../../src/format/safetensors.js';
import { memorySource } from '../../src/format/source.js';
import { makeToyCheckpointInMemory } from '../../src/model/toy.js';

export interface Corruption {
  label: string;
  tensor: string;
  /** Writes the bad value into the tensor's bytes (little-endian), at element `element`. */
  element: number;
  patch: (bytes: Uint8Array, dtype: string) => void;
}

const at = (bytes: Uint8Array, dtype: string, value: 'nan' | 'inf', i: number): void => {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'F32') v.setFloat32(4 * i, value === 'nan' ? NaN : Infinity, true);
  else if (dtype === 'BF16') v.setUint16(2 * i, value === 'nan' ? 0x7fc0 : 0x7f80, true);
  else throw new Error(`unexpected dtype ${dtype}`);
};

export const CORRUPTIONS: Corruption[] = [
  { label: 'FP8 weight code 0x7F', tensor: 'model.layers.0.self_attn.q_a_proj.weight', element: 3, patch: (b) => (b[3] = 0x7f) },
  { label: 'FP8 expert weight code 0xFF', tensor: 'model.layers.1.mlp.experts.5.down_proj.weight', element: 3, patch: (b) => (b[3] = 0xff) },
  { label: 'NaN block scale', tensor: 'model.layers.0.self_attn.kv_b_proj.weight_scale_inv', element: 0, patch: (b, d) => at(b, d, 'nan', 0) },
  { label: 'Inf RMSNorm gain', tensor: 'model.layers.1.post_attention_layernorm.weight', element: 3, patch: (b, d) => at(b, d, 'inf', 3) },
  { label: 'NaN router bias', tensor: 'model.layers.1.mlp.gate.e_score_correction_bias', element: 3, patch: (b, d) => at(b, d, 'nan', 3) },
  { label: 'Inf embedding', tensor: 'model.embed_tokens.weight', element: 3, patch: (b, d) => at(b, d, 'inf', 3) },
];

/** The `tiny` toy in memory with `c` applied (file name -> bytes). */
export async function corruptToy(c: Corruption): Promise<Map<string, Uint8Array>> {
  const toy = await makeToyCheckpointInMemory('tiny', { seed: 2 });
  for (const [file, bytes] of toy.data) {
    if (!file.endsWith('.safetensors')) continue;
    const st = await openSafetensors(memorySource(bytes, file));
    const t = st.tensors.get(c.tensor);
    if (!t) continue;
    c.patch(bytes.subarray(t.offset, t.offset + t.byteLength), t.dtype);
    return toy.data;
  }
  throw new Error(`no tensor ${c.tensor} in the toy`);
}
