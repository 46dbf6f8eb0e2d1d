/**
 * Confinement under a race: a helper process swaps a real directory `d` and a symlink `s -> ../outside` inside
 * the workspace with renameat2(RENAME_EXCHANGE) as fast as it can, while the file tools work on `d/...`. A tool
 * that checks a path and then opens it again reads or writes outside whenever the swap lands in between
 * (before the fix: 40/300 reads and 20/100 writes escaped). With open-then-verify-the-descriptor, nothing may.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Toolbox } from '../../src/agent/tools.js';
import type { TempWorkspace } from './helpers/workspace.js';
import { tempWorkspace } from './helpers/workspace.js';

// Swaps argv[1] and argv[2] until killed or 60 s have passed (bounded even if the test dies); prints 'ready'.
const SWAPPER = `
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
AT_FDCWD, RENAME_EXCHANGE = -100, 2
print('ready', flush=True)
end = time.time() + 60
n = 0
while time.time() < end:
    for _ in range(1000):
        if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
            sys.exit('renameat2: errno %d' % ctypes.get_errno())
`;

const canRace =
  process.platform === 'linux' && spawnSync('python3', ['-c', 'import ctypes; ctypes.CDLL(None).renameat2'], { stdio: 'ignore' }).status === 0;

let t: TempWorkspace;
let swapper: ChildProcess | undefined;
beforeEach(async () => {
  t = await tempWorkspace();
});
afterEach(async () => {
  swapper?.kill('SIGKILL');
  swapper = undefined;
  await t.cleanup();
});

async function startSwapper(): Promise<void> {
  await mkdir(path.join(t.ws, 'd'));
  await writeFile(path.join(t.ws, 'd', 'f.txt'), 'inside');
  await writeFile(path.join(t.outside, 'f.txt'), 'TOP SECRET');
  const { symlink } = await import('node:fs/promises');
  await symlink(t.outside, path.join(t.ws, 's'));
  swapper = spawn('python3', ['-c', SWAPPER, path.join(t.ws, 'd'), path.join(t.ws, 's')], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    swapper!.stdout!.once('data', () => resolve());
    swapper!.once('exit', (code) => reject(new Error(`swapper exited early (${code})`)));
  });
}

describe.skipIf(!canRace)('file tools under a directory/symlink swap race', () => {
  it('never read or write outside the workspace in 2000 tries', async () => {
    await startSwapper();
    const tools = await Toolbox.create(t.ws, { commandTimeoutMs: 5_000 });
    const deadline = Date.now() + 90_000; // bounded even on a loaded machine
    let tries = 0;
    let readEscapes = 0;
    let listEscapes = 0;
    let grepEscapes = 0;
    let okCalls = 0;
    const kinds = ['read', 'write', 'edit', 'list', 'grep'] as const;
    for (; tries < 2000 && Date.now() < deadline; tries++) {
      const kind = kinds[tries % kinds.length]!;
      let r;
      if (kind === 'read') r = await tools.execute('read_file', JSON.stringify({ path: 'd/f.txt' }));
      else if (kind === 'write') {
        // every other write also creates a directory inside the raced one
        const p = tries % 2 === 0 ? `d/w${tries}.txt` : `d/n${tries}/w.txt`;
        r = await tools.execute('write_file', JSON.stringify({ path: p, content: 'pwned' }));
      }
      else if (kind === 'edit') r = await tools.execute('edit_file', JSON.stringify({ path: 'd/f.txt', search: 'SECRET', replace: 'PWNED' }));
      else if (kind === 'list') r = await tools.execute('list_dir', JSON.stringify({ path: 'd' }));
      else r = await tools.execute('grep', JSON.stringify({ pattern: 'SECRET', path: 'd' }));
      if (r.ok) okCalls++;
      if (kind === 'read' && r.ok && r.content !== 'inside') readEscapes++;
      if (kind === 'list' && r.content.includes('secret.txt')) listEscapes++;
      if (kind === 'grep' && r.content.includes('SECRET')) grepEscapes++;
    }
    swapper!.kill('SIGKILL');
    const outsideFiles = (await readdir(t.outside)).sort();
    const outsideText = await readFile(path.join(t.outside, 'f.txt'), 'utf8');
    console.log(`race: ${tries} tries, ${okCalls} succeeded; escapes: read ${readEscapes}, list ${listEscapes}, grep ${grepEscapes}, files outside ${outsideFiles.length - 2}`);
    expect(tries).toBeGreaterThanOrEqual(2000);
    expect({ readEscapes, listEscapes, grepEscapes }).toEqual({ readEscapes: 0, listEscapes: 0, grepEscapes: 0 });
    expect(outsideFiles).toEqual(['f.txt', 'secret.txt']); // nothing written or created outside
    expect(outsideText).toBe('TOP SECRET'); // nothing edited outside
    expect(okCalls).toBeGreaterThan(0); // the tools still work inside while the race runs
  }, 120_000);
});
