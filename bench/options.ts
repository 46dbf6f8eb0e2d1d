/** The bench commands' option parsing shared by bench/cli.ts, offload.ts, offload-page.ts and page.ts. */
import { InputError } from '../src/errors.js';

/** An integer option `--what` of at least `min` (default 1), or `fallback` when absent; else an InputError naming it. */
export function intOption(v: string | undefined, what: string, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InputError(`--${what} must be an integer >= ${min}, got '${v}'`, what);
  return n;
}
