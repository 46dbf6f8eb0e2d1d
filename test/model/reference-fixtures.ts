/**
 * Shared by the reference tests: where the golden fixtures are, loading one, and the relative-error report.
 * Fixtures: $WEBMOE_GOLDEN_DIR, else the vendored test/fixtures/golden/ (test/format/shared-paths.ts).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readNpy } from '../../src/format/npy.js';
import { asBigInt64, asFloat64, openSafetensors, readTensorBytes } from '../../src/format/safetensors.js';
import { fileSource } from '../../src/format/node-source.js';
import { loadCpuWeights, type CpuWeights } from '../../src/model/cpu-weights.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { SHARED_DIR } from '../format/shared-paths.js';

export const GOLDEN_DIR: string | undefined = [process.env.WEBMOE_GOLDEN_DIR, SHARED_DIR && join(SHARED_DIR, 'golden')].find(
  (d): d is string => typeof d === 'string' && existsSync(d),
);

/** Fixture cases whose weight formats the runtime does not read yet (none: INT4 experts are read, docs/model.md §13). */
export const UNSUPPORTED_CASES: ReadonlySet<string> = new Set([]);

/** Fixture names (folders with a config.json), sorted. */
export function goldenCases(): string[] {
  if (!GOLDEN_DIR) return [];
  return readdirSync(GOLDEN_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(GOLDEN_DIR!, e.name, 'config.json')) && !UNSUPPORTED_CASES.has(e.name))
    .map((e) => e.name)
    .sort();
}

export interface GoldenTap {
  shape: number[];
  data: Float64Array | BigInt64Array;
}

export interface Golden {
  name: string;
  weights: CpuWeights;
  prompt: number[];
  greedy: number[];
  logits: Float32Array; // [T, V]
  taps: Map<string, GoldenTap>;
}

export async function loadGolden(name: string): Promise<Golden> {
  const dir = join(GOLDEN_DIR!, name);
  const ckpt = await openCheckpointDir(dir);
  const weights = await loadCpuWeights(ckpt);
  await ckpt.close();
  const tokens = JSON.parse(readFileSync(join(dir, 'tokens.json'), 'utf8')) as { prompt: number[]; greedy: number[] };
  const npy = readNpy(readFileSync(join(dir, 'logits.npy')), `${name}/logits.npy`);
  if (npy.dtype !== 'f4') throw new Error(`${name}/logits.npy: expected float32`);
  const src = await fileSource(join(dir, 'taps.safetensors'));
  const st = await openSafetensors(src);
  const taps = new Map<string, GoldenTap>();
  for (const [tapName, info] of st.tensors) {
    const bytes = await readTensorBytes(info);
    taps.set(tapName, { shape: info.shape, data: info.dtype === 'I64' ? asBigInt64(bytes) : asFloat64(bytes) });
  }
  await src.close();
  return { name, weights, prompt: tokens.prompt, greedy: tokens.greedy, logits: npy.data, taps };
}

/**
 * Row-wise comparison: for each row of `width` values, max |ours − theirs| against rtol · max(1, max |theirs|)
 * of that row. Returns the worst row's error (absolute and relative to its bound's scale) and a report of the
 * first failing rows (at most 10), empty when all pass.
 */
export function compareRows(ours: ArrayLike<number>, theirs: ArrayLike<number>, width: number, rtol: number): { maxAbs: number; maxRel: number; failures: string[] } {
  let maxAbs = 0;
  let maxRel = 0;
  const failures: string[] = [];
  if (ours.length !== theirs.length) return { maxAbs: Infinity, maxRel: Infinity, failures: [`length ${ours.length} != ${theirs.length}`] };
  for (let row = 0; row * width < theirs.length; row++) {
    let err = 0;
    let scale = 1;
    let worst = 0;
    for (let i = row * width; i < (row + 1) * width; i++) {
      scale = Math.max(scale, Math.abs(theirs[i]!));
      const d = Math.abs(ours[i]! - theirs[i]!);
      if (!(d <= err)) [err, worst] = [d, i]; // NaN-safe: a NaN difference always counts as worse
    }
    maxAbs = Math.max(maxAbs, err);
    maxRel = Math.max(maxRel, err / scale);
    if (!(err <= rtol * scale) && failures.length < 10) {
      failures.push(`row ${row}: |${ours[worst]} - ${theirs[worst]}| = ${err} at column ${worst - row * width} > ${rtol} * ${scale}`);
    }
  }
  return { maxAbs, maxRel, failures };
}
