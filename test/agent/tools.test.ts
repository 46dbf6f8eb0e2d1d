import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Toolbox, resolveInWorkspace } from '../../src/agent/tools.js';
import type { TempWorkspace } from './helpers/workspace.js';
import { tempWorkspace } from './helpers/workspace.js';

let t: TempWorkspace;
let tools: Toolbox;
beforeEach(async () => {
  t = await tempWorkspace();
  tools = await Toolbox.create(t.ws, { commandTimeoutMs: 5_000, maxOutputChars: 2_000 });
});
afterEach(async () => t.cleanup());

const run = (name: string, args: unknown): ReturnType<Toolbox['execute']> => tools.execute(name, JSON.stringify(args));

describe('workspace confinement', () => {
  const escapes: [string, unknown, RegExp][] = [
    ['read_file', { path: '/etc/passwd' }, /absolute path/],
    ['read_file', { path: '../outside/secret.txt' }, /outside the workspace/],
    ['read_file', { path: 'sub/../../outside/secret.txt' }, /outside the workspace/],
    ['read_file', { path: 'link/secret.txt' }, /symlink/],
    ['read_file', { path: 'filelink' }, /symlink/],
    ['write_file', { path: 'link/new.txt', content: 'x' }, /symlink/],
    ['write_file', { path: 'link/deep/new.txt', content: 'x' }, /symlink/],
    ['write_file', { path: 'filelink', content: 'pwned' }, /symlink/],
    ['write_file', { path: 'dangling', content: 'x' }, /symlink/],
    ['edit_file', { path: 'filelink', search: 'TOP', replace: 'NOT' }, /symlink/],
    ['list_dir', { path: '..' }, /outside the workspace/],
    ['list_dir', { path: 'link' }, /symlink/],
    ['grep', { pattern: 'SECRET', path: '../outside' }, /outside the workspace/],
    ['write_file', { path: '/tmp/webmoe-escape.txt', content: 'x' }, /absolute path/],
  ];
  it.each(escapes)('%s %j is refused with a readable error', async (name, args, message) => {
    const r = await run(name, args);
    expect(r.ok).toBe(false);
    expect(r.content).toMatch(/^error: /);
    expect(r.content).toMatch(message);
  });

  it('left everything outside untouched', async () => {
    for (const [name, args] of escapes) await run(name, args);
    expect(await readFile(path.join(t.outside, 'secret.txt'), 'utf8')).toBe('TOP SECRET');
    expect((await readdir(t.outside)).sort()).toEqual(['secret.txt']);
  });

  it('grep does not follow symlinks out of the workspace', async () => {
    await writeFile(path.join(t.ws, 'a.txt'), 'no secrets here\n');
    expect((await run('grep', { pattern: 'SECRET' })).content).toBe('no matches');
  });

  it('allows .. that stays inside and creates parent directories', async () => {
    expect((await run('write_file', { path: 'sub/dir/../x.txt', content: 'hello' })).ok).toBe(true);
    expect(await readFile(path.join(t.ws, 'sub', 'x.txt'), 'utf8')).toBe('hello');
    expect(await resolveInWorkspace(t.ws, 'sub/new/deeper.txt')).toBe(path.join(t.ws, 'sub', 'new', 'deeper.txt'));
  });
});

