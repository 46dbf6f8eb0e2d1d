/**
 * `webmoe convert` (model/convert.ts, cli/convert.ts):
 *  - BF16 -> FP8 -> BF16 recovers every weight within half an E4M3 step of its block (the FP8 stage is exactly a
 *    round-to-nearest E4M3 of w / s; the way back adds only the BF16 rounding of the product);
 *  - the logits of a converted toy differ from the BF16 model's by no more than the FP8 fixtures' own
 *    quantisation effect (measured here as make-toy does for the golden-shaped FP8 toys: the same seeded
 *    weights as FP8 vs as BF16);
 *  - int4-experts: experts bit-identical to docs/model.md §13's quantiser, every other linear copied, Kimi's config;
 *    the golden int4 fixture converts to itself byte for byte; a K2.5 toy converts to its flat twin;
 *  - the CLI end to end: shards + index, refusals on one line.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bf16ArrayToF32, decodeE4M3, f32ToBf16 } from '../../src/format/fp8.js';
import { quantizeInt4 } from '../../src/format/int4.js';
import { asUint16, openSafetensors, readTensorBytes } from '../../src/format/safetensors.js';
import { memorySource } from '../../src/format/source.js';
import { FormatError } from '../../src/errors.js';
import { encodeSafetensors, memoryFolder } from '../../src/format/writer.js';
import { memoryFiles, openCheckpoint, readF32, readStoredLinear, type Checkpoint } from '../../src/model/checkpoint.js';
import { convertCheckpoint, kimiInt4QuantizationConfig, type ConvertTarget } from '../../src/model/convert.js';
import { loadCpuWeights } from '../../src/model/cpu-weights.js';
import { folderFiles } from '../../src/model/node-checkpoint.js';
import { referenceForward } from '../../src/model/reference.js';
import { makeToyCheckpointInMemory, type ToyName } from '../../src/model/toy.js';
import { compareRows } from '../model/reference-fixtures.js';
import { golden, REPO } from '../format/shared-paths.js';

const tmp = mkdtempSync(join(tmpdir(), 'webmoe-convert-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function convertMem(data: Map<string, Uint8Array>, to: ConvertTarget, shardBytes?: number): Promise<Map<string, Uint8Array>> {
  const out = memoryFolder();
  await convertCheckpoint(memoryFiles('in', data), to, out, { shardBytes });
  return out.files;
}
const open = (data: Map<string, Uint8Array>, name = 'x'): Promise<Checkpoint> => openCheckpoint(memoryFiles(name, data));

/** The spacing of E4M3 values around |q| (q = w / s in the E4M3 range). */
function e4m3Step(q: number): number {
  const a = Math.abs(q);
  if (a < 2 ** -6) return 2 ** -9;
  return 2 ** (Math.floor(Math.log2(a)) - 3);
}

const PROMPT = [5, 9, 2, 300, 44, 0, 17, 511, 256, 128, 3, 99, 7, 400, 61, 222, 1, 33, 480, 12];

