/**
 * `inspect`: parameter counts of every golden checkpoint against a formula written out here from the config
 * alone; GPU and KV-cache bytes for Kimi K2 and k2-layer; and the CLI end to end (a real process): make-toy ->
 * inspect, and bad inputs that must give one line on stderr and a non-zero exit.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig, type ModelConfig } from '../../src/model/config.js';
import { formatInspect, inspectCheckpoint, inspectConfig } from '../../src/model/inspect.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { makeToyCheckpointInMemory, toyConfig } from '../../src/model/toy.js';
import { openSafetensors, readTensorBytes } from '../../src/format/safetensors.js';
import { memorySource } from '../../src/format/source.js';
import { encodeSafetensors } from '../../src/format/writer.js';
import { memoryFiles, openCheckpoint } from '../../src/model/checkpoint.js';
import { golden, GOLDEN_NAMES, REPO, SHARED_DIR, sharedConfig } from '../format/shared-paths.js';

const tmp = mkdtempSync(join(tmpdir(), 'webmoe-inspect-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Parameters from the config by the spec's shapes (§2.3), independent of src/model/weights.ts. */
function expectedParams(c: Record<string, number | null>): { total: number; active: number } {
  const n = (k: string): number => c[k] as number;
  const [D, V, L, H] = [n('hidden_size'), n('vocab_size'), n('num_hidden_layers'), n('num_attention_heads')];
  const [Dn, Dr, Dv, R] = [n('qk_nope_head_dim'), n('qk_rope_head_dim'), n('v_head_dim'), n('kv_lora_rank')];
  const [E, K, S, Fm, I] = [n('n_routed_experts'), n('num_experts_per_tok'), n('n_shared_experts'), n('moe_intermediate_size'), n('intermediate_size')];
  const Rq = c.q_lora_rank;
  const q = Rq === null ? H * (Dn + Dr) * D : Rq * D + Rq + H * (Dn + Dr) * Rq;
  const attn = q + (R + Dr) * D + R + H * (Dn + Dv) * R + D * H * Dv + 2 * D;
  const expert = 3 * Fm * D;
  let total = 2 * V * D + D;
  let active = total;
  for (let i = 0; i < L; i++) {
    total += attn;
    active += attn;
    const moe = i >= n('first_k_dense_replace') && i % (c.moe_layer_freq ?? 1) === 0;
    if (moe) {
      const shared = S * expert + E * D + E;
      total += E * expert + shared;
      active += K * expert + shared;
    } else {
      total += 3 * I * D;
      active += 3 * I * D;
    }
  }
  return { total, active };
}

