/**
 * The agent's tools, each confined to a workspace root. Every failure a model can cause (a path outside the
 * workspace, a missing file, an ambiguous edit, bad arguments, a regex that would run for ever) comes back as the
 * tool's result text, starting with "error:", so the model can read it and try again; nothing it does throws
 * through the agent loop.
 *
 * Confinement (confined-fs.ts): relative paths only, `..` may not leave the root, and every file or directory
 * is opened first and then verified on its descriptor, so swapping a directory for a symlink mid-call cannot
 * lead outside; writes never follow a symlink; only regular files are read or written, with size caps.
 * `run_command` runs in a bubblewrap sandbox when one works here (sandbox.ts), else as a plain shell.
 */
import { lstat, readdir, realpath } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { ToolDefinition } from './backend.js';
import { isInside, openDir, openFile, workspaceParts } from './confined-fs.js';
import { grepWorkspace } from './grep.js';
import type { SandboxMode, SandboxStatus } from './sandbox.js';
import { probeSandbox, runShell } from './sandbox.js';
import { ToolError } from './tool-error.js';

export { ToolError } from './tool-error.js';

export interface ToolOptions {
  /** Default and maximum run_command timeout (ms). Default 30 000. */
  commandTimeoutMs?: number;
  /** Largest tool output returned to the model, in characters; longer output is cut with a note. Default 16 000. */
  maxOutputChars?: number;
  /** Time budget of one grep call (ms); a slower regular expression is stopped. Default 10 000. */
  grepTimeoutMs?: number;
  /** 'auto' (default): run_command in bubblewrap when it works here; 'off': always a plain shell. */
  sandbox?: SandboxMode;
  /** Let sandboxed commands use the network (default false). Unsandboxed commands always can. */
  allowNetwork?: boolean;
}

export interface ToolResult {
  ok: boolean;
  content: string;
}

interface ToolContext {
  root: string; // realpath of the workspace
  timeoutMs: number;
  grepTimeoutMs: number;
  maxChars: number;
  sandbox: SandboxStatus;
  allowNetwork: boolean;
  signal?: AbortSignal;
}

type Args = Record<string, unknown>;

interface ToolImpl {
  definition: ToolDefinition | ((sandbox: SandboxStatus, allowNetwork: boolean) => ToolDefinition);
  run(args: Args, ctx: ToolContext): Promise<string>;
}

/** The workspace tools: definitions for the model and an `execute` that never throws. */
export class Toolbox {
  readonly definitions: ToolDefinition[];
  private readonly impls = new Map<string, ToolImpl>();

