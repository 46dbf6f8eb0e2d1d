/**
 * Issue #11's attacks on the tools, each bounded in time: a catastrophic regex in grep, a FIFO and a 300 MB
 * file for read_file, background children holding run_command's pipes, and (when bubblewrap works here) the
 * sandbox: read-only outside the workspace, a private /tmp, no network unless allowed, nothing outliving a command.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { useProcFd } from '../../src/agent/confined-fs.js';
import { probeSandbox } from '../../src/agent/sandbox.js';
import { Toolbox } from '../../src/agent/tools.js';
import type { TempWorkspace } from './helpers/workspace.js';
import { tempWorkspace } from './helpers/workspace.js';

let t: TempWorkspace;
beforeEach(async () => {
  t = await tempWorkspace();
});
afterEach(async () => t.cleanup());

const call = async (tools: Toolbox, name: string, args: unknown): Promise<{ ok: boolean; content: string; ms: number }> => {
  const started = Date.now();
  const r = await tools.execute(name, JSON.stringify(args));
  return { ...r, ms: Date.now() - started };
};

const sandboxWorks = (await probeSandbox(process.cwd())).sandboxed;
const modes = [['plain shell', 'off'] as const, ...(sandboxWorks ? [['bubblewrap', 'auto'] as const] : [])];

describe('grep with a time budget', () => {
  it('stops a catastrophic regex at its deadline with an error the model reads, then works again', async () => {
    // ^(a+)+$ backtracks 2^n times on n a's and a b: n = 26 takes ~10 s on the main thread, the 40 would take
    // days (n stays at 26 so that this test, run against a main-thread grep, fails in bounded time)
    await writeFile(path.join(t.ws, 'evil.txt'), `${'a'.repeat(26)}b\nfine line\n`);
    const tools = await Toolbox.create(t.ws, { grepTimeoutMs: 1_000 });
    const r = await call(tools, 'grep', { pattern: '^(a+)+$', path: 'evil.txt' });
    expect(r.ok).toBe(false);
    expect(r.content).toMatch(/^error: grep timed out after 1000 ms and was stopped: the regular expression is too slow/);
    expect(r.ms).toBeLessThan(4_000);
    // the agent (and its event loop) stayed responsive, and the next grep gets a fresh worker
    expect((await call(tools, 'grep', { pattern: 'fine' })).content).toBe('evil.txt:2: fine line');
  }, 20_000);

  it('is cancelled with the agent', async () => {
    await writeFile(path.join(t.ws, 'evil.txt'), `${'a'.repeat(26)}b\n`);
    const tools = await Toolbox.create(t.ws, { grepTimeoutMs: 60_000 });
    const ac = new AbortController();
    const p = tools.execute('grep', JSON.stringify({ pattern: '^(a+)+$' }), ac.signal);
    setTimeout(() => ac.abort(), 200);
    expect((await p).content).toBe('error: grep cancelled');
  }, 20_000);
});

describe('read_file on what is not a small regular file', () => {
  it('refuses a FIFO at once instead of blocking', async () => {
    const fifo = path.join(t.ws, 'pipe');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const tools = await Toolbox.create(t.ws);
    try {
      for (const [name, args] of [
        ['read_file', { path: 'pipe' }],
        ['edit_file', { path: 'pipe', search: 'a', replace: 'b' }],
        ['write_file', { path: 'pipe', content: 'x' }],
      ] as const) {
        const r = await call(tools, name, args);
        expect(r.ok, name).toBe(false);
        expect(r.content, name).toMatch(/not a regular file/);
        expect(r.ms, name).toBeLessThan(2_000);
      }
      expect((await call(tools, 'grep', { pattern: 'x' })).content).toBe('no matches'); // skipped, not opened for ever
    } finally {
      // unblock a reader stuck on the FIFO (the code before the fix), so the test process can end
      const w = await open(fifo, 'r+').catch(() => undefined);
      await w?.close();
    }
  }, 10_000);

  it('reads only what it returns from a 300 MB file', async () => {
    const big = path.join(t.ws, 'big.log');
    await writeFile(big, 'line one\nline two\n');
    const fh = await open(big, 'r+');
    await fh.truncate(300 * 1024 * 1024); // sparse: no disk, but 300 MB to read for a reader that reads it all
    await fh.close();
    const tools = await Toolbox.create(t.ws, { maxOutputChars: 2_000 });
    const first = await call(tools, 'read_file', { path: 'big.log', max_lines: 2 });
    expect(first.content).toBe('line one\nline two');
    expect(first.ms).toBeLessThan(1_000);
    const whole = await call(tools, 'read_file', { path: 'big.log' });
    expect(whole.ok).toBe(true);
    expect(whole.content.length).toBeLessThanOrEqual(2_000);
    expect(whole.content.startsWith('line one\nline two\n')).toBe(true);
    expect(whole.content).toMatch(/\n\[output truncated in line 3: the file has 314572800 bytes; read further with start_line and max_lines\]$/);
    expect(whole.ms).toBeLessThan(1_000);
    const edit = await call(tools, 'edit_file', { path: 'big.log', search: 'line one', replace: 'x' });
    expect(edit.content).toMatch(/has 314572800 bytes, more than edit_file handles/);
  }, 20_000);

  it('reads line ranges across chunk boundaries exactly as split would', async () => {
    const lines = Array.from({ length: 30_000 }, (_, i) => `line ${i + 1} ${'é'.repeat(i % 7)}`);
    await writeFile(path.join(t.ws, 'f.txt'), lines.join('\n'));
    const tools = await Toolbox.create(t.ws, { maxOutputChars: 1_000_000 });
    for (const [start, count] of [[1, 3], [4000, 5], [29_999, 10], [30_001, 2]]) {
      const r = await call(tools, 'read_file', { path: 'f.txt', start_line: start, max_lines: count });
      expect(r.content).toBe(lines.slice(start - 1, start - 1 + count).join('\n'));
    }
    expect((await call(tools, 'read_file', { path: 'f.txt' })).content).toBe(lines.join('\n'));
    expect((await call(tools, 'read_file', { path: 'f.txt', start_line: 29_990 })).content).toBe(lines.slice(29_989).join('\n'));
  }, 20_000);
});

describe.each(modes)('run_command (%s)', (_label, sandbox) => {
  it('returns at once when a background child keeps the output pipes open, and the child does not outlive it', async () => {
    const tools = await Toolbox.create(t.ws, { sandbox, commandTimeoutMs: 2_000 });
    const r = await call(tools, 'run_command', { command: 'sleep 25 & (sleep 1; echo late > late.txt) & echo started' });
    expect(r).toMatchObject({ ok: true, content: 'exit code 0\nstarted\n' });
    expect(r.ms).toBeLessThan(1_500);
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // the background writer would have written by now
    expect(existsSync(path.join(t.ws, 'late.txt'))).toBe(false);
  }, 15_000);

  it('kills every process of the command at its time limit', async () => {
    const tools = await Toolbox.create(t.ws, { sandbox, commandTimeoutMs: 300 });
    const r = await call(tools, 'run_command', { command: '(sleep 1; echo late > late.txt) & sleep 30' });
    expect(r.content).toMatch(/^error: command timed out after 300 ms and was killed/);
    await new Promise((resolve) => setTimeout(resolve, 1_300)); // the background writer would have written by now
    expect(existsSync(path.join(t.ws, 'late.txt'))).toBe(false);
  }, 15_000);

  it('ends at the time limit even when a process that left the group holds the pipes', async () => {
    const tools = await Toolbox.create(t.ws, { sandbox, commandTimeoutMs: 1_000 });
    // (the short sleep lets setsid leave the group before the shell exits and its group is killed)
    const r = await call(tools, 'run_command', { command: 'setsid sleep 8 & sleep 0.3; echo started' });
    expect(r.ms).toBeLessThan(2_500);
    expect(r.content).toMatch(/^exit code 0\nstarted\n/);
    if (sandbox === 'auto') expect(r.ms).toBeLessThan(1_000 + 300); // its pid namespace died with the shell
    else expect(r.content).toMatch(/still held its output after 1000 ms; stopped reading\]$/);
  }, 15_000);
});

describe.skipIf(!sandboxWorks)('run_command in bubblewrap', () => {
  it('is read-only outside the workspace and has a private /tmp', async () => {
    const tools = await Toolbox.create(t.ws);
    expect(tools.sandbox).toMatchObject({ sandboxed: true });
    expect(tools.definitions.find((d) => d.function.name === 'run_command')?.function.description).toMatch(/Sandboxed: the workspace is the only writable directory/);
    const marker = `webmoe-sandbox-test-${process.pid}`;
    const r = await call(tools, 'run_command', {
      command: `echo in > inside.txt; mkdir -p sub && echo deep > sub/d.txt; echo x > /tmp/${marker} && cat /tmp/${marker}; echo pwned > ../outside/pwned.txt; echo pwned > $HOME/${marker}`,
    });
    expect(r.ok).toBe(false); // the last write fails
    expect(r.content).toMatch(/Read-only file system/);
    expect(await readFile(path.join(t.ws, 'inside.txt'), 'utf8')).toBe('in\n');
    expect(await readFile(path.join(t.ws, 'sub', 'd.txt'), 'utf8')).toBe('deep\n');
    expect(existsSync(path.join(t.outside, 'pwned.txt'))).toBe(false);
    expect(existsSync(path.join('/tmp', marker))).toBe(false);
    expect(existsSync(path.join(process.env['HOME'] ?? '/nonexistent', marker))).toBe(false);
  }, 15_000);

  it('has no network unless allowed', async () => {
    const server = net.createServer((s) => s.end('hello\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const probe = `${process.execPath} -e "require('net').connect(${port}, '127.0.0.1').on('data', (d) => { process.stdout.write('got ' + d); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(1); })"`;
    try {
      const closed = await call(await Toolbox.create(t.ws), 'run_command', { command: probe });
      expect(closed.content).toMatch(/^error: exit code 1\nECONNREFUSED/); // its own loopback, where nothing listens
      const open = await call(await Toolbox.create(t.ws, { allowNetwork: true }), 'run_command', { command: probe });
      expect(open.content).toBe('exit code 0\ngot hello\n');
    } finally {
      server.close();
    }
  }, 20_000);
});

describe('without bubblewrap', () => {
  it('says why commands are not sandboxed, and runs them as before', async () => {
    const missing = await probeSandbox(t.ws, 'auto', null);
    expect(missing).toEqual({ sandboxed: false, warning: expect.stringMatching(/^run_command is NOT sandboxed: bubblewrap is not installed \(Debian\/Ubuntu: apt install bubblewrap\)/) });
    const broken = await probeSandbox(t.ws, 'auto', '/bin/false');
    expect(broken.sandboxed).toBe(false);
    expect(broken.warning).toMatch(/^run_command is NOT sandboxed: \/bin\/false fails here/);
    expect(await probeSandbox(t.ws, 'off')).toEqual({ sandboxed: false });
    await mkdir(path.join(t.ws, 'x'));
    const tools = await Toolbox.create(t.ws, { sandbox: 'off' });
    expect((await call(tools, 'run_command', { command: 'ls' })).content).toContain('x\n');
  });
});

describe('file confinement without /proc (the portable fallback)', () => {
  beforeEach(() => useProcFd(false));
  afterEach(() => useProcFd(undefined));

  it('still refuses every way out and works inside', async () => {
    const tools = await Toolbox.create(t.ws, { sandbox: 'off' });
    for (const [name, args] of [
      ['read_file', { path: 'link/secret.txt' }],
      ['read_file', { path: 'filelink' }],
      ['write_file', { path: 'link/new.txt', content: 'x' }],
      ['write_file', { path: 'link/deep/new.txt', content: 'x' }],
      ['write_file', { path: 'filelink', content: 'pwned' }],
      ['write_file', { path: 'dangling', content: 'x' }],
      ['edit_file', { path: 'filelink', search: 'TOP', replace: 'NOT' }],
      ['list_dir', { path: 'link' }],
      ['grep', { pattern: 'SECRET', path: 'link' }],
    ] as const) {
      const r = await call(tools, name, args);
      expect(r.ok, `${name} ${JSON.stringify(args)}`).toBe(false);
      expect(r.content).toMatch(/symlink/);
    }
    expect(await readFile(path.join(t.outside, 'secret.txt'), 'utf8')).toBe('TOP SECRET');
    expect((await call(tools, 'write_file', { path: 'a/b/c.txt', content: 'hi' })).ok).toBe(true);
    expect((await call(tools, 'read_file', { path: 'a/b/c.txt' })).content).toBe('hi');
    expect((await call(tools, 'edit_file', { path: 'a/b/c.txt', search: 'hi', replace: 'ho' })).ok).toBe(true);
    expect((await call(tools, 'list_dir', { path: 'a/b' })).content).toBe('c.txt');
    expect((await call(tools, 'grep', { pattern: 'ho' })).content).toBe('a/b/c.txt:1: ho');
  });
});
