/**
 * Shared test helpers: the real adapter of the current vitest project, seeded randomness, and llm.c-style
 * closeness checks that print the first mismatches by index.
 */
import { createGpu, type AdapterChoice, type GpuContext, type GpuOptions } from '../../src/gpu/device.js';
import { mulberry32 } from '../../src/random.js';

/** The adapter the current vitest project runs on (lavapipe or swiftshader); 'auto' outside a project. */
export function testAdapter(): AdapterChoice {
  return (process.env.WEBMOE_TEST_ADAPTER as AdapterChoice | undefined) ?? 'auto';
}

const contexts = new Map<string, Promise<GpuContext>>();

/** One device per option set per test file (vitest forks a process per file). */
export function testGpu(options: Omit<GpuOptions, 'adapter'> = {}): Promise<GpuContext> {
  const key = JSON.stringify(options);
  let ctx = contexts.get(key);
  if (!ctx) {
    ctx = createGpu({ ...options, adapter: testAdapter() });
    contexts.set(key, ctx);
  }
  return ctx;
}

/** mulberry32: small, fast, seeded. */
export const rng = mulberry32;

/** Normal(0, std) samples from a seeded generator (Box-Muller). */
export function randn(rand: () => number, n: number, std = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rand(), 1e-12);
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  }
  return out;
}

export function randInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

export interface CloseReport {
  ok: boolean;
  maxAbs: number;
  mismatches: number;
  message: string;
}

/** |got - want| <= atol + rtol * |want| elementwise; the message lists up to 10 mismatches by index. */
export function compareClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  { atol = 0, rtol = 0, label = 'values' }: { atol?: number; rtol?: number; label?: string } = {},
): CloseReport {
  const lines: string[] = [];
  let maxAbs = 0;
  let mismatches = 0;
  if (got.length !== want.length) return { ok: false, maxAbs: Infinity, mismatches: -1, message: `${label}: length ${got.length} != ${want.length}` };
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const d = Math.abs(g - w);
    if (!(d <= atol + rtol * Math.abs(w))) {
      mismatches++;
      if (lines.length < 10) lines.push(`  [${i}] got ${g} want ${w} (diff ${d})`);
    }
    if (Number.isNaN(d)) maxAbs = NaN;
    else if (d > maxAbs) maxAbs = d;
  }
  const message = `${label}: ${mismatches} of ${want.length} outside atol ${atol} + rtol ${rtol}; max |diff| ${maxAbs}\n${lines.join('\n')}`;
  return { ok: mismatches === 0, maxAbs, mismatches, message };
}

/** Throws (with the mismatch report) unless got is close to want. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, opts: { atol?: number; rtol?: number; label?: string } = {}): number {
  const r = compareClose(got, want, opts);
  if (!r.ok) throw new Error(r.message);
  return r.maxAbs;
}
