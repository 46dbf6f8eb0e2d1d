/**
 * The grep tool's search: a confined walk on the main thread (see confined-fs.ts) and the model's regular
 * expression run in a worker thread with a time budget. JavaScript regexes backtrack, so a pattern such as
 * `^(a+)+$` on 40 `a`s and a `b` runs for ages, and on the main thread nothing, not even Ctrl-C, could stop it.
 * The worker is terminated at the deadline (V8 interrupts a running regex) or when the agent is
 * cancelled, and the model gets an error it can act on.
 */
import { readdir } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import type { ConfinedDir, ConfinedFile } from './confined-fs.js';
import { openAny, openEntry } from './confined-fs.js';
import { ToolError } from './tool-error.js';

export const GREP_SKIP = new Set(['.git', 'node_modules']);
export const GREP_MAX_FILE = 1 << 20;
export const GREP_MAX_MATCHES = 200;
const MAX_DEPTH = 64;

export interface GrepOptions {
  pattern: string;
  ignoreCase: boolean;
  /** Workspace-relative start (file or directory). */
  path: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

// Plain JavaScript, run with eval (CommonJS) so it works from the TypeScript sources and from dist/ alike.
const WORKER = `
const { parentPort } = require('node:worker_threads');
let key = '';
let re;
parentPort.on('message', ({ id, pattern, flags, text, room }) => {
  if (key !== flags + '/' + pattern) [key, re] = [flags + '/' + pattern, new RegExp(pattern, flags)];
  const hits = [];
  let count = 0;
  const lines = text.split('\\n');
  for (let i = 0; i < lines.length; i++) {
    if (!re.test(lines[i])) continue;
    count++;
    if (hits.length < room) hits.push([i + 1, lines[i].slice(0, 300)]);
  }
  parentPort.postMessage({ id, hits, count });
});
`;

interface FileHits {
  hits: [number, string][];
  count: number;
}

/**
 * One worker thread shared by every grep (starting one costs ~50-100 ms); it is terminated and replaced when a
 * deadline passes. Unref'd while idle, so it never keeps the process alive.
 */
class RegexWorker {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (r: FileHits) => void; reject: (e: unknown) => void }>();

  match(pattern: string, flags: string, text: string, room: number): Promise<FileHits> {
    const w = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.ref();
      w.postMessage({ id, pattern, flags, text, room });
    });
  }

  /** Stops a running match: terminates the worker and fails whatever was waiting on it with `err`. */
  kill(err: unknown): void {
    const w = this.worker;
    this.worker = undefined;
    if (w) void w.terminate();
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER, { eval: true });
    w.unref();
    w.on('message', ({ id, hits, count }: FileHits & { id: number }) => {
      const p = this.pending.get(id);
      this.pending.delete(id);
      if (this.pending.size === 0) w.unref();
      p?.resolve({ hits, count });
    });
    w.on('error', (e) => {
      if (this.worker === w) this.kill(new ToolError(`grep failed: ${e.message}`));
    });
    w.on('exit', () => {
      if (this.worker === w) this.kill(new ToolError('grep failed: its worker thread exited'));
    });
    this.worker = w;
    return w;
  }
}

const regexWorker = new RegexWorker();

/** Runs the search; returns the tool's text (path:line: text lines, or "no matches"). */
export async function grepWorkspace(root: string, opts: GrepOptions): Promise<string> {
  const flags = opts.ignoreCase ? 'i' : '';
  try {
    new RegExp(opts.pattern, flags); // compiling is cheap and cannot hang; matching is what needs the worker
  } catch (err) {
    throw new ToolError(`invalid regular expression: ${(err as Error).message}`);
  }
  const start = await openAny(root, opts.path);
  let failure: ToolError | undefined;
  const stop = (err: ToolError): void => {
    failure ??= err;
    regexWorker.kill(err);
  };
  const timer = setTimeout(
    () =>
      stop(
        new ToolError(
          `grep timed out after ${opts.timeoutMs} ms and was stopped: the regular expression is too slow on these files ` +
            '(nested quantifiers such as (a+)+ backtrack exponentially); use a simpler pattern or a narrower path',
        ),
      ),
    opts.timeoutMs,
  );
  const onAbort = (): void => stop(new ToolError('grep cancelled'));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  const matches: string[] = [];
  let more = 0;

  const grepFile = async (f: ConfinedFile): Promise<void> => {
    try {
      if (f.stats.size > GREP_MAX_FILE) return;
      const buf = Buffer.alloc(f.stats.size);
      const { bytesRead } = await f.fh.read(buf, 0, buf.length, 0);
      const bytes = buf.subarray(0, bytesRead);
      if (bytes.includes(0)) return; // binary
      if (failure) throw failure;
      const r = await regexWorker.match(opts.pattern, flags, bytes.toString('utf8'), GREP_MAX_MATCHES - matches.length);
      for (const [line, text] of r.hits) matches.push(`${f.shown}:${line}: ${text}`);
      more += r.count - r.hits.length;
    } finally {
      await f.fh.close();
    }
  };
  const walk = async (dir: ConfinedDir, depth: number): Promise<void> => {
    try {
      if (depth > MAX_DEPTH) return;
      const names = (await readdir(dir.self)).sort();
      for (const name of names) {
        if (failure) throw failure;
        if (GREP_SKIP.has(name)) continue;
        const e = await openEntry(root, dir, name); // never follows a symlink
        if (!e) continue;
        if ('dir' in e) await walk(e.dir, depth + 1);
        else await grepFile(e.file);
      }
    } finally {
      await dir.close();
    }
  };
  try {
    if ('dir' in start) await walk(start.dir, 0);
    else await grepFile(start.file);
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
  if (matches.length === 0) return 'no matches';
  return more > 0 ? `${matches.join('\n')}\n[${more} more matches not shown]` : matches.join('\n');
}
