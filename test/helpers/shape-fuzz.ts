/**
 * Seeded config fuzzer for the shape sweep (test/engine/shapes.gpu.test.ts, test/model/shapes.test.ts): draws
 * valid DeepseekV3ForCausalLM config.json objects around the edges of the shape rules (docs/model.md §9.3) —
 * hidden sizes that are not multiples of 4 / 16 / 128, 1..6 heads, q_lora_rank null or ragged, kv_lora_rank
 * 16..160, rope / nope / v dims with v ≠ nope, 2..64 experts in 1/1, 2/1, 4/2, 8/4 groups, 1..8 experts per token,
 * 0..2 shared experts, dense-first and moe_layer_freq 2 layer patterns, yarn or no rope scaling, eps 1e-6 / 1e-5,
 * FP8 (with quantization_config) or BF16 (without). Widths stay tiny so the CPU reference and software adapters
 * run a config in well under a second.
 *
 * Every drawn config passes parseConfig (the draw is checked against it); `describeConfig` is the one-line
 * summary the tests print on a failure.
 */
import { parseConfig } from '../../src/model/config.js';
import { mulberry32 } from '../../src/random.js';

type Json = Record<string, unknown>;

export interface FuzzCase {
  seed: number;
  config: Json;
  /** prompt length (tokens) */
  promptLength: number;
  /** prefill chunk size for the engine (>= 1) */
  chunkSize: number;
  /** decode steps after the prefill (through the cache) */
  decodeSteps: number;
  /** whether the context is exactly prompt + decode steps */
  exactContext: boolean;
  /** createGpu maxBindingSizeCap (forces row / expert splits), or undefined */
  bindingCap?: number;
  /** session moeDecodeMaxTokens (by-id vs grouped experts) */
  moeDecodeMaxTokens: number;
  /** session uniformArenaBytes (small: a prompt takes several submissions), or undefined */
  arenaBytes?: number;
  /** run the prefill with taps (unfused residual adds) */
  taps: boolean;
  /** safetensors shards the toy writer makes (> 1: an index.json) */
  shards: number;
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

const HIDDEN = [8, 12, 20, 30, 36, 64, 72, 100, 128, 130, 199, 257] as const;
const KV_RANK = [16, 17, 24, 33, 48, 64, 72, 100, 127, 128, 129, 136, 160] as const;
const Q_RANK = [8, 13, 24, 40, 70, 128, 130, 160] as const;
const GROUPS: ReadonlyArray<[number, number]> = [[1, 1], [2, 1], [4, 2], [8, 4]];

/** A valid config.json object drawn from `seed` (deterministic). */
export function fuzzConfig(seed: number): Json {
  const r = mulberry32(seed * 2654435761 + 12345);
  const H = int(r, 1, 6);
  const D = pick(r, HIDDEN);
  const nope = pick(r, [1, 3, 4, 8, 12, 16, 24, 33, 48] as const);
  const rope = 2 * int(r, 1, 32);
  let v = pick(r, [2, 5, 8, 12, 16, 20, 32, 40] as const);
  if (v === nope) v += 1;
  const [G, TG] = pick(r, GROUPS.filter(([g]) => g <= 8));
  // E a multiple of G with E/G >= 2
  const per = int(r, 2, Math.max(2, Math.floor(64 / G)));
  const E = G * per;
  const K = int(r, 1, Math.min(8, TG * per));
  const L = int(r, 1, 3);
  const yarn = r() < 0.5;
  const factor = pick(r, [2, 4, 8, 32, 40] as const);
  const orig = pick(r, [16, 32, 64, 256, 4096] as const);
  const mscale = pick(r, [0.707, 1] as const);
  const fp8 = r() < 0.6;
  const cfg: Json = {
    architectures: ['DeepseekV3ForCausalLM'],
    model_type: r() < 0.5 ? 'deepseek_v3' : 'kimi_k2',
    vocab_size: int(r, 32, 600),
    hidden_size: D,
    num_hidden_layers: L,
    num_attention_heads: H,
    num_key_value_heads: H,
    q_lora_rank: r() < 0.35 ? null : pick(r, Q_RANK),
    kv_lora_rank: pick(r, KV_RANK),
    qk_nope_head_dim: nope,
    qk_rope_head_dim: rope,
    v_head_dim: v,
    intermediate_size: int(r, 3, 200),
    moe_intermediate_size: int(r, 1, 100),
    n_routed_experts: E,
    num_experts_per_tok: K,
    n_shared_experts: int(r, 0, 2),
    n_group: G,
    topk_group: TG,
    topk_method: 'noaux_tc',
    scoring_func: 'sigmoid',
    norm_topk_prob: r() < 0.6,
    routed_scaling_factor: pick(r, [1, 1.5, 2.5, 2.827, 0.75] as const),
    first_k_dense_replace: int(r, 0, Math.min(2, L)),
    moe_layer_freq: r() < 0.7 ? 1 : 2,
    hidden_act: 'silu',
    rms_norm_eps: r() < 0.5 ? 1e-6 : 1e-5,
    rope_theta: pick(r, [10000, 50000] as const),
    rope_scaling: yarn
      ? { type: 'yarn', factor, original_max_position_embeddings: orig, beta_fast: pick(r, [1, 32] as const), beta_slow: 1, mscale, mscale_all_dim: mscale }
      : null,
    max_position_embeddings: yarn ? factor * orig : pick(r, [64, 4096] as const),
    tie_word_embeddings: false,
    attention_bias: false,
    bos_token_id: 0,
    eos_token_id: 1,
    num_nextn_predict_layers: 0,
  };
  // rarer draws at production attention / routing widths (R 512, Dr 64, Dn = Dv 128; 256-384 experts top-8)
  // and larger vocabularies
  if (r() < 0.12) {
    Object.assign(cfg, { kv_lora_rank: 512, qk_rope_head_dim: 64, qk_nope_head_dim: 128, v_head_dim: 128, num_attention_heads: Math.min(H, 2), num_key_value_heads: Math.min(H, 2) });
  }
  if (r() < 0.12) {
    const [g, tg] = pick(r, [[1, 1], [8, 4]] as const);
    Object.assign(cfg, { n_routed_experts: pick(r, [256, 384] as const), num_experts_per_tok: 8, n_group: g, topk_group: tg, moe_intermediate_size: int(r, 1, 8) });
  }
  if (r() < 0.1) cfg.vocab_size = int(r, 2000, 9000);
  // many narrow heads (DeepSeek-V3 has 128)
  if (r() < 0.08) {
    const heads = pick(r, [16, 33, 64, 128] as const);
    Object.assign(cfg, { num_attention_heads: heads, num_key_value_heads: heads, qk_nope_head_dim: pick(r, [1, 4] as const), qk_rope_head_dim: 2, v_head_dim: 3, kv_lora_rank: pick(r, [16, 33] as const) });
  }
  // a wider residual stream (narrow experts keep it fast)
  if (r() < 0.06) Object.assign(cfg, { hidden_size: pick(r, [384, 520, 1000] as const), moe_intermediate_size: int(r, 1, 16), intermediate_size: int(r, 8, 64) });
  if (fp8) cfg.quantization_config = { activation_scheme: 'dynamic', fmt: 'e4m3', quant_method: 'fp8', weight_block_size: [128, 128] };
  parseConfig(cfg, `fuzz config ${seed}`); // the draw must be valid
  return cfg;
}

/** A config plus how to run it (prompt length, prefill chunk, decode steps, exact context). */
export function fuzzCase(seed: number): FuzzCase {
  const config = fuzzConfig(seed);
  const r = mulberry32(seed * 7919 + 99);
  const long = r() < 0.2;
  // a cache long enough for split (flash-decoding) attention: >= 512 keys
  const veryLong = r() < 0.06;
  const maxPos = config.max_position_embeddings as number;
  const promptLength = Math.min(maxPos - 1, veryLong ? int(r, 500, 700) : long ? int(r, 14, 40) : pick(r, [1, 2, 3, 5, 8, 11, 13] as const));
  const chunkSize = veryLong ? pick(r, [128, 100] as const) : pick(r, [128, 128, 7, 4, 3, 1] as const);
  const decodeSteps = Math.min(maxPos - promptLength, veryLong ? int(r, 1, 4) : long ? int(r, 4, 20) : int(r, 0, 3));
  const exactContext = r() < 0.5;
  const bindingCap = r() < 0.2 ? pick(r, [4 << 10, 16 << 10, 64 << 10] as const) : undefined;
  const moeDecodeMaxTokens = pick(r, [4, 4, 1, 16] as const);
  // (not with a binding cap: one chunk of hundreds of split dispatches can outgrow a small arena, a DeviceError)
  const arenaBytes = r() < 0.15 && bindingCap === undefined ? 48 << 10 : undefined;
  const taps = r() < 0.2;
  const shards = pick(r, [1, 1, 2, 3] as const);
  return { seed, config, promptLength, chunkSize, decodeSteps, exactContext, bindingCap, moeDecodeMaxTokens, arenaBytes, taps, shards };
}

/** One-line summary of a config (printed when a case fails). */
export function describeConfig(c: Json): string {
  const rs = c.rope_scaling as Json | null;
  const parts = [
    `D=${c.hidden_size}`, `L=${c.num_hidden_layers}`, `H=${c.num_attention_heads}`, `Rq=${c.q_lora_rank}`, `R=${c.kv_lora_rank}`,
    `Dn/Dr/Dv=${c.qk_nope_head_dim}/${c.qk_rope_head_dim}/${c.v_head_dim}`, `I=${c.intermediate_size}`, `F=${c.moe_intermediate_size}`,
    `E=${c.n_routed_experts}`, `K=${c.num_experts_per_tok}`, `S=${c.n_shared_experts}`, `G/TG=${c.n_group}/${c.topk_group}`,
    `dense=${c.first_k_dense_replace}`, `freq=${c.moe_layer_freq}`, `norm=${c.norm_topk_prob}`, `rsf=${c.routed_scaling_factor}`,
    `eps=${c.rms_norm_eps}`, `V=${c.vocab_size}`, c.quantization_config ? 'FP8' : 'BF16',
    rs ? `yarn(f=${rs.factor},orig=${rs.original_max_position_embeddings},bf=${rs.beta_fast},m=${rs.mscale})` : 'rope=plain',
    `maxpos=${c.max_position_embeddings}`,
  ];
  return parts.join(' ');
}

/** Seeded prompt of `n` ids in [0, vocab). */
export function fuzzPrompt(seed: number, n: number, vocab: number): number[] {
  const r = mulberry32(seed ^ 0x5bd1e995);
  return Array.from({ length: n }, () => Math.floor(r() * vocab));
}

/** The seeds of a sweep: WEBMOE_SHAPES=<n> runs seeds 0..n-1, else the committed list. */
export function sweepSeeds(committed: readonly number[]): number[] {
  const n = Number(process.env.WEBMOE_SHAPES ?? '');
  const from = Number(process.env.WEBMOE_SHAPES_FROM ?? '0');
  if (Number.isInteger(n) && n > 0) return Array.from({ length: n }, (_, i) => from + i);
  return [...committed];
}