function webmoe(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', join(REPO, 'src/cli.ts'), ...args], { cwd: REPO, maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const readJson = (p: string): Record<string, number | null> => JSON.parse(readFileSync(p, 'utf8')) as Record<string, number | null>;

describe('inspect (needs the shared fixtures)', () => {
  it('reports the parameter counts of every golden checkpoint', async () => {
    for (const name of GOLDEN_NAMES) {
      const ckpt = await openCheckpointDir(golden(name));
      const r = await inspectCheckpoint(ckpt);
      await ckpt.close();
      const want = expectedParams(readJson(`${golden(name)}/config.json`));
      expect(r.params.total, name).toBe(want.total);
      expect(r.params.activePerToken, name).toBe(want.active);
      expect(r.kind).toBe('checkpoint');
      expect(r.bytes.files).toBe(readFileSync(`${golden(name)}/model.safetensors`).length);
      expect(r.tensors!.every((t) => t.status === 'used')).toBe(true);
    }
  });

  it('gives Kimi K2 numbers from its config alone (docs/model.md §9.1: ~1.026 T parameters, 576-value latent cache)', () => {
    const c = parseConfig(readJson(sharedConfig('kimi-k2.json')));
    const r = inspectConfig(c, 'kimi-k2.json');
    const want = expectedParams(readJson(sharedConfig('kimi-k2.json')));
    expect(r.params.total).toBe(want.total);
    expect(r.params.total / 1e12).toBeCloseTo(1.026, 3);
    expect(r.params.activePerToken).toBe(want.active);
    expect(r.kvCache.latentBytesPerToken).toBe((512 + 64) * 61 * 4);
    expect(r.kvCache.fullBytesPerToken).toBe(64 * (192 + 128) * 61 * 4);
    // FP8 weights 1 byte each, scales f32, bf16 2 bytes: GPU bytes equal disk bytes here (all sizes are multiples of 4)
    expect(r.bytes.gpu.fp8).toBe(want.total - 2 * 163840 * 7168 - 7168 - 61 * (2 * 7168 + 1536 + 512) - 60 * (384 * 7168 + 384));
    expect(r.bytes.gpu.total).toBe(r.bytes.tensorData);
    const text = formatInspect(r);
    expect(text).toContain('1,026,408,232,448');
    expect(text).toContain('| MLA latent: c_kv + k_rope (R + Dr) | 576 | 140,544 |');
  });

  it('k2-layer: numbers from its config (the ~0.9 GB checkpoint itself is not written in tests)', () => {
    const c = toyConfig('k2-layer');
    const r = inspectConfig(c, 'k2-layer');
    const want = expectedParams(c as unknown as Record<string, number | null>);
    expect(r.params.total).toBe(want.total);
    expect(r.params.activePerToken).toBe(want.active);
    expect(r.kvCache.latentValues).toBe(576);
    expect(r.kvCache.layers).toBe(1);
    expect(r.tensorGroups.find((g) => g.pattern === 'model.layers.0.mlp.experts.{0-15}.gate_proj.weight')).toMatchObject({ count: 16, shape: [2048, 7168], dtype: 'F8_E4M3' });
  });

  it('counts a config at the layer x expert bound without building its 2^20 experts (issue 11: was 3.7 GiB)', () => {
    const raw = { ...readJson(sharedConfig('kimi-k2.json')), num_hidden_layers: 16, first_k_dense_replace: 0, n_routed_experts: 65536, n_group: 1, topk_group: 1 };
    const c = parseConfig(raw);
    const heap0 = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const r = inspectConfig(c, 'bound');
    const ms = performance.now() - t0;
    const grew = process.memoryUsage().heapUsed - heap0;
    console.log(`inspect at the bound (16 layers x 65536 experts): ${ms.toFixed(0)} ms, heap +${(grew / 2 ** 20).toFixed(1)} MiB`);
    expect(r.params.total).toBe(expectedParams(raw as Record<string, number | null>).total);
    expect(r.tensorGroups.find((g) => g.pattern === 'model.layers.{0-15}.mlp.experts.{0-65535}.gate_proj.weight')).toMatchObject({ count: 16 * 65536 });
    expect(grew).toBeLessThan(64 * 2 ** 20);
    expect(ms).toBeLessThan(5000);
  });

  it('a compressed-tensors config is counted as INT4 experts + BF16 (the K2-Thinking layout of Kimi K2: 594,205,904,896 bytes)', () => {
    const raw = readJson(`${golden('int4')}/config.json`) as Record<string, unknown>;
    const kimi = { ...readJson(sharedConfig('kimi-k2.json')), quantization_config: raw.quantization_config };
    const r = inspectConfig(parseConfig(kimi), 'kimi-k2-int4');
    expect(r.bytes.tensorData).toBe(594_205_904_896); // Kimi K2-Thinking's published size is ~594 GB
    expect(r.bytes.byFormat.int4.leaves).toBe(60 * 384 * 3);
    expect(r.bytes.byFormat.fp8.leaves).toBe(0);
    expect(r.bytes.gpu.readPerToken).toBe(32_986_519_552);
    expect(formatInspect(r)).toContain('| INT4 pack-quantized + group scales | 69,120 | 1,014,686,023,680 |');
  });

  it('docs/inspect-kimi-k2.md is what inspect prints for the Kimi K2 config', () => {
    const doc = readFileSync(join(REPO, 'docs/inspect-kimi-k2.md'), 'utf8');
    const table = formatInspect(inspectConfig(parseConfig(readJson(sharedConfig('kimi-k2.json'))), 'kimi-k2.json'));
    expect(doc).toContain(table);
  });

  it('lists MTP tensors (layers >= num_hidden_layers) as ignored and leaves them out of the GPU bytes', async () => {
    const toy = await makeToyCheckpointInMemory('tiny');
    const st = await openSafetensors(memorySource(toy.data.get('model.safetensors')!));
    const tensors = await Promise.all([...st.tensors.values()].map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: await readTensorBytes(t) })));
    tensors.push({ name: 'model.layers.2.eh_proj.weight', dtype: 'BF16', shape: [64, 128], data: new Uint8Array(64 * 128 * 2) });
    tensors.push({ name: 'model.layers.2.mlp.experts.0.up_proj.weight', dtype: 'F8_E4M3', shape: [32, 64], data: new Uint8Array(32 * 64) });
    const files = new Map(toy.data).set('model.safetensors', encodeSafetensors(tensors));
    const r = await inspectCheckpoint(await openCheckpoint(memoryFiles('mtp', files)));
    expect(r.ignored.sort()).toEqual(['model.layers.2.eh_proj.weight', 'model.layers.2.mlp.experts.0.up_proj.weight']);
    expect(r.bytes.tensorData - r.bytes.gpu.total).toBe(64 * 128 * 2 + 32 * 64);
    const text = formatInspect(r);
    expect(text).toContain('### Ignored: 2 tensors of MTP layers (>= num_hidden_layers = 2)');
    expect(text).toMatch(/\| `model\.layers\.2\.eh_proj\.weight` \| BF16 \| \[64, 128\] \| .* \| ignored \|/);
  });

  it('packs bf16 and fp8 tensors into whole u32 words on the GPU', () => {
    const c = parseConfig(readJson(`${golden('ragged')}/config.json`));
    const r = inspectConfig(c as ModelConfig, 'ragged');
    // ragged has odd sizes: o_proj [200, 168] fp8 = 33600 bytes (a multiple of 4), kv_a [96, 200] ... all summed per tensor
    expect(r.bytes.gpu.total % 4).toBe(0);
    expect(r.bytes.gpu.total).toBeGreaterThanOrEqual(r.bytes.tensorData);
  });
});

