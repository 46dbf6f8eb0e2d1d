/**
 * Opening files and directories inside a workspace so that no path swap can lead a tool outside it.
 *
 * Checking a path (realpath) and then opening it again is a race: a directory swapped for a symlink in between
 * sends the open elsewhere (a test once saw 40/300 reads and 20/100 writes escape). Here every open is verified
 * *after* it happened, on the descriptor itself, and nothing is read or written before that:
 *
 * - Directories are walked one component at a time. Each component is opened relative to the previous,
 *   already-verified directory descriptor, through `/proc/self/fd/N/NAME`: the kernel resolves that from the
 *   open directory itself, as `openat(N, NAME)` would (Node has no openat). Each descriptor is then verified by
 *   reading `/proc/self/fd/N` (the path the kernel holds for it) and checking it is inside the root.
 * - Files are opened in their verified directory; writes use O_NOFOLLOW (a symlink as the last component is
 *   refused, so O_CREAT cannot create a file at a link's target) and never O_TRUNC (truncation happens on the
 *   verified descriptor); every open uses O_NONBLOCK, so opening a FIFO cannot hang, and fstat then refuses
 *   anything that is not a regular file.
 * - Missing directories (write_file creates parents) are made with mkdir inside the verified parent.
 *
 * Without /proc (not Linux) this is only best effort: paths are opened by their real path and verified by
 * comparing the descriptor's fstat (dev, ino) with the realpath's, but each check re-resolves the path, so a
 * swap timed between checks can still win (about 2 in 2000 raced calls), and a write that loses the race may
 * create an empty file outside before the check refuses it. docs/agent-and-server.md states this.
 */
import { constants } from 'node:fs';
import type { Stats } from 'node:fs';
import { lstat, mkdir, open, readlink, realpath, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ToolError } from './tool-error.js';

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const O_NONBLOCK = constants.O_NONBLOCK ?? 0;
const O_DIRECTORY = constants.O_DIRECTORY ?? 0;
const O_NOCTTY = constants.O_NOCTTY ?? 0;
const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT } = constants;

let procWorks: Promise<boolean> | undefined;
/** Tests only: pretend /proc is missing (false), or detect it again (undefined). */
export function useProcFd(enabled: false | undefined): void {
  procWorks = enabled === false ? Promise.resolve(false) : undefined;
}

/** Whether /proc/self/fd names descriptors (Linux). */
function hasProcFd(): Promise<boolean> {
  procWorks ??= (async () => {
    if (process.platform !== 'linux') return false;
    let fh: FileHandle | undefined;
    try {
      fh = await open('/', O_RDONLY | O_DIRECTORY);
      return (await readlink(`/proc/self/fd/${fh.fd}`)) === '/';
    } catch {
      return false;
    } finally {
      await fh?.close();
    }
  })();
  return procWorks;
}

