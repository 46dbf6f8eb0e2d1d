/**
 * The decode roofline's numerator (bench/roofline.ts) and the targets (bench/targets.ts), by hand on the `tiny`
 * toy config: every term of the bytes one decode step must read, and which targets a set of rows meets.
 */
import { describe, expect, it } from 'vitest';
import { decodeStepBytes } from '../../bench/roofline.js';
import { dispatchesByLayer } from '../../bench/e2e.js';
import { e2eTargets, K2_LAYER_REFERENCES, kernelTargets } from '../../bench/targets.js';
import { HEAD_MARKER, layerMarker, parseLayerMarker } from '../../src/engine/forward.js';
import { toyConfig } from '../../src/model/toy.js';
import { CEILINGS, sampleReport } from './fixtures.js';

describe('decode-step bytes', () => {
  it('tiny: hand count per term', () => {
    const c = toyConfig('tiny'); // D 64, 2 layers (1 dense, I 128), H 2, Dn 16, Dr 8, Dv 16, Rq 32, Rkv 32, E 8 top-2 + 1 shared (F 32), V 128
    const fp8 = (r: number, k: number) => r * k + Math.ceil(r / 128) * Math.ceil(k / 128) * 4; // codes + one f32 scale per 128x128 block
    const attn = fp8(32, 64) + fp8(2 * 24, 32) + 4 * 32 + fp8(40, 64) + fp8(2 * 32, 32) + fp8(64, 32) + 4 * (2 * 64 + 32);
    const ffn = (w: number) => 2 * fp8(w, 64) + fp8(64, w);
    const S = 10;
    const b = decodeStepBytes(c, S);
    expect(b.attention).toBe(2 * attn);
    expect(b.experts).toBe(ffn(128) + 2 * ffn(32) + ffn(32)); // dense layer; MoE layer: 2 routed + 1 shared
    expect(b.kv_cache).toBe(2 * S * 40 * 4);
    expect(b.other).toBe(2 * 8 * 64 + 4 * 8 + 2 * 64 + 4 * 64 + 2 * 128 * 64);
    expect(b.total).toBe(b.attention + b.experts + b.kv_cache + b.other);
  });

  it('grows with the cache by exactly one latent row per layer per token', () => {
    const c = toyConfig('small');
    expect(decodeStepBytes(c, 101).total - decodeStepBytes(c, 100).total).toBe(c.num_hidden_layers * (c.kv_lora_rank + c.qk_rope_head_dim) * 4);
  });
});