  private constructor(
    readonly root: string,
    private readonly opts: Required<ToolOptions>,
    /** Whether run_command is sandboxed here (and if not, the warning to show). */
    readonly sandbox: SandboxStatus,
  ) {
    this.definitions = TOOLS.map((t) => (typeof t.definition === 'function' ? t.definition(sandbox, opts.allowNetwork) : t.definition));
    TOOLS.forEach((t, i) => this.impls.set(this.definitions[i]!.function.name, t));
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
    const full: Required<ToolOptions> = {
      commandTimeoutMs: opts.commandTimeoutMs ?? 30_000,
      maxOutputChars: opts.maxOutputChars ?? 16_000,
      grepTimeoutMs: opts.grepTimeoutMs ?? 10_000,
      sandbox: opts.sandbox ?? 'auto',
      allowNetwork: opts.allowNetwork ?? false,
    };
    return new Toolbox(root, full, await probeSandbox(root, full.sandbox));
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
    const ctx: ToolContext = {
      root: this.root,
      timeoutMs: this.opts.commandTimeoutMs,
      grepTimeoutMs: this.opts.grepTimeoutMs,
      maxChars: this.opts.maxOutputChars,
      sandbox: this.sandbox,
      allowNetwork: this.opts.allowNetwork,
      signal,
    };
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

/**
 * Maps a model-supplied relative path to a real path inside the workspace, or throws ToolError; for a path that
 * does not exist yet, its deepest existing ancestor is resolved instead. A check of the path as it is now,
 * for callers that want one: the tools themselves do not rely on it (a path can change after any check);
 * they verify what they opened (confined-fs.ts).
 */
export async function resolveInWorkspace(root: string, p: string): Promise<string> {
  const lexical = path.join(root, ...workspaceParts(root, p));
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

/** Reads lines [start, start + count) of an open file in 64 KiB chunks, stopping once they are read or `maxChars` is reached. */
async function readLines(fh: FileHandle, size: number, start: number, count: number, maxChars: number): Promise<string> {
  const decoder = new TextDecoder('utf-8');
  const buf = Buffer.alloc(1 << 16);
  const out: string[] = [];
  let chars = 0;
  let line = 1; // the line `cur` belongs to
  let cur = '';
  let pos = 0;
  const end = start + count;
  const inRange = (): boolean => line >= start && line < end;
  let full = false;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    pos += bytesRead;
    const text = bytesRead > 0 ? decoder.decode(buf.subarray(0, bytesRead), { stream: true }) : decoder.decode();
    let at = 0;
    for (;;) {
      const nl = text.indexOf('\n', at);
      const piece = text.slice(at, nl < 0 ? text.length : nl);
      if (inRange()) {
        cur += piece;
        if (chars + cur.length > maxChars) full = true;
      }
      if (nl < 0 || full) break;
      if (inRange()) {
        out.push(cur);
        chars += cur.length + 1;
      }
      cur = '';
      line++;
      at = nl + 1;
      if (line >= end) break;
    }
    if (full || line >= end || bytesRead === 0) break;
  }
  if (!full && line < end && inRange()) out.push(cur); // the last line has no newline
  if (full) out.push(cur);
  const text = out.join('\n');
  if (!full) return text;
  const note = `\n[output truncated in line ${line}: the file has ${size} bytes; read further with start_line and max_lines]`;
  return text.slice(0, Math.max(0, maxChars - note.length)) + note;
}

/** Writes all of `data` at offset 0 of a file that was truncated. */
async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  for (let off = 0; off < data.length; ) off += (await fh.write(data, off, data.length - off, off)).bytesWritten;
}

/** Files edit_file loads whole (it needs all of the text to check the search is unique). */
const EDIT_MAX_BYTES = 8 << 20;

const readFileTool: ToolImpl = {
  definition: def(
    'read_file',
    'Read a text file in the workspace. Optionally a range of lines (1-based). Long output is cut; read big files in ranges.',
    { path: S('file path relative to the workspace root'), start_line: I('first line, from 1'), max_lines: I('lines to read') },
    ['path'],
  ),
  async run(args, ctx) {
    const p = str(args, 'path');
    const ranged = args['start_line'] !== undefined || args['max_lines'] !== undefined;
    const start = ranged ? Math.max(1, int(args, 'start_line', 1)) : 1;
    const count = ranged && args['max_lines'] !== undefined ? int(args, 'max_lines', 0) : Infinity;
    const f = await openFile(ctx.root, p, 'read');
    try {
      return await readLines(f.fh, f.stats.size, start, count, ctx.maxChars);
    } finally {
      await f.fh.close();
    }
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
    const p = str(args, 'path');
    const content = Buffer.from(str(args, 'content'));
    const f = await openFile(ctx.root, p, 'write');
    try {
      await f.fh.truncate(0);
      await writeAll(f.fh, content);
    } finally {
      await f.fh.close();
    }
    return `wrote ${content.length} bytes to ${f.shown}`;
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
    const p = str(args, 'path');
    const search = str(args, 'search');
    const replace = str(args, 'replace');
    if (search === '') throw new ToolError('search text is empty');
    const f = await openFile(ctx.root, p, 'edit');
    try {
      if (f.stats.size > EDIT_MAX_BYTES) {
        throw new ToolError(`${f.shown} has ${f.stats.size} bytes, more than edit_file handles (${EDIT_MAX_BYTES}); use run_command (e.g. sed) instead`);
      }
      const text = (await f.fh.readFile()).toString('utf8');
      const first = text.indexOf(search);
      if (first < 0) throw new ToolError(`search text not found in ${f.shown} (it must match exactly, whitespace included)`);
      let count = 0;
      for (let at = first; at >= 0; at = text.indexOf(search, at + 1)) count++;
      if (count > 1) {
        throw new ToolError(`search text occurs ${count} times in ${f.shown}; include more surrounding context to make it unique`);
      }
      await f.fh.truncate(0);
      await writeAll(f.fh, Buffer.from(text.slice(0, first) + replace + text.slice(first + search.length)));
    } finally {
      await f.fh.close();
    }
    return `edited ${f.shown}: replaced 1 occurrence`;
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
    const p = str(args, 'path', '.');
    const parts = workspaceParts(ctx.root, p);
    const shown = parts.join('/') || '.';
    const dir = await openDir(ctx.root, parts, shown);
    let entries;
    try {
      entries = (await readdir(dir.self, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    } finally {
      await dir.close();
    }
    const names = entries.map((e) => e.name + (e.isDirectory() ? '/' : e.isSymbolicLink() ? '@' : ''));
    if (names.length === 0) return `${shown} is empty`;
    const shownNames = names.slice(0, MAX_LIST).join('\n');
    return names.length > MAX_LIST ? `${shownNames}\n[${names.length - MAX_LIST} more entries not shown]` : shownNames;
  },
};

const grepTool: ToolImpl = {
  definition: def(
    'grep',
    'Search files under a workspace path for a JavaScript regular expression; prints path:line: text. ' +
      'Skips .git, node_modules, binary files, files over 1 MiB and symlinks. A pattern too slow to finish in time is stopped.',
    {
      pattern: S('regular expression (JavaScript syntax)'),
      path: S('file or directory relative to the workspace root (default ".")'),
      ignore_case: { type: 'boolean', description: 'case-insensitive match' },
    },
    ['pattern'],
  ),
  run(args, ctx) {
    return grepWorkspace(ctx.root, {
      pattern: str(args, 'pattern'),
      ignoreCase: args['ignore_case'] === true,
      path: str(args, 'path', '.'),
      timeoutMs: ctx.grepTimeoutMs,
      signal: ctx.signal,
    });
  },
};

const runCommandTool: ToolImpl = {
  definition: (sandbox, allowNetwork) =>
    def(
      'run_command',
      'Run a shell command (/bin/sh -c) in the workspace root. Environment: PATH, HOME, LANG only. ' +
        'Output (stdout and stderr interleaved) is truncated when long. Background processes are killed when the command exits.' +
        (sandbox.sandboxed
          ? ` Sandboxed: the workspace is the only writable directory, /tmp is private${allowNetwork ? '' : ', and there is no network'}.`
          : ''),
      { command: S('the shell command'), timeout_ms: I('time limit in milliseconds (capped by the agent)') },
      ['command'],
    ),
  async run(args, ctx) {
    const command = str(args, 'command');
    const timeoutMs = Math.min(int(args, 'timeout_ms', ctx.timeoutMs), ctx.timeoutMs);
    // Leave room for the status line and note under the toolbox's overall output limit.
    const r = await runShell(command, {
      cwd: ctx.root,
      timeoutMs,
      maxChars: Math.max(100, ctx.maxChars - 300),
      signal: ctx.signal,
      sandbox: ctx.sandbox.bwrap ? { bwrap: ctx.sandbox.bwrap, allowNetwork: ctx.allowNetwork } : undefined,
    });
    const status = r.timedOut
      ? `command timed out after ${timeoutMs} ms and was killed`
      : r.aborted
        ? 'command cancelled'
        : r.signal
          ? `command killed by ${r.signal}`
          : `exit code ${r.code}`;
    let note = r.droppedChars > 0 ? `\n[output truncated: ${r.droppedChars} more characters not shown]` : '';
    if (r.outputHeld) note += `\n[a process that left the command's process group still held its output after ${timeoutMs} ms; stopped reading]`;
    if (r.timedOut || r.aborted || r.code !== 0) {
      throw new ToolError(`${status}\n${r.output}${note}`);
    }
    return `${status}\n${r.output}${note}`;
  },
};

const TOOLS: ToolImpl[] = [readFileTool, writeFileTool, editFileTool, listDirTool, grepTool, runCommandTool];