/** Byte equality without vitest's element-wise deep equality (megabytes of it are slow). */
function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Σ (ours - ref)² / Σ ref² over all logits. */
function nmse(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (ours[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2;
  }
  return num / den;
}

describe('convert (library)', () => {
  it('BF16 -> FP8 -> BF16 recovers every weight within half an E4M3 step of its block', async () => {
    const bf = await makeToyCheckpointInMemory('ragged', { seed: 3, quant: 'bf16' });
    const fp8 = await convertMem(bf.data, 'fp8');
    const back = await convertMem(fp8, 'bf16');
    const [a, q, b] = await Promise.all([open(bf.data), open(fp8), open(back)]);
    let worstHalfSteps = 0; // max |fp8 - w| / (half an E4M3 step at w's magnitude in its block)
    let worstBlockHalfSteps = 0; // max |back - w| / (half an E4M3 step at the block's largest magnitude)
    for (const leaf of a.weights) {
      if (leaf.spec.kind !== 'linear') {
        expect(await readF32(b, leaf.spec.name)).toEqual(await readF32(a, leaf.spec.name)); // copied
        continue;
      }
      const w0 = await readStoredLinear(a, leaf.spec.name);
      const w8 = await readStoredLinear(q, leaf.spec.name);
      const w1 = await readStoredLinear(b, leaf.spec.name);
      if (w0.format !== 'bf16' || w8.format !== 'fp8' || w1.format !== 'bf16') throw new Error('formats');
      const orig = bf16ArrayToF32(w0.data);
      const sCols = Math.ceil(w0.cols / 128);
      for (let i = 0; i < w0.rows; i++) {
        for (let j = 0; j < w0.cols; j++) {
          const k: number = i * w0.cols + j;
          const s = w8.scale[Math.floor(i / 128) * sCols + Math.floor(j / 128)]!;
          const deq = Math.fround(decodeE4M3(w8.data[k]!) * s);
          const half: number = 0.5 * e4m3Step(orig[k]! / s) * s;
          // + the f32 roundings of w / s and of code x s (2^-24 relative each)
          if (!(Math.abs(deq - orig[k]!) <= half + 2 ** -22 * Math.abs(orig[k]!))) expect.fail(`${leaf.spec.name}[${i}, ${j}]: |${deq} - ${orig[k]}| > half step ${half}`);
          worstHalfSteps = Math.max(worstHalfSteps, Math.abs(deq - orig[k]!) / half);
          // the way back is exactly the BF16 rounding of the dequantised value
          if (w1.data[k] !== f32ToBf16(deq)) expect.fail(`${leaf.spec.name}[${i}, ${j}]: back ${w1.data[k]} != bf16(${deq})`);
          // so back - w is at most half an E4M3 step plus half a BF16 ulp (the product code x s is rarely a BF16 value)
          const back1: number = bf16ArrayToF32(w1.data.subarray(k, k + 1))[0]!;
          const bf16HalfUlp = Math.abs(back1) === 0 ? 0 : 2 ** (Math.floor(Math.log2(Math.abs(back1))) - 8);
          if (!(Math.abs(back1 - orig[k]!) <= half + bf16HalfUlp + 2 ** -22 * Math.abs(orig[k]!))) expect.fail(`${leaf.spec.name}[${i}, ${j}]: back ${back1} vs ${orig[k]}`);
          const blockHalf = 0.5 * 32 * s; // the block's amax is 448 s, where E4M3 steps are 32
          worstBlockHalfSteps = Math.max(worstBlockHalfSteps, Math.abs(back1 - orig[k]!) / blockHalf);
        }
      }
    }
    console.log(`BF16 -> FP8: worst error ${worstHalfSteps.toFixed(4)} half-steps at the weight's magnitude; BF16 -> FP8 -> BF16: ${worstBlockHalfSteps.toFixed(4)} half-steps of the block's top binade`);
    expect(worstHalfSteps).toBeLessThanOrEqual(1 + 1e-5);
    expect(worstBlockHalfSteps).toBeLessThanOrEqual(1 + 1.75 / 16); // + half a BF16 ulp at 448 s
    for (const c of [a, q, b]) await c.close();
  });

  it('the logits of an FP8-converted toy differ from the BF16 model by no more than the FP8 toys\' own quantisation effect', async () => {
    // The FP8 fixtures' weights were quantised from random draws; make-toy --quant fp8 does the same from the same
    // draws make-toy --quant bf16 rounds to BF16, so |FP8 toy - BF16 toy| is that quantisation effect. Max errors
    // are dominated by the odd flipped expert choice (either way), so the bound is on the NMSE over all logits.
    // Per seed the NMSE swings 5x either way (measured: yarn seed 11 converted 1.6e-2 vs own 4.0e-3, seed 12 2.0e-2
    // vs 2.3e-2), so the bound is on the mean over four seeds.
    for (const name of ['small', 'yarn'] as ToyName[]) {
      let [sumConv, sumOwn, maxConv, maxOwn] = [0, 0, 0, 0];
      for (const seed of [11, 12, 13, 14]) {
        const bf = await makeToyCheckpointInMemory(name, { seed, quant: 'bf16' });
        const own = await makeToyCheckpointInMemory(name, { seed, quant: 'fp8' });
        const converted = await convertMem(bf.data, 'fp8');
        const V = bf.config.vocab_size;
        const prompt = PROMPT.map((t) => t % V);
        const logits = async (d: Map<string, Uint8Array>) => referenceForward(await loadCpuWeights(await open(d)), prompt);
        const [lb, lo, lc] = [await logits(bf.data), await logits(own.data), await logits(converted)];
        sumConv += nmse(lc, lb);
        sumOwn += nmse(lo, lb);
        maxConv = Math.max(maxConv, compareRows(lc, lb, V, Infinity).maxRel);
        maxOwn = Math.max(maxOwn, compareRows(lo, lb, V, Infinity).maxRel);
      }
      console.log(
        `${name} (4 seeds): converted FP8 vs BF16: mean NMSE ${(sumConv / 4).toExponential(2)}, worst relative max |Δ| ${maxConv.toExponential(2)}; ` +
          `the FP8 toys' own effect: mean NMSE ${(sumOwn / 4).toExponential(2)}, worst ${maxOwn.toExponential(2)}`,
      );
      expect(sumConv).toBeLessThanOrEqual(sumOwn * 1.5);
      expect(sumConv).toBeGreaterThan(0);
    }
  });

  it('int4-experts: experts are docs/model.md §13 codes of the BF16 weights, every other tensor copied, Kimi\'s config', async () => {
    const bf = await makeToyCheckpointInMemory('small', { seed: 5, quant: 'bf16' });
    const out = await convertMem(bf.data, 'int4-experts');
    const cfg = JSON.parse(new TextDecoder().decode(out.get('config.json'))) as Record<string, unknown>;
    expect(cfg.quantization_config).toEqual(kimiInt4QuantizationConfig());
    const [a, b] = [await open(bf.data), await open(out)];
    for (const leaf of b.weights) {
      const src = a.tensors.get(leaf.spec.name)!;
      if (leaf.spec.role === 'routed_expert') {
        expect(leaf.format).toBe('int4');
        const w = await readStoredLinear(b, leaf.spec.name);
        const want = quantizeInt4(bf16ArrayToF32(asUint16(await readTensorBytes(src))), leaf.spec.shape[0]!, leaf.spec.shape[1]!);
        if (w.format !== 'int4') throw new Error('format');
        expect(sameBytes(w.data, want.packed), leaf.spec.name).toBe(true);
        expect(sameBytes(w.scaleBf16!, want.scale), leaf.spec.name).toBe(true);
      } else {
        expect(leaf.format).toBe(leaf.spec.kind === 'f32' ? 'f32' : 'bf16');
        expect(sameBytes(await readTensorBytes(leaf.weight), await readTensorBytes(src)), leaf.spec.name).toBe(true);
      }
    }
  });

  it('the golden int4 fixture converts to itself byte for byte (same formats are copied)', async () => {
    const dir = golden('int4');
    const data = new Map(['config.json', 'model.safetensors'].map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]));
    const out = await convertMem(data, 'int4-experts');
    const [a, b] = [await open(data), await open(out)];
    expect(b.tensors.size).toBe(a.tensors.size);
    for (const [name, t] of a.tensors) expect(sameBytes(await readTensorBytes(b.tensors.get(name)!), await readTensorBytes(t)), name).toBe(true);
  });

  it('a K2.5-wrapped sharded checkpoint converts to its flat twin (prefix and vision tensors dropped)', async () => {
    const k25 = await makeToyCheckpointInMemory('tiny', { seed: 2, quant: 'int4', k25: true, shards: 2 });
    const flat = await makeToyCheckpointInMemory('tiny', { seed: 2, quant: 'int4' });
    const out = await convertMem(k25.data, 'int4-experts');
    const cfg = JSON.parse(new TextDecoder().decode(out.get('config.json'))) as Record<string, unknown>;
    expect(cfg.architectures).toEqual(['DeepseekV3ForCausalLM']);
    expect(cfg.text_config).toBeUndefined();
    const [a, b] = [await open(flat.data), await open(out)];
    expect(b.ignored).toEqual([]);
    expect([...b.tensors.keys()].sort()).toEqual([...a.tensors.keys()].sort());
    for (const [name, t] of a.tensors) expect(sameBytes(await readTensorBytes(b.tensors.get(name)!), await readTensorBytes(t)), name).toBe(true);
  });

  it('a NaN in the input is a FormatError naming the tensor, whether the tensor is copied or re-encoded', async () => {
    const bf = await makeToyCheckpointInMemory('tiny', { seed: 1, quant: 'bf16' });
    const st = await openSafetensors(memorySource(bf.data.get('model.safetensors')!));
    for (const name of ['model.layers.0.input_layernorm.weight', 'model.layers.1.mlp.experts.3.down_proj.weight']) {
      const ts = await Promise.all([...st.tensors.values()].map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: (await readTensorBytes(t)).slice() })));
      const t = ts.find((x) => x.name === name)!;
      new Uint16Array(t.data.buffer)[5] = 0x7fc0; // BF16 NaN
      const data = new Map(bf.data).set('model.safetensors', encodeSafetensors(ts));
      for (const to of ['fp8', 'bf16'] as const) {
        const err = await convertMem(data, to).then(() => undefined, (e: unknown) => e);
        expect(err, `${name} -> ${to}`).toBeInstanceOf(FormatError);
        expect((err as FormatError).tensor).toBe(name);
      }
    }
  });

  it('shards by --shard-size with an index; INT4 needs rows that are whole groups', async () => {
    const bf = await makeToyCheckpointInMemory('tiny', { seed: 1, quant: 'bf16' });
    const out = await convertMem(bf.data, 'fp8', 100_000);
    const shards = [...out.keys()].filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThan(1);
    expect(out.has('model.safetensors.index.json')).toBe(true);
    for (const f of shards) expect(out.get(f)!.length).toBeLessThan(200_000);
    await (await open(out)).close();
    const ragged = await makeToyCheckpointInMemory('ragged', { seed: 1, quant: 'bf16' }); // hidden 200, moe width 72
    await expect(convertMem(ragged.data, 'int4-experts')).rejects.toThrow(/not a multiple of the group size 32/);
  });
});

