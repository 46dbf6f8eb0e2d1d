/** config.json parsing: the golden and production configs, derived values, and errors that name the field. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { parseConfig } from '../../src/model/config.js';
import { golden, GOLDEN_NAMES, SHARED_DIR, sharedConfig } from '../format/shared-paths.js';

const read = (path: string): Record<string, unknown> => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
const kimi = read(sharedConfig('kimi-k2.json'));
const deepseek = read(sharedConfig('deepseek-v3.json'));

describe('parseConfig (needs the shared configs)', () => {
  it('parses every golden config with the fields of the file', () => {
    for (const name of GOLDEN_NAMES) {
      const raw = read(`${golden(name)}/config.json`);
      const c = parseConfig(raw, name);
      for (const key of ['vocab_size', 'hidden_size', 'num_hidden_layers', 'q_lora_rank', 'n_group', 'topk_group', 'routed_scaling_factor', 'n_shared_experts'] as const) {
        expect(c[key], `${name}.${key}`).toBe(raw[key]);
      }
      expect(c.eos_token_id).toEqual([raw.eos_token_id]);
    }
    expect(parseConfig(read(`${golden('ragged')}/config.json`)).q_lora_rank).toBeNull();
    expect(parseConfig(read(`${golden('yarn')}/config.json`)).rope_scaling).toMatchObject({ type: 'yarn', factor: 4, original_max_position_embeddings: 64, beta_fast: 32 });
  });

  it('derives the Kimi K2 values of docs/model.md §9.1', () => {
    const c = parseConfig(kimi);
    expect(c.model_type).toBe('kimi_k2');
    expect(c.derived.softmaxScale).toBeCloseTo(0.1308608, 7);
    expect(c.derived.kvAWidth).toBe(576);
    expect(c.derived.qWidth).toBe(64 * 192);
    expect(c.derived.kvBWidth).toBe(16384);
    expect(c.derived.moeLayers.filter(Boolean).length).toBe(60);
    expect(c.derived.moeLayers[0]).toBe(false);
    expect(c.quantization_config?.quant_method === 'fp8' && c.quantization_config.weight_block_size).toEqual([128, 128]);
  });

  it('derives the DeepSeek-V3 softmax scale of docs/model.md §5.5', () => {
    const c = parseConfig(deepseek);
    expect(c.derived.softmaxScale).toBeCloseTo(0.13523378, 7);
    expect(c.n_group).toBe(8);
    expect(c.derived.moeLayers.filter(Boolean).length).toBe(58);
  });

  it('reads HF v5 rope_parameters with rope_theta inside, and text_config nesting', () => {
    const { rope_scaling, rope_theta, ...rest } = kimi;
    void rope_theta;
    const v5 = { ...rest, rope_parameters: { ...(rope_scaling as object), rope_type: 'yarn', rope_theta: 50000 } };
    const c = parseConfig(v5);
    expect(c.rope_theta).toBe(50000);
    expect(c.rope_scaling?.factor).toBe(32);
    expect(parseConfig({ architectures: ['DeepseekV3ForCausalLM'], text_config: kimi }).hidden_size).toBe(7168);
  });

  it('treats a missing quantization_config as BF16 linear weights', () => {
    const { quantization_config, ...bf16 } = kimi;
    void quantization_config;
    expect(parseConfig(bf16).quantization_config).toBeNull();
  });

  const bad: [string, Record<string, unknown>, string, RegExp][] = [
    ['model_type', { model_type: 'llama' }, 'model_type', /unsupported/],
    ['architectures', { architectures: ['LlamaForCausalLM'] }, 'architectures', /DeepseekV3ForCausalLM/],
    ['num_key_value_heads', { num_key_value_heads: 8 }, 'num_key_value_heads', /must equal num_attention_heads/],
    ['odd rope dim', { qk_rope_head_dim: 63 }, 'qk_rope_head_dim', /even/],
    ['n_group not dividing E', { n_group: 7 }, 'n_group', /divide/],
    ['topk_group > n_group', { n_group: 8, topk_group: 9 }, 'topk_group', /<= n_group/],
    ['K too large for the kept groups', { n_group: 128, topk_group: 2 }, 'num_experts_per_tok', /topk_group/],
    ['topk_method', { topk_method: 'greedy' }, 'topk_method', /noaux_tc/],
    ['scoring_func', { scoring_func: 'softmax' }, 'scoring_func', /sigmoid/],
    ['hidden_act', { hidden_act: 'gelu' }, 'hidden_act', /silu/],
    ['max_position_embeddings', { max_position_embeddings: 163840 }, 'max_position_embeddings', /factor \* original_max_position_embeddings/],
    ['mscale', { rope_scaling: { type: 'yarn', factor: 32, original_max_position_embeddings: 4096, mscale: 0.707, mscale_all_dim: 1 } }, 'rope_scaling.mscale', /mscale_all_dim/],
    ['rope type', { rope_scaling: { type: 'linear', factor: 2 } }, 'rope_scaling.type', /yarn/],
    ['block size', { quantization_config: { quant_method: 'fp8', fmt: 'e4m3', weight_block_size: [64, 64] } }, 'quantization_config.weight_block_size', /128, 128/],
    ['quant method', { quantization_config: { quant_method: 'awq' } }, 'quantization_config.quant_method', /fp8/],
    ['static activations', { quantization_config: { quant_method: 'fp8', activation_scheme: 'static', weight_block_size: [128, 128] } }, 'quantization_config.activation_scheme', /dynamic/],
    ['tied embeddings', { tie_word_embeddings: true }, 'tie_word_embeddings', /tied/],
    ['a string number', { hidden_size: '7168' }, 'hidden_size', /finite number/],
    ['a missing field', { kv_lora_rank: undefined }, 'kv_lora_rank', /missing/],
    ['a fractional width', { moe_intermediate_size: 2048.5 }, 'moe_intermediate_size', /integer/],
    ['absurd layer counts', { num_hidden_layers: 2 ** 40 }, 'num_hidden_layers', /<=/],
    ['eos outside the vocab', { eos_token_id: 163840 }, 'eos_token_id', /vocab_size/],
    ['q_lora_rank 0', { q_lora_rank: 0 }, 'q_lora_rank', />= 1/],
  ];
  for (const [what, patch, field, msg] of bad) {
    it(`refuses ${what}, naming the field and the file`, () => {
      const err = (() => {
        try {
          parseConfig({ ...kimi, ...patch }, 'cfg/config.json');
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).field).toBe(field);
      expect((err as ConfigError).message).toMatch(msg);
      expect((err as ConfigError).message).toMatch(/^cfg\/config\.json: /);
    });
  }
});
