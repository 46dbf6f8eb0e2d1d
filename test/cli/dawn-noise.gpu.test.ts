/**
 * Dawn's adapter-discovery warnings ("maxDynamic...BuffersPerPipelineLayout artificially reduced ...", two lines
 * per Dawn instance on the software adapters) no longer precede every command (issue #11); the filter that drops
 * them (node-adapter.ts withoutDawnNoise) keeps every other line: test/cli/hardening.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { testAdapter } from '../helpers/gpu.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'webmoe.js');
const dir = mkdtempSync(join(tmpdir(), 'webmoe-dawn-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Dawn noise on stderr', () => {
  // stderr as a user has it: a file here, a terminal or a shell pipe in practice (a Node parent's default 'pipe'
  // stdio is a socket, which cannot be reopened: there the lines stay, see node-adapter.ts)
  it.each([[testAdapter()], ['auto']])('webmoe doctor --adapter %s prints no "artificially reduced" line', (adapter) => {
    const errPath = join(dir, `stderr-${adapter}.txt`);
    const errFd = openSync(errPath, 'w');
    const r = spawnSync(process.execPath, [BIN, 'doctor', '--adapter', adapter], { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', errFd] });
    closeSync(errFd);
    const stderr = readFileSync(errPath, 'utf8');
    expect(r.status, stderr).toBe(0);
    expect(r.stdout).toMatch(/^adapter: /m);
    expect(stderr).not.toMatch(/artificially reduced/);
    // through a shell pipe too
    const piped = spawnSync('sh', ['-c', `"${process.execPath}" "${BIN}" doctor --adapter ${adapter} 2>&1 >/dev/null | cat`], { encoding: 'utf8', timeout: 120_000 });
    expect(piped.stdout).not.toMatch(/artificially reduced/);
  });
});