function webmoe(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', join(REPO, 'src/cli.ts'), ...args], { cwd: REPO, maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('webmoe convert (a real process)', () => {
  it('make-toy --quant bf16 -> convert --to fp8 --shard-size: shards and an index the loader opens; refusals on one line', async () => {
    const src = join(tmp, 'bf16');
    const dst = join(tmp, 'fp8');
    expect((await webmoe(['make-toy', '--config', 'tiny', '--quant', 'bf16', '--out', src])).code).toBe(0);
    const r = await webmoe(['convert', '--model', src, '--out', dst, '--to', 'fp8', '--shard-size', '100KB']);
    expect(r.stderr.includes('error'), r.stderr).toBe(false);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/converted .* to fp8 .*model\.safetensors\.index\.json/);
    expect(readdirSync(dst).filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(1);
    const ckpt = await openCheckpoint(folderFiles(dst));
    expect(ckpt.config.quantization_config?.quant_method).toBe('fp8');
    expect(ckpt.weights.filter((w) => w.spec.kind === 'linear').every((w) => w.format === 'fp8')).toBe(true);
    await ckpt.close();
    for (const [args, msg] of [
      [['--model', src, '--out', dst, '--to', 'fp8'], /already holds a checkpoint.*--force/],
      [['--model', src, '--out', join(tmp, 'x'), '--to', 'int8'], /--to must be one of fp8, int4-experts, bf16/],
      [['--model', src, '--out', join(tmp, 'y'), '--to', 'fp8', '--shard-size', 'lots'], /--shard-size must be a size/],
      [['--model', join(tmp, 'nope'), '--out', join(tmp, 'z'), '--to', 'bf16'], /no config\.json/],
    ] as [string[], RegExp][]) {
      const e = await webmoe(['convert', ...args]);
      expect(e.code).not.toBe(0);
      expect(e.stderr.trim().split('\n'), e.stderr).toHaveLength(1);
      expect(e.stderr).toMatch(msg);
    }
  });

  it('make-toy --quant int4 --k25 --shards 2 -> inspect lists the vision tensors as ignored -> convert --to bf16 loads flat', async () => {
    const src = join(tmp, 'k25');
    const made = await webmoe(['make-toy', '--config', 'tiny', '--quant', 'int4', '--k25', '--shards', '2', '--out', src]);
    expect(made.code, made.stderr).toBe(0);
    expect(readdirSync(src)).toContain('model-00002-of-000002.safetensors');
    const r = await webmoe(['inspect', src]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('### Ignored: 3 tensors of MTP layers (>= num_hidden_layers = 2) and the vision tower / projector');
    expect(r.stdout).toMatch(/\| INT4 pack-quantized \+ group scales \| 24 \|/);
    const dst = join(tmp, 'k25-bf16');
    expect((await webmoe(['convert', '--model', src, '--out', dst, '--to', 'bf16'])).code).toBe(0);
    const ckpt = await openCheckpoint(folderFiles(dst));
    expect(ckpt.config.derived.tensorPrefix).toBe('');
    expect(ckpt.config.quantization_config).toBeNull();
    await ckpt.close();
    const bad = await webmoe(['make-toy', '--config', 'ragged', '--quant', 'int4', '--out', join(tmp, 'ragged-int4')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/INT4 needs rows of whole groups: 'model\.layers\.1\.mlp\.experts\.0\.gate_proj\.weight' has 200 input columns/);
  });
});
