/**
 * The agent's tools, each confined to a workspace root. Every failure a model can cause (a path outside the
 * workspace, a missing file, an ambiguous edit, bad arguments) comes back as the tool's result text, starting
 * with "error:", so the model can read it and try again; nothing it does throws through the agent loop.
 *
 * Confinement: relative paths only; the path is resolved lexically (so `..` that leaves the root is refused)
 * and then through the file system (realpath of the path, or of its deepest existing ancestor when creating
 * a file), so a symlink that leads out is refused too. `run_command` runs with cwd = workspace and a minimal
 * environment, but it is a shell: it is *not* a sandbox, and can touch anything the user can.
 */
import { spawn } from 'node:child_process';
import { lstat, mkdir, readFile, readdir, realpath, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WebmoeError } from '../errors.js';
import type { ToolDefinition } from './backend.js';

/** A tool refused or failed; its message is what the model reads. */
export class ToolError extends WebmoeError {
  constructor(message: string) {
    super('TOOL', message);
  }
}

export interface ToolOptions {
  /** Default and maximum run_command timeout (ms). Default 30 000. */
  commandTimeoutMs?: number;
  /** Largest tool output returned to the model, in characters; longer output is cut with a note. Default 16 000. */
  maxOutputChars?: number;
}

export interface ToolResult {
  ok: boolean;
  content: string;
}

interface ToolContext {
  root: string; // realpath of the workspace
  timeoutMs: number;
  maxChars: number;
  signal?: AbortSignal;
}

type Args = Record<string, unknown>;

interface ToolImpl {
  definition: ToolDefinition;
  run(args: Args, ctx: ToolContext): Promise<string>;
}

/** The workspace tools: definitions for the model and an `execute` that never throws. */
export class Toolbox {
  readonly definitions: ToolDefinition[];
  private readonly impls = new Map<string, ToolImpl>();

  private constructor(
    readonly root: string,
    private readonly opts: Required<ToolOptions>,
  ) {
    for (const t of TOOLS) this.impls.set(t.definition.function.name, t);
    this.definitions = TOOLS.map((t) => t.definition);
  }

  /** Resolves the workspace (it must exist and be a directory). */
  static async create(workspace: string, opts: ToolOptions = {}): Promise<Toolbox> {
    let root: string;
    try {
      root = await realpath(workspace);
    } catch {
      throw new ToolError(`workspace ${workspace} does not exist (create it or pass an existing directory)`);
    }
    if (!(await lstat(root)).isDirectory()) throw new ToolError(`workspace ${workspace} is not a directory`);
    return new Toolbox(root, {
      commandTimeoutMs: opts.commandTimeoutMs ?? 30_000,
      maxOutputChars: opts.maxOutputChars ?? 16_000,
    });
  }

  /** Runs tool `name` with JSON `argsJson`. Errors become `{ok: false, content: "error: ..."}`. */
  async execute(name: string, argsJson: string, signal?: AbortSignal): Promise<ToolResult> {
    const impl = this.impls.get(name);
    if (!impl) return fail(`unknown tool '${name}'; available: ${[...this.impls.keys()].join(', ')}`);
    let args: unknown;
    try {
      args = argsJson.trim() === '' ? {} : JSON.parse(argsJson);
    } catch (err) {
      return fail(`arguments for ${name} are not valid JSON (${(err as Error).message}): ${argsJson.slice(0, 200)}`);
    }
    if (typeof args !== 'object' || args === null || Array.isArray(args)) return fail(`arguments for ${name} must be a JSON object`);
    const ctx: ToolContext = { root: this.root, timeoutMs: this.opts.commandTimeoutMs, maxChars: this.opts.maxOutputChars, signal };
    try {
      return { ok: true, content: truncate(await impl.run(args as Args, ctx), ctx.maxChars) };
    } catch (err) {
      if (err instanceof ToolError) return fail(err.message);
      const e = err as NodeJS.ErrnoException;
      return fail(e.code ? `${e.code}: ${e.message.replaceAll(this.root + path.sep, '')}` : String(e.message ?? err));
    }
  }
}

const fail = (message: string): ToolResult => ({ ok: false, content: `error: ${message}` });