describe('CLI (a real process)', () => {
  it('make-toy writes a sharded checkpoint that inspect validates; --json carries the numbers', async () => {
    const out = join(tmp, 'ragged');
    const made = await webmoe(['make-toy', '--config', 'ragged', '--out', out, '--seed', '3', '--shards', '2']);
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(/wrote ragged \(seed 3\)/);
    const text = await webmoe(['inspect', out]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('active per token');
    const json = await webmoe(['inspect', out, '--json']);
    const report = JSON.parse(json.stdout) as { params: { total: number; activePerToken: number }; tensors: unknown[] };
    expect(report.params.total).toBe(expectedParams(readJson(`${out}/config.json`)).total);
    // again without --force: refused, one line
    const again = await webmoe(['make-toy', '--config', 'ragged', '--out', out]);
    expect(again.code).not.toBe(0);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/already holds a checkpoint.*--force/);
  });

  it('inspect of a bare config.json prints the same numbers without weights', async () => {
    const r = await webmoe(['inspect', sharedConfig('kimi-k2.json')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('(config only, no weights)');
    expect(r.stdout).toContain('1,026,408,232,448');
  });

  const bad = (): [string, () => string, RegExp][] => [
    ['a path that does not exist', () => join(tmp, 'nope'), /nope: no such file or folder/],
    [
      'a truncated shard',
      () => {
        const d = join(tmp, 'truncated');
        mkdirSync(d, { recursive: true });
        copyFileSync(`${golden('tiny')}/config.json`, join(d, 'config.json'));
        copyFileSync(`${golden('tiny')}/model.safetensors`, join(d, 'model.safetensors'));
        truncateSync(join(d, 'model.safetensors'), 100_000);
        return d;
      },
      /truncated\/model\.safetensors: .*(truncated|past the end)/,
    ],
    [
      'a config with a wrong field',
      () => {
        const p = join(tmp, 'bad-config.json');
        writeFileSync(p, JSON.stringify({ ...readJson(sharedConfig('kimi-k2.json')), qk_rope_head_dim: 63 }));
        return p;
      },
      /bad-config\.json: qk_rope_head_dim = 63: must be even/,
    ],
    [
      'a checkpoint whose config does not match its tensors',
      () => {
        const d = join(tmp, 'mismatch');
        mkdirSync(d, { recursive: true });
        writeFileSync(join(d, 'config.json'), JSON.stringify({ ...readJson(`${golden('tiny')}/config.json`), moe_intermediate_size: 48 }));
        copyFileSync(`${golden('tiny')}/model.safetensors`, join(d, 'model.safetensors'));
        return d;
      },
      /tensor 'model\.layers\.1\.mlp\.experts\.0\.gate_proj\.weight'.*expected shape \[48, 64\], found \[32, 64\]/,
    ],
  ];
  for (const [what, make, msg] of bad()) {
    it(`inspect of ${what}: one line on stderr naming the problem, non-zero exit`, async () => {
      const r = await webmoe(['inspect', make()]);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      expect(r.stderr).toMatch(msg);
    });
  }

  it('make-toy with an unknown config or a bad option: one line, non-zero exit', async () => {
    const cases: [string[], RegExp][] = [
      [['--config', 'huge', '--out', join(tmp, 'x')], /'huge' is neither a named toy config/],
      [['--config', 'tiny', '--out', join(tmp, 'y'), '--shards', '0'], /--shards must be an integer >= 1/],
      [['--config', sharedConfig('kimi-k2.json'), '--out', join(tmp, 'z')], /would write 958 GiB of tensors, more than --max-gib 32/],
    ];
    for (const [args, msg] of cases) {
      const r = await webmoe(['make-toy', ...args]);
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      expect(r.stderr).toMatch(msg);
    }
  });
});