describe('targets', () => {
  it('checks the Kimi GEMV bandwidth target on the engine default and faster-than-naive on every optimised row', () => {
    const r = sampleReport();
    const t = kernelTargets(r.kernels.map((k) => ({ ...k, targets: undefined })), CEILINGS);
    const rows = r.kernels.map((k) => ({ ...k, targets: undefined }));
    rows[2]!.engine_default = true;
    const t2 = kernelTargets(rows, CEILINGS);
    expect(t2.map((x) => [x.id, x.met])).toEqual([
      ['fp8_gemv_bandwidth', false], // 0.73 GB/s of 10
      ['faster_than_naive', true], // 3x
      ['faster_than_naive', false], // 0.8x
    ]);
    // a variant the engine does not run shows its speedup but carries no target
    expect(t.map((x) => x.id)).toEqual(['fp8_gemv_bandwidth', 'faster_than_naive']);
    // the ceiling is the lower of streaming read (10 GB/s) and FP8 decode (2.5 GB/s): 0.736 / 2.5
    expect(t[0]!.value).toBeCloseTo(rows[1]!.gbps / 2.5, 12);
    expect(t[0]!.limited_by).toContain('29% of the FP8-decode rate');
    expect(kernelTargets([{ ...rows[1]!, targets: undefined }], { ...CEILINGS, fp8_decode_gbps: 20 })[0]!.value).toBeCloseTo(rows[1]!.gbps / 10, 12);
    for (const x of t) expect(x.met || typeof x.limited_by === 'string').toBe(true);
  });

  it('checks the Kimi expert kernels against the same ceiling and the 64-token Kimi GEMM against the FMA ceiling', () => {
    const base = sampleReport().kernels[1]!;
    const experts = { ...base, kernel: 'moe_experts', shape: 'kimi D7168 F2048 K8 of 8', impl: 'moe_gateup_id_wide + moe_down_id_wide', gbps: 2, weight_format: 'fp8' as const, targets: undefined, speedup_vs_naive: undefined };
    const int4 = { ...experts, weight_format: 'int4' as const, gbps: 3 };
    const gemm = { ...base, kernel: 'fp8_gemm', shape: 'kimi expert gate/up 7168->2048 x 64 tokens', dims: { rows: 2048, cols: 7168, tokens: 64 }, raw_fraction_of_fma: 0.55, gflops: 22, targets: undefined, speedup_vs_naive: undefined };
    const gemm16 = { ...gemm, shape: 'kimi expert gate/up 7168->2048 x 16 tokens', dims: { rows: 2048, cols: 7168, tokens: 16 }, raw_fraction_of_fma: 0.1 };
    const t = kernelTargets([experts, gemm, gemm16], CEILINGS);
    // experts 2 of 2.5 GB/s = 80 %; the GEMM 55 % of FMA; the 16-token row carries no FMA target
    expect(t.map((x) => [x.id, x.met])).toEqual([['moe_experts_ceiling', true], ['fp8_gemm_fma', true]]);
    expect(kernelTargets([int4], CEILINGS).map((x) => x.id)).not.toContain('moe_experts_ceiling'); // INT4 has its own target
    const slow = kernelTargets([{ ...experts, gbps: 1 }, { ...gemm, raw_fraction_of_fma: 0.12, gflops: 4.8 }], CEILINGS);
    expect(slow.map((x) => [x.id, x.met, x.value])).toEqual([['moe_experts_ceiling', false, 0.4], ['fp8_gemm_fma', false, 0.12]]);
    expect(slow[1]!.limited_by).toContain('4.8 GFLOP/s of the 40.0 GFLOP/s FMA ceiling');
  });

  it('checks the small-toy roofline and one submission per decode step', () => {
    const rows = sampleReport().e2e.map((e) => ({ ...e, targets: undefined }));
    const t = e2eTargets(rows);
    expect(t.map((x) => [x.id, x.met])).toEqual([
      ['decode_roofline', false],
      ['one_submission', true],
    ]);
    expect(t[0]!.limited_by).toContain('55 dispatches');
    expect(rows[0]!.targets).toHaveLength(2);
  });

  it('splits a step at the layer markers and checks the dispatch targets per layer', () => {
    expect(parseLayerMarker(layerMarker(3, 4))).toEqual({ layer: 3, moeShards: 4 });
    expect(parseLayerMarker(layerMarker(0, null))).toEqual({ layer: 0, moeShards: null });
    expect(parseLayerMarker('layer x')).toBeNull();
    // 1 dispatch before layer 0 (embedding), layer 0 dense 7, layer 1 MoE 8, layer 2 MoE 11 with 4 shards, 3 in the head;
    // a marker of somebody else's inside layer 1 does not split it
    const markers = [
      { marker: layerMarker(0, null), at: 1 }, { marker: layerMarker(1, 1), at: 8 }, { marker: 'user marker', at: 10 },
      { marker: layerMarker(2, 4), at: 16 }, { marker: HEAD_MARKER, at: 27 },
    ];
    const split = dispatchesByLayer(markers, 30)!;
    expect(split.layers).toEqual([
      { layer: 0, kind: 'dense', dispatches: 7 }, { layer: 1, kind: 'moe', shards: 1, dispatches: 8 }, { layer: 2, kind: 'moe', shards: 4, dispatches: 11 },
    ]);
    expect(split.outside).toBe(4);
    expect(dispatchesByLayer([{ marker: 'other', at: 0 }], 5)).toBeUndefined();
    const row = { ...sampleReport().e2e[0]!, targets: undefined, dispatches_per_layer: split.layers, dispatches_outside_layers: split.outside };
    const met = e2eTargets([row]).filter((t) => /dispatches/.test(t.id));
    // layer 2 may have 8 + 3 (one per extra shard): met; 4 outside: met
    expect(met.map((t) => [t.id, t.met, t.value, t.threshold])).toEqual([['moe_layer_dispatches', true, 8, 8], ['dispatches_outside_layers', true, 4, 4]]);
    const worse = { ...row, targets: undefined, dispatches_per_layer: [...split.layers.slice(0, 2), { layer: 2, kind: 'moe' as const, shards: 4, dispatches: 14 }], dispatches_outside_layers: 5 };
    const missed = e2eTargets([worse]).filter((t) => /dispatches/.test(t.id));
    expect(missed.map((t) => [t.id, t.met, t.value, t.threshold])).toEqual([['moe_layer_dispatches', false, 14, 11], ['dispatches_outside_layers', false, 5, 4]]);
    expect(missed[0]!.limited_by).toContain('layer 2 records 14 dispatches with 4 expert shards');
  });

  it('checks k2-layer decode against the lower ceiling, and against llama.cpp and the TTFT baseline on lavapipe only', () => {
    const bytes = { experts: 400e6, attention: 100e6, kv_cache: 1e6, other: 9e6, total: 510e6 };
    const row = { ...sampleReport().e2e[0]!, model: 'k2-layer', prompt_tokens: 128, step_bytes: bytes, decode_step_ms: 200, decode_tokens_per_s: 5, generate_decode_tokens_per_s: 5.2, ttft_ms: 20_000, targets: undefined };
    const onLavapipe = e2eTargets([row], CEILINGS, { driver: 'lavapipe' }).filter((t) => t.id.startsWith('k2_'));
    const ids = onLavapipe.map((t) => t.id);
    expect(ids.slice(0, 2)).toEqual(['k2_decode_roofline', 'k2_decode_vs_llamacpp']);
    // roofline: 500 MB of FP8 weights at 2.5 GB/s (the lower ceiling) + 10 MB at 10 GB/s = 201 ms of a 200 ms step
    expect(onLavapipe[0]!.value).toBeCloseTo(201 / 200, 9);
    expect(onLavapipe[0]!.met).toBe(true);
    expect(onLavapipe[1]!.value).toBeCloseTo(5.2 / K2_LAYER_REFERENCES.llamaCppDecodeTokPerS, 9);
    expect(onLavapipe[1]!.met).toBe(false);
    expect(onLavapipe[2]!.id).toBe('k2_ttft_128');
    expect(onLavapipe[2]!.value).toBeCloseTo(K2_LAYER_REFERENCES.ttft128BaselineMs / 20_000, 9);
    const elsewhere = e2eTargets([{ ...row, targets: undefined }], CEILINGS, { driver: 'swiftshader' }).filter((t) => t.id.startsWith('k2_'));
    expect(elsewhere.map((t) => t.id)).toEqual(['k2_decode_roofline']);
  });
});
