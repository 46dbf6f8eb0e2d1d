/**
 * lavapipe's compute threads (node-adapter.ts lavapipeThreads): one core is left to the JS thread, which Dawn's
 * Node binding keeps busy polling while it waits for the GPU; a pool of one thread is no pool (lavapipe runs the
 * dispatches on its queue thread); a LP_NUM_THREADS the user set is kept, and doctor says which is in use.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findIcd, lavapipeThreads } from '../../src/gpu/node-adapter.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'webmoe.js');

function doctorThreadsLine(env: Record<string, string | undefined>): string {
  const r = spawnSync(process.execPath, [BIN, 'doctor', '--adapter', 'lavapipe'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split('\n').find((l) => l.startsWith('threads:')) ?? '';
}

describe('lavapipe compute threads', () => {
  it('leaves one core to the polling JS thread, and no pool where that leaves one thread', () => {
    expect(lavapipeThreads(1)).toBe(0);
    expect(lavapipeThreads(2)).toBe(0);
    expect(lavapipeThreads(3)).toBe(2);
    expect(lavapipeThreads(16)).toBe(15);
  });

  it.skipIf(!findIcd('lavapipe'))("doctor reports the machine's default, a LP_NUM_THREADS the user set wins, and one that is no number is named", () => {
    const def = doctorThreadsLine({ LP_NUM_THREADS: undefined });
    const n = lavapipeThreads();
    expect(def).toContain(n === 0 ? 'its queue thread (LP_NUM_THREADS=0)' : `${n} pool threads`);
    expect(doctorThreadsLine({ LP_NUM_THREADS: '3' })).toContain('3 pool threads');
    // a value that is no thread count is reported as given, with what to do, and doctor still works
    expect(doctorThreadsLine({ LP_NUM_THREADS: 'many' })).toMatch(/LP_NUM_THREADS='many' is not a whole number >= 0.*set a whole number/);
  });
});
