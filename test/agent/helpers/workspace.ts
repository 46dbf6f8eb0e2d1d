import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface TempWorkspace {
  /** The workspace root (real path). */
  ws: string;
  /** A sibling directory outside the workspace, holding secret.txt. */
  outside: string;
  cleanup(): Promise<void>;
}

/**
 * tmp/ws (the workspace) and tmp/outside/secret.txt, with escape hatches planted in the workspace:
 * `link` → ../outside (directory symlink), `filelink` → ../outside/secret.txt, `dangling` → ../outside/nothing.txt.
 */
export async function tempWorkspace(): Promise<TempWorkspace> {
  const base = await realpath(await mkdtemp(path.join(os.tmpdir(), 'webmoe-agent-')));
  const ws = path.join(base, 'ws');
  const outside = path.join(base, 'outside');
  await mkdir(ws);
  await mkdir(outside);
  await writeFile(path.join(outside, 'secret.txt'), 'TOP SECRET');
  await symlink(outside, path.join(ws, 'link'));
  await symlink(path.join(outside, 'secret.txt'), path.join(ws, 'filelink'));
  await symlink(path.join(outside, 'nothing.txt'), path.join(ws, 'dangling'));
  return { ws, outside, cleanup: () => rm(base, { recursive: true, force: true }) };
}