function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}\n[output truncated: ${text.length - max} more characters not shown]`;
}

// ---------------------------------------------------------------------------------------------------------
// Path confinement

const isInside = (root: string, p: string): boolean => {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/**
 * Maps a model-supplied relative path to a real path inside the workspace, or throws ToolError.
 * For a path that does not exist yet, its deepest existing ancestor is resolved instead.
 */
export async function resolveInWorkspace(root: string, p: string): Promise<string> {
  if (p.includes('\0')) throw new ToolError('path contains a NUL byte');
  if (path.isAbsolute(p) || /^[A-Za-z]:[\\/]/.test(p)) {
    throw new ToolError(`absolute path '${p}' refused: use a path relative to the workspace root`);
  }
  const lexical = path.resolve(root, p);
  if (!isInside(root, lexical)) throw new ToolError(`path '${p}' is outside the workspace`);
  let existing = lexical;
  const missing: string[] = [];
  for (;;) {
    try {
      const real = await realpath(existing);
      if (!isInside(root, real)) throw new ToolError(`path '${p}' leads outside the workspace through a symlink`);
      return path.join(real, ...missing);
    } catch (err) {
      if (err instanceof ToolError) throw err;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // ENOENT from realpath: either nothing is there, or a dangling symlink whose target we cannot vet.
      const st = await lstat(existing).catch(() => undefined);
      if (st?.isSymbolicLink()) throw new ToolError(`path '${p}' is a symlink to a missing target; refused`);
      missing.unshift(path.basename(existing));
      existing = path.dirname(existing);
    }
  }
}

const rel = (ctx: ToolContext, abs: string): string => path.relative(ctx.root, abs) || '.';

function str(args: Args, key: string, fallback?: string): string {
  const v = args[key] ?? fallback;
  if (typeof v !== 'string') throw new ToolError(`argument '${key}' must be a string`);
  return v;
}

function int(args: Args, key: string, fallback: number): number {
  const v = args[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ToolError(`argument '${key}' must be a non-negative integer`);
  return v;
}

const def = (name: string, description: string, properties: Record<string, unknown>, required: string[]): ToolDefinition => ({
  type: 'function',
  function: { name, description, parameters: { type: 'object', properties, required, additionalProperties: false } },
});

const S = (description: string): Record<string, string> => ({ type: 'string', description });
const I = (description: string): Record<string, string> => ({ type: 'integer', description });

// ---------------------------------------------------------------------------------------------------------
// The tools

const readFileTool: ToolImpl = {
  definition: def(
    'read_file',
    'Read a text file in the workspace. Optionally a range of lines (1-based).',
    { path: S('file path relative to the workspace root'), start_line: I('first line, from 1'), max_lines: I('lines to read') },
    ['path'],
  ),
  async run(args, ctx) {
    const file = await resolveInWorkspace(ctx.root, str(args, 'path'));
    const text = await readFile(file, 'utf8');
    if (args['start_line'] === undefined && args['max_lines'] === undefined) return text;
    const lines = text.split('\n');
    const start = Math.max(1, int(args, 'start_line', 1));
    const count = int(args, 'max_lines', lines.length);
    return lines.slice(start - 1, start - 1 + count).join('\n');
  },
};

const writeFileTool: ToolImpl = {
  definition: def(
    'write_file',
    'Create or overwrite a file in the workspace (parent directories are created).',
    { path: S('file path relative to the workspace root'), content: S('the complete new file content') },
    ['path', 'content'],
  ),
  async run(args, ctx) {
    const file = await resolveInWorkspace(ctx.root, str(args, 'path'));
    const content = str(args, 'content');
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
    return `wrote ${Buffer.byteLength(content)} bytes to ${rel(ctx, file)}`;
  },
};

const editFileTool: ToolImpl = {
  definition: def(
    'edit_file',
    'Replace one exact occurrence of `search` with `replace` in a file. `search` must occur exactly once: ' +
      'include enough surrounding lines to make it unique.',
    { path: S('file path relative to the workspace root'), search: S('exact text to find'), replace: S('replacement text') },
    ['path', 'search', 'replace'],
  ),
  async run(args, ctx) {
    const file = await resolveInWorkspace(ctx.root, str(args, 'path'));
    const search = str(args, 'search');
    const replace = str(args, 'replace');
    if (search === '') throw new ToolError('search text is empty');
    const text = await readFile(file, 'utf8');
    const first = text.indexOf(search);
    if (first < 0) throw new ToolError(`search text not found in ${rel(ctx, file)} (it must match exactly, whitespace included)`);
    let count = 0;
    for (let at = first; at >= 0; at = text.indexOf(search, at + 1)) count++;
    if (count > 1) {
      throw new ToolError(`search text occurs ${count} times in ${rel(ctx, file)}; include more surrounding context to make it unique`);
    }
    await writeFile(file, text.slice(0, first) + replace + text.slice(first + search.length));
    return `edited ${rel(ctx, file)}: replaced 1 occurrence`;
  },
};

const MAX_LIST = 1000;

const listDirTool: ToolImpl = {
  definition: def(
    'list_dir',
    'List a directory in the workspace. Directories end with "/", symlinks with "@".',
    { path: S('directory relative to the workspace root (default ".")') },
    [],
  ),
  async run(args, ctx) {
    const dir = await resolveInWorkspace(ctx.root, str(args, 'path', '.'));
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    const names = entries.map((e) => e.name + (e.isDirectory() ? '/' : e.isSymbolicLink() ? '@' : ''));
    if (names.length === 0) return `${rel(ctx, dir)} is empty`;
    const shown = names.slice(0, MAX_LIST).join('\n');
    return names.length > MAX_LIST ? `${shown}\n[${names.length - MAX_LIST} more entries not shown]` : shown;
  },
};

const GREP_SKIP = new Set(['.git', 'node_modules']);
const GREP_MAX_FILE = 1 << 20;
const GREP_MAX_MATCHES = 200;

const grepTool: ToolImpl = {
  definition: def(
    'grep',
    'Search files under a workspace path for a JavaScript regular expression; prints path:line: text. ' +
      'Skips .git, node_modules, binary files, files over 1 MiB and symlinks.',
    {
      pattern: S('regular expression (JavaScript syntax)'),
      path: S('file or directory relative to the workspace root (default ".")'),
      ignore_case: { type: 'boolean', description: 'case-insensitive match' },
    },
    ['pattern'],
  ),
  async run(args, ctx) {
    let re: RegExp;
    try {
      re = new RegExp(str(args, 'pattern'), args['ignore_case'] === true ? 'i' : '');
    } catch (err) {
      throw new ToolError(`invalid regular expression: ${(err as Error).message}`);
    }
    const start = await resolveInWorkspace(ctx.root, str(args, 'path', '.'));
    const matches: string[] = [];
    let more = 0;
    const visit = async (p: string): Promise<void> => {
      const st = await lstat(p);
      if (st.isSymbolicLink()) return; // never followed: a link may lead out of the workspace
      if (st.isDirectory()) {
        const names = (await readdir(p)).sort();
        for (const name of names) if (!GREP_SKIP.has(name)) await visit(path.join(p, name));
        return;
      }
      if (!st.isFile() || st.size > GREP_MAX_FILE) return;
      const buf = await readFile(p);
      if (buf.includes(0)) return;
      for (const [i, line] of buf.toString('utf8').split('\n').entries()) {
        if (!re.test(line)) continue;
        if (matches.length < GREP_MAX_MATCHES) matches.push(`${rel(ctx, p)}:${i + 1}: ${line.slice(0, 300)}`);
        else more++;
      }
    };
    await visit(start);
    if (matches.length === 0) return 'no matches';
    return more > 0 ? `${matches.join('\n')}\n[${more} more matches not shown]` : matches.join('\n');
  },
};

const runCommandTool: ToolImpl = {
  definition: def(
    'run_command',
    'Run a shell command (/bin/sh -c) in the workspace root. Environment: PATH, HOME, LANG only. ' +
      'Output (stdout and stderr interleaved) is truncated when long.',
    { command: S('the shell command'), timeout_ms: I('time limit in milliseconds (capped by the agent)') },
    ['command'],
  ),
  async run(args, ctx) {
    const command = str(args, 'command');
    const timeoutMs = Math.min(int(args, 'timeout_ms', ctx.timeoutMs), ctx.timeoutMs);
    // Leave room for the status line and note under the toolbox's overall output limit.
    const r = await runShell(command, ctx.root, timeoutMs, Math.max(100, ctx.maxChars - 200), ctx.signal);
    const status = r.timedOut
      ? `command timed out after ${timeoutMs} ms and was killed`
      : r.aborted
        ? 'command cancelled'
        : r.signal
          ? `command killed by ${r.signal}`
          : `exit code ${r.code}`;
    const note = r.droppedChars > 0 ? `\n[output truncated: ${r.droppedChars} more characters not shown]` : '';
    if (r.timedOut || r.aborted || r.code !== 0) {
      throw new ToolError(`${status}\n${r.output}${note}`);
    }
    return `${status}\n${r.output}${note}`;
  },
};

interface ShellResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  droppedChars: number;
  timedOut: boolean;
  aborted: boolean;
}

/** Runs `command` in its own process group so a timeout kills its children too. */
export function runShell(command: string, cwd: string, timeoutMs: number, maxChars: number, signal?: AbortSignal): Promise<ShellResult> {
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LANG: process.env['LANG'] ?? 'C.UTF-8' };
  if (process.env['HOME']) env['HOME'] = process.env['HOME'];
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let droppedChars = 0;
    let timedOut = false;
    let aborted = false;
    const onData = (b: Buffer): void => {
      const s = b.toString('utf8');
      const room = maxChars - output.length;
      if (room >= s.length) output += s;
      else {
        output += s.slice(0, Math.max(0, room));
        droppedChars += s.length - Math.max(0, room);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const kill = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL'); // the group is already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      kill();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    child.on('error', (err) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    // 'exit', not 'close': a process that escaped the group may keep the pipes open after the kill.
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const finish = (): void => resolve({ code, signal: sig, output, droppedChars, timedOut, aborted });
      if (timedOut || aborted) {
        child.stdout.destroy();
        child.stderr.destroy();
        finish();
      } else child.on('close', finish);
    });
  });
}

const TOOLS: ToolImpl[] = [readFileTool, writeFileTool, editFileTool, listDirTool, grepTool, runCommandTool];