export const isInside = (root: string, p: string): boolean => {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/**
 * The lexical part of confinement: `p` must be relative, contain no NUL and not leave `root` with `..`.
 * Returns the normalised components (`[]` for the root itself).
 */
export function workspaceParts(root: string, p: string): string[] {
  if (p.includes('\0')) throw new ToolError('path contains a NUL byte');
  if (path.isAbsolute(p) || /^[A-Za-z]:[\\/]/.test(p)) {
    throw new ToolError(`absolute path '${p}' refused: use a path relative to the workspace root`);
  }
  const lexical = path.resolve(root, p);
  if (!isInside(root, lexical)) throw new ToolError(`path '${p}' is outside the workspace`);
  const rel = path.relative(root, lexical);
  return rel === '' ? [] : rel.split(path.sep);
}

/** An open directory, verified to be inside the workspace. */
export class ConfinedDir {
  constructor(
    private readonly fh: FileHandle,
    /** Its real path when it was verified. */
    readonly real: string,
    /** Children are named through /proc/self/fd (Linux). */
    readonly viaProc: boolean,
  ) {}

  /** A path the kernel resolves from this open directory (Linux), else from its verified real path. */
  child(name: string): string {
    return this.viaProc ? `/proc/self/fd/${this.fh.fd}/${name}` : path.join(this.real, name);
  }

  /** A path naming this very directory, for readdir. */
  get self(): string {
    return this.viaProc ? `/proc/self/fd/${this.fh.fd}` : this.real;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** An opened regular file, verified to be inside the workspace. */
export interface ConfinedFile {
  fh: FileHandle;
  stats: Stats;
  /** The path as the model gave it, normalised and relative to the root (for messages). */
  shown: string;
}

const outside = (shown: string): ToolError => new ToolError(`path '${shown}' leads outside the workspace through a symlink`);

/** Checks the descriptor (not the path) is inside `root`; returns its real path. Closes it and throws if not. */
async function verify(root: string, fh: FileHandle, opened: string, shown: string, viaProc: boolean): Promise<string> {
  let real: string | undefined;
  try {
    if (viaProc) {
      const target = await readlink(`/proc/self/fd/${fh.fd}`);
      // " (deleted)": the file was unlinked after the open; its location cannot be vetted
      if (!target.endsWith(' (deleted)')) real = target;
    } else {
      // Path-based, so only best effort: each step re-resolves the path, and a swap timed between them wins.
      // Checking the real path on both sides of the stat narrows that window.
      const candidate = await realpath(opened);
      const [a, b] = await Promise.all([fh.stat(), stat(candidate)]);
      if (a.dev === b.dev && a.ino === b.ino && (await realpath(opened)) === candidate) real = candidate;
    }
  } catch {
    real = undefined;
  }
  if (real === undefined || !isInside(root, real)) {
    await fh.close();
    throw outside(shown);
  }
  return real;
}

/** errno → a one-line message naming the workspace-relative path (never /proc/self/fd/N). */
function fsError(err: unknown, shown: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return new ToolError(`ENOENT: no such file or directory: '${shown}'`);
    case 'ENOTDIR':
      return new ToolError(`ENOTDIR: a component of '${shown}' is not a directory`);
    case 'EISDIR':
      return new ToolError(`EISDIR: '${shown}' is a directory`);
    case 'EACCES':
    case 'EPERM':
      return new ToolError(`${code}: permission denied: '${shown}'`);
    case 'ELOOP':
      return new ToolError(`path '${shown}' is a symlink; refused (file tools do not write through symlinks: name its target instead)`);
    case 'ENXIO':
      return new ToolError(`'${shown}' is not a regular file (a FIFO or socket); refused`);
    default:
      return code ? new ToolError(`${code}: cannot open '${shown}'`) : err;
  }
}

/** Opens the workspace root itself. */
async function openRoot(root: string): Promise<ConfinedDir> {
  const viaProc = await hasProcFd();
  const fh = await open(root, O_RDONLY | O_DIRECTORY);
  return new ConfinedDir(fh, await verify(root, fh, root, '.', viaProc), viaProc);
}

/**
 * Opens the directory `parts` (from workspaceParts) inside `root`, one verified component at a time. Symlinks
 * among the components are followed only when they stay inside. With `create`, missing directories are made.
 */
export async function openDir(root: string, parts: string[], shown: string, create = false): Promise<ConfinedDir> {
  let dir = await openRoot(root);
  try {
    for (const name of parts) {
      const at = dir.child(name);
      let fh: FileHandle;
      try {
        fh = await open(at, O_RDONLY | O_DIRECTORY | O_NONBLOCK);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !create) throw fsError(err, shown);
        const st = await lstat(at).catch(() => undefined);
        if (st?.isSymbolicLink()) throw new ToolError(`path '${shown}' is a symlink to a missing target; refused`);
        await mkdir(at).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'EEXIST') throw fsError(e, shown);
        });
        fh = await open(at, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK).catch((e: unknown) => {
          throw fsError(e, shown);
        });
      }
      const real = await verify(root, fh, path.join(dir.real, name), shown, dir.viaProc);
      await dir.close();
      dir = new ConfinedDir(fh, real, dir.viaProc);
    }
    return dir;
  } catch (err) {
    await dir.close().catch(() => undefined);
    throw err;
  }
}

