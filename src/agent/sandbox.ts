/**
 * run_command's shell, in an OS sandbox when bubblewrap (`bwrap`, Debian package `bubblewrap`) works here.
 *
 * The sandbox: the whole file system read-only, the workspace the only writable path, a private empty /tmp,
 * fresh /dev and /proc, new user/pid/ipc/uts/cgroup namespaces, no network unless allowed (a new network
 * namespace has only its own loopback), all capabilities dropped, a new session (no terminal to inject into),
 * and --die-with-parent. Because the command runs in its own pid namespace, every process it started dies
 * when its shell exits or is killed: nothing outlives the command, let alone the agent.
 *
 * Without a working bwrap the command runs as before (`/bin/sh -c` as the user, cwd = workspace, a reduced
 * environment, its own process group) and the caller gets a warning to show.
 *
 * In both modes the time limit holds even when a background child keeps the output pipes open: at the
 * deadline the process group is killed and the pipes are closed from our side, without waiting for EOF
 * (`sleep 25 & echo started` with a 2 s limit once took 25 s). When the shell exits, its process
 * group is killed too, so background jobs do not linger.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

export type SandboxMode = 'auto' | 'off';

export interface SandboxStatus {
  /** True when commands run inside bubblewrap. */
  sandboxed: boolean;
  /** The bwrap binary, when sandboxed. */
  bwrap?: string;
  /** Why commands are not sandboxed (a one-line warning for the user); undefined when sandboxed or turned off on purpose. */
  warning?: string;
}

export interface SandboxSpec {
  bwrap: string;
  allowNetwork: boolean;
}

function findOnPath(name: string): string | undefined {
  const dirs = (process.env['PATH'] ?? '/usr/bin:/bin').split(path.delimiter).concat(['/usr/bin', '/bin', '/usr/local/bin']);
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** bwrap's arguments for a command in `workspace` (the order matters: the workspace is bound over the private /tmp). */
export function bwrapArgs(workspace: string, allowNetwork: boolean): string[] {
  return [
    '--ro-bind', '/', '/',
    '--dev', '/dev',
    '--proc', '/proc',
    '--tmpfs', '/tmp',
    '--bind', workspace, workspace,
    '--unshare-all',
    ...(allowNetwork ? ['--share-net'] : []),
    '--cap-drop', 'ALL',
    '--die-with-parent',
    '--new-session',
    '--chdir', workspace,
    '--',
  ];
}

const probes = new Map<string, Promise<SandboxStatus>>();

/**
 * Whether bubblewrap can sandbox commands in `workspace`: it must be installed and actually start (it needs
 * user namespaces, which some kernels and containers turn off). The answer is cached per workspace.
 * `bwrap` names the binary to try (null: as if none were installed); by default it is looked up on PATH.
 */
export function probeSandbox(workspace: string, mode: SandboxMode = 'auto', bwrap?: string | null): Promise<SandboxStatus> {
  if (mode === 'off') return Promise.resolve({ sandboxed: false });
  const key = `${bwrap === undefined ? '' : String(bwrap)}\0${workspace}`;
  let p = probes.get(key);
  if (!p) {
    p = probe(workspace, bwrap === undefined ? findOnPath('bwrap') : (bwrap ?? undefined));
    probes.set(key, p);
  }
  return p;
}

const UNSANDBOXED = 'commands run as you, with your file access and network';

async function probe(workspace: string, bwrap: string | undefined): Promise<SandboxStatus> {
  if (process.platform !== 'linux') {
    return { sandboxed: false, warning: `run_command is NOT sandboxed: bubblewrap needs Linux (this is ${process.platform}); ${UNSANDBOXED}` };
  }
  if (!bwrap) {
    return { sandboxed: false, warning: `run_command is NOT sandboxed: bubblewrap is not installed (Debian/Ubuntu: apt install bubblewrap); ${UNSANDBOXED}` };
  }
  const r = await new Promise<{ code: number | null; stderr: string; error?: Error }>((resolve) => {
    const child = spawn(bwrap, [...bwrapArgs(workspace, false), '/bin/true'], { cwd: workspace, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    child.on('error', (error) => resolve({ code: null, stderr, error }));
    child.on('close', (code) => resolve({ code, stderr }));
  });
  if (r.code === 0) return { sandboxed: true, bwrap };
  const why = (r.error?.message ?? r.stderr).trim().split('\n')[0] || `exit code ${r.code}`;
  return {
    sandboxed: false,
    warning: `run_command is NOT sandboxed: ${bwrap} fails here (${why}; it needs user namespaces); ${UNSANDBOXED}`,
  };
}

export interface ShellOptions {
  cwd: string;
  timeoutMs: number;
  /** Output kept, in characters; the rest is counted in droppedChars. */
  maxChars: number;
  signal?: AbortSignal;
  /** Run inside bubblewrap (from probeSandbox); else a plain /bin/sh. */
  sandbox?: SandboxSpec;
}

export interface ShellResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  droppedChars: number;
  timedOut: boolean;
  aborted: boolean;
  /** The shell exited but something outside its process group held the output open until the time limit. */
  outputHeld: boolean;
}

/** Runs `command` with `/bin/sh -c`, in its own process group (and in bubblewrap when `sandbox` is given). */
export function runShell(command: string, opts: ShellOptions): Promise<ShellResult> {
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LANG: process.env['LANG'] ?? 'C.UTF-8' };
  if (process.env['HOME']) env['HOME'] = process.env['HOME'];
  const [file, argv] = opts.sandbox
    ? [opts.sandbox.bwrap, [...bwrapArgs(opts.cwd, opts.sandbox.allowNetwork), '/bin/sh', '-c', command]]
    : ['/bin/sh', ['-c', command]];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { cwd: opts.cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let droppedChars = 0;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let done = false;
    const onData = (b: Buffer): void => {
      const s = b.toString('utf8');
      const room = opts.maxChars - output.length;
      if (room >= s.length) output += s;
      else {
        output += s.slice(0, Math.max(0, room));
        droppedChars += s.length - Math.max(0, room);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group is already empty
      }
    };
    const finish = (how: { timedOut?: boolean; aborted?: boolean; outputHeld?: boolean }): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (how.timedOut || how.aborted || how.outputHeld) {
        killGroup();
        // do not wait for EOF: a process that left the group may hold the pipes for ever
        child.stdout.destroy();
        child.stderr.destroy();
      }
      resolve({
        code: how.timedOut || how.aborted ? null : (exit?.code ?? null),
        signal: how.timedOut || how.aborted ? null : (exit?.signal ?? null),
        output,
        droppedChars,
        timedOut: how.timedOut === true,
        aborted: how.aborted === true,
        outputHeld: how.outputHeld === true,
      });
    };
    const timer = setTimeout(() => finish(exit ? { outputHeld: true } : { timedOut: true }), opts.timeoutMs);
    const onAbort = (): void => finish({ aborted: true });
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    child.on('error', (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      killGroup(); // background jobs of the shell do not outlive it
    });
    child.on('close', () => finish({}));
  });
}