describe('file tools', () => {
  it('read_file reads whole files and line ranges', async () => {
    await writeFile(path.join(t.ws, 'f.txt'), 'one\ntwo\nthree\nfour');
    expect((await run('read_file', { path: 'f.txt' })).content).toBe('one\ntwo\nthree\nfour');
    expect((await run('read_file', { path: 'f.txt', start_line: 2, max_lines: 2 })).content).toBe('two\nthree');
    const missing = await run('read_file', { path: 'nope.txt' });
    expect(missing).toMatchObject({ ok: false });
    expect(missing.content).toMatch(/ENOENT/);
    expect(missing.content).not.toContain(t.ws); // errors name workspace-relative paths
  });

  it('edit_file replaces exactly one occurrence, and refuses absent or ambiguous search text', async () => {
    const f = path.join(t.ws, 'code.ts');
    await writeFile(f, 'let a = 1;\nlet b = 1;\nlet c = 2;\n');
    const absent = await run('edit_file', { path: 'code.ts', search: 'let d', replace: 'x' });
    expect(absent).toEqual({ ok: false, content: 'error: search text not found in code.ts (it must match exactly, whitespace included)' });
    const ambiguous = await run('edit_file', { path: 'code.ts', search: ' = 1;', replace: ' = 3;' });
    expect(ambiguous.ok).toBe(false);
    expect(ambiguous.content).toMatch(/occurs 2 times in code\.ts; include more surrounding context/);
    expect((await run('edit_file', { path: 'code.ts', search: '', replace: 'x' })).content).toMatch(/search text is empty/);
    expect(await readFile(f, 'utf8')).toBe('let a = 1;\nlet b = 1;\nlet c = 2;\n');
    expect(await run('edit_file', { path: 'code.ts', search: 'let b = 1;', replace: 'let b = 42;' })).toEqual({
      ok: true,
      content: 'edited code.ts: replaced 1 occurrence',
    });
    expect(await readFile(f, 'utf8')).toBe('let a = 1;\nlet b = 42;\nlet c = 2;\n');
  });

  it('list_dir marks directories and symlinks; grep prints path:line', async () => {
    await mkdir(path.join(t.ws, 'src'));
    await writeFile(path.join(t.ws, 'src', 'm.ts'), 'const x = 1;\n// TODO fix\nconst y = 2; // todo too\n');
    expect((await run('list_dir', {})).content).toBe('dangling@\nfilelink@\nlink@\nsrc/');
    expect((await run('grep', { pattern: 'TODO' })).content).toBe('src/m.ts:2: // TODO fix');
    expect((await run('grep', { pattern: 'todo', ignore_case: true, path: 'src' })).content).toBe(
      'src/m.ts:2: // TODO fix\nsrc/m.ts:3: const y = 2; // todo too',
    );
    expect((await run('grep', { pattern: '(' })).content).toMatch(/^error: invalid regular expression/);
  });

  it('reports bad arguments and unknown tools as results, not exceptions', async () => {
    expect((await tools.execute('read_file', '{"path": ')).content).toMatch(/^error: arguments for read_file are not valid JSON/);
    expect((await tools.execute('read_file', '[1]')).content).toBe('error: arguments for read_file must be a JSON object');
    expect((await run('read_file', { path: 3 })).content).toBe("error: argument 'path' must be a string");
    expect((await run('delete_everything', {})).content).toMatch(/^error: unknown tool 'delete_everything'; available: read_file/);
  });

  it('has an OpenAI function definition for every tool', () => {
    expect(tools.definitions.map((d) => d.function.name)).toEqual(['read_file', 'write_file', 'edit_file', 'list_dir', 'grep', 'run_command']);
    for (const d of tools.definitions) {
      expect(d.type).toBe('function');
      expect(d.function.parameters).toMatchObject({ type: 'object', required: expect.any(Array) });
    }
  });
});

describe('run_command', () => {
  it('runs in the workspace with only PATH, HOME and LANG from the environment', async () => {
    process.env['WEBMOE_TEST_SECRET'] = 'leak';
    try {
      const r = await run('run_command', { command: 'pwd; env' });
      expect(r.ok).toBe(true);
      const [status, cwd, ...envLines] = r.content.trim().split('\n');
      expect(status).toBe('exit code 0');
      expect(cwd).toBe(t.ws);
      const names = envLines.map((l) => l.split('=')[0]);
      expect(names).not.toContain('WEBMOE_TEST_SECRET');
      // sh itself adds PWD, SHLVL and _ (and OLDPWD on some shells)
      for (const n of names) expect(['PATH', 'HOME', 'LANG', 'PWD', 'SHLVL', '_', 'OLDPWD']).toContain(n);
      expect(names).toContain('PATH');
    } finally {
      delete process.env['WEBMOE_TEST_SECRET'];
    }
  });

  it('kills a command that runs past its timeout, children included', async () => {
    const started = Date.now();
    const r = await run('run_command', { command: 'sleep 30 & sleep 30; echo never', timeout_ms: 200 });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.ok).toBe(false);
    expect(r.content).toMatch(/^error: command timed out after 200 ms and was killed/);
    expect(r.content).not.toContain('never');
  });

  it('caps the timeout a model asks for at the configured maximum', async () => {
    const short = await Toolbox.create(t.ws, { commandTimeoutMs: 150 });
    const r = await short.execute('run_command', JSON.stringify({ command: 'sleep 30', timeout_ms: 60_000 }));
    expect(r.content).toMatch(/timed out after 150 ms/);
  });

  it('truncates long output with a note', async () => {
    const r = await run('run_command', { command: 'i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done' });
    expect(r.ok).toBe(true);
    expect(r.content.length).toBeLessThanOrEqual(2_000);
    expect(r.content).toMatch(/\n\[output truncated: \d+ more characters not shown\]$/);
    expect(r.content).toContain('line 0\nline 1\n');
  });

  it('reports a failing exit code as an error result with the output', async () => {
    const r = await run('run_command', { command: 'echo oops >&2; exit 3' });
    expect(r).toEqual({ ok: false, content: 'error: exit code 3\noops\n' });
  });

  it('stops when the agent is cancelled', async () => {
    const controller = new AbortController();
    const p = tools.execute('run_command', JSON.stringify({ command: 'echo started; sleep 30' }), controller.signal);
    controller.abort();
    expect((await p).content).toMatch(/^error: command cancelled/);
  });
});