export type OpenMode = 'read' | 'write' | 'edit';

const FLAGS: Record<OpenMode, number> = {
  // reads follow a last-component symlink and verify where it led; writes never follow one
  read: O_RDONLY | O_NONBLOCK | O_NOCTTY,
  write: O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
  edit: O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
};

/** Opens the regular file `p` inside `root`; `write` creates it (and its parent directories), never truncates. */
export async function openFile(root: string, p: string, mode: OpenMode): Promise<ConfinedFile> {
  const parts = workspaceParts(root, p);
  const shown = parts.join('/') || '.';
  if (parts.length === 0) throw new ToolError(`'${shown}' is the workspace directory, not a file`);
  const dir = await openDir(root, parts.slice(0, -1), shown, mode === 'write');
  try {
    const at = dir.child(parts[parts.length - 1]!);
    if (mode === 'write') {
      // a dangling symlink would otherwise read as "ELOOP"; say what it is
      const st = await lstat(at).catch(() => undefined);
      if (st?.isSymbolicLink()) throw new ToolError(`path '${shown}' is a symlink; refused (file tools do not write through symlinks: name its target instead)`);
    }
    const fh = await open(at, FLAGS[mode], 0o666).catch((e: unknown) => {
      throw fsError(e, shown);
    });
    await verify(root, fh, path.join(dir.real, parts[parts.length - 1]!), shown, dir.viaProc);
    const stats = await fh.stat();
    if (!stats.isFile()) {
      await fh.close();
      throw new ToolError(`'${shown}' is ${describeKind(stats)}, not a regular file; refused`);
    }
    return { fh, stats, shown };
  } finally {
    await dir.close();
  }
}

/**
 * Opens whatever `p` names (a file or a directory) for reading, verified; used by grep for its start point.
 * Returns a directory or a regular file; anything else is an error.
 */
export async function openAny(root: string, p: string): Promise<{ dir: ConfinedDir } | { file: ConfinedFile }> {
  const parts = workspaceParts(root, p);
  const shown = parts.join('/') || '.';
  if (parts.length === 0) return { dir: await openRoot(root) };
  const parent = await openDir(root, parts.slice(0, -1), shown);
  try {
    const name = parts[parts.length - 1]!;
    const fh = await open(parent.child(name), O_RDONLY | O_NONBLOCK | O_NOCTTY).catch((e: unknown) => {
      throw fsError(e, shown);
    });
    const viaProc = parent.viaProc;
    const real = await verify(root, fh, path.join(parent.real, name), shown, viaProc);
    const stats = await fh.stat();
    if (stats.isDirectory()) return { dir: new ConfinedDir(fh, real, viaProc) };
    if (stats.isFile()) return { file: { fh, stats, shown } };
    await fh.close();
    throw new ToolError(`'${shown}' is ${describeKind(stats)}; refused`);
  } finally {
    await parent.close();
  }
}

/**
 * Opens entry `name` of a verified directory without following a symlink (grep's walk): a directory, a
 * regular file, or undefined for anything else (symlinks, FIFOs, devices, entries that vanished).
 */
export async function openEntry(root: string, dir: ConfinedDir, name: string): Promise<{ dir: ConfinedDir } | { file: ConfinedFile } | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(dir.child(name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  } catch {
    return undefined; // ELOOP (a symlink), EACCES, ENOENT (removed meanwhile)...
  }
  const viaProc = dir.viaProc;
  const shown = path.relative(root, path.join(dir.real, name));
  let real: string;
  try {
    real = await verify(root, fh, path.join(dir.real, name), shown, viaProc);
  } catch {
    return undefined;
  }
  const stats = await fh.stat();
  if (stats.isDirectory()) return { dir: new ConfinedDir(fh, real, viaProc) };
  if (stats.isFile()) return { file: { fh, stats, shown } };
  await fh.close();
  return undefined;
}

function describeKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}
