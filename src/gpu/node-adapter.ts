/**
 * Node only: Dawn (the `webgpu` package) on the right Vulkan driver.
 *   auto        a hardware adapter if there is one, else lavapipe, else SwiftShader
 *   hardware    the system's Vulkan drivers; fails when only a software adapter exists
 *   lavapipe    Mesa's CPU driver (shader-f16, subgroups, 128 MiB bindings)
 *   swiftshader Chromium's CPU driver (no shader-f16, 1 GiB bindings)
 * The choice comes from the argument, else WEBMOE_ADAPTER, else auto. The Vulkan loader reads
 * VK_ICD_FILENAMES when Dawn creates its instance, so it is set just before `create()`.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { DeviceError, InputError } from '../errors.js';
import { ADAPTER_CHOICES, type AdapterChoice } from './device.js';

const LAVAPIPE_ICDS = ['/usr/share/vulkan/icd.d/lvp_icd.json', '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json', '/usr/share/vulkan/icd.d/lvp_icd.aarch64.json', '/etc/vulkan/icd.d/lvp_icd.json'];
const SWIFTSHADER_ICDS = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json', '/opt/google/chrome/vk_swiftshader_icd.json'];
const INSTALL_HINT = "run 'sudo bash scripts/install-deps.sh' (or 'npm test' / 'npm start' as root) to install the software Vulkan drivers";

/** Dawn instances made so far: never released, since a collected instance crashes devices made from it. */
const instances: unknown[] = [];

export function findIcd(kind: 'lavapipe' | 'swiftshader'): string | undefined {
  return (kind === 'lavapipe' ? LAVAPIPE_ICDS : SWIFTSHADER_ICDS).find((p) => existsSync(p));
}

export function resolveAdapterChoice(choice?: string): AdapterChoice {
  const value = choice ?? process.env.WEBMOE_ADAPTER ?? 'auto';
  if (!(ADAPTER_CHOICES as readonly string[]).includes(value)) {
    throw new InputError(`unknown adapter '${value}': use one of ${ADAPTER_CHOICES.join(', ')}`, 'adapter');
  }
  return value as AdapterChoice;
}

/**
 * Threads of lavapipe's compute pool for a machine with `cores` logical CPUs: Mesa reads LP_NUM_THREADS when the
 * Vulkan instance is created (default: every core), and webmoe sets it before Dawn creates one unless the user did.
 * Why fewer than every core: Dawn's Node binding waits for the GPU by polling on the JS thread (a setImmediate tick
 * until the mapAsync resolves), so that thread keeps one core busy through every step, and a dispatch waits for the
 * slowest of the pool's threads, which the poller preempts. So cores - 1 pool threads; and none when that leaves one
 * (lavapipe then runs the dispatches on its queue thread: the same core, without a hand-off per dispatch).
 * Measured on the 2-vCPU development machine (docs/benchmarks.md "lavapipe's threads"; median of 128 decode steps of
 * `small`, twice each): 2 pool threads (Mesa's default) 5.5-7.2 ms, 1 thread 4.7-5.0, none 4.0-4.1; the bench's fixed
 * cost per dispatch 13-18 µs with a pool, 0.3 µs without; k2-layer decode 284 / 275 / 294 ms per step (within noise:
 * two processes of pure arithmetic ran 1.7x slower than one there, so its two vCPUs share one core's throughput).
 */
export function lavapipeThreads(cores = availableParallelism()): number {
  const free = cores - 1;
  return free <= 1 ? 0 : free;
}

/**
 * The compute threads lavapipe runs with in this process (LP_NUM_THREADS as set before the first instance), or the
 * user's value as given when it is not a whole number >= 0.
 */
export function lavapipeThreadsInUse(): number | string {
  const v = process.env.LP_NUM_THREADS ?? '';
  return /^\d+$/.test(v.trim()) ? Number(v) : v;
}

async function dawn(icd: string | null): Promise<GPU> {
  const { create } = await import('webgpu');
  if (icd) process.env.VK_ICD_FILENAMES = icd;
  // only llvmpipe reads it; a value the user set wins (see lavapipeThreads)
  if (process.env.LP_NUM_THREADS === undefined) process.env.LP_NUM_THREADS = String(lavapipeThreads());
  const gpu = create([]) as GPU;
  instances.push(gpu);
  // the instance discovers its adapters on the first request, synchronously, and that is when Dawn logs
  await withoutDawnNoise(() => gpu.requestAdapter({ powerPreference: 'high-performance' }));
  return gpu;
}

// ---------------------------------------------------------------------------------------------------------
// Dawn's known noise on stderr (issue #11)
//
// On lavapipe and SwiftShader, which report a huge maxDescriptorSet*BuffersDynamic, Dawn prints two lines per
// instance when it discovers the adapter ("Warning: maxDynamicUniformBuffersPerPipelineLayout artificially
// reduced from 1000000 to 16 ..."): harmless (webmoe uses no dynamic offsets), but they preceded every command.
// They come from Dawn's C++ logger (fprintf to stderr), not through any WebGPU callback, and no Dawn toggle or
// request-time limit avoids them (they are computed at adapter discovery, before any request). So the one place
// to drop them is file descriptor 2 itself, and only for the synchronous call in which Dawn discovers the
// adapter: fd 2 points at a temporary file for that call, then back at the real stderr, and everything written
// meanwhile is written out again except exactly these known lines. Real errors are never swallowed.
// Node has no dup2(): close(2) followed by open() takes the lowest free descriptor, which is 2 (0 and 1 are
// checked to be open). That is only safe when no other thread can open a file in between, so it is opt-in for
// the CLI's main thread (quietDawnNoise()), Linux only (/proc/self/fd reopens the original stderr: a terminal, a
// pipe, a file); anything unexpected leaves stderr untouched. A socket cannot be reopened that way (the default
// 'pipe' stdio of a Node parent process is a socketpair), so there the lines stay: a program, not a terminal.

const DAWN_NOISE = /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;
let filterNoise = false;

/** Drops Dawn's known adapter-discovery warnings from stderr from now on (the CLI calls this; see above). */
export function quietDawnNoise(on = true): void {
  filterNoise = on;
}

/** Runs `fn` (synchronous) with fd 2 captured, then writes what it printed back to stderr minus DAWN_NOISE. */
export function withoutDawnNoise<T>(fn: () => T): T {
  if (!filterNoise || !isMainThread || process.platform !== 'linux' || process.env.WEBMOE_DAWN_LOG === '1') return fn();
  let saved: number;
  try {
    fstatSync(0);
    fstatSync(1);
    saved = openSync('/proc/self/fd/2', 'a'); // a second handle on whatever stderr is (fails for a socket: no filtering)
  } catch {
    return fn();
  }
  const path = join(tmpdir(), `webmoe-dawn-${process.pid}-${Date.now()}.log`);
  closeSync(2);
  let captured = -1;
  try {
    captured = openSync(path, 'w+', 0o600);
  } catch {
    // cannot create the file: put stderr back and run unfiltered
  }
  if (captured !== 2) {
    if (captured >= 0) closeSync(captured);
    restoreStderr(saved);
    return fn();
  }
  try {
    return fn();
  } finally {
    closeSync(2);
    restoreStderr(saved);
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
      unlinkSync(path);
    } catch {
      // nothing to replay
    }
    const kept = text.split('\n').filter((line, i, all) => !DAWN_NOISE.test(line) && (line !== '' || i < all.length - 1));
    if (kept.length > 0) process.stderr.write(kept.join('\n') + '\n');
  }
}

function restoreStderr(saved: number): void {
  const fd = openSync(`/proc/self/fd/${saved}`, 'a'); // lowest free descriptor: 2
  closeSync(saved);
  if (fd !== 2) closeSync(fd); // cannot happen with 0 and 1 open; never leave a stray descriptor
}

async function isSoftware(gpu: GPU): Promise<'none' | 'software' | 'hardware'> {
  const a = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!a) return 'none';
  const i = a.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const text = `${i.vendor} ${i.architecture} ${i.description}`.toLowerCase();
  return i.isFallbackAdapter || /llvmpipe|swiftshader|software/.test(text) ? 'software' : 'hardware';
}

export async function nodeGpu(choice?: string): Promise<{ gpu: GPU; instance: unknown; driver: AdapterChoice }> {
  const wanted = resolveAdapterChoice(choice);
  if (wanted === 'lavapipe' || wanted === 'swiftshader') {
    const icd = findIcd(wanted);
    if (!icd) throw new DeviceError(`the ${wanted} Vulkan driver is not installed: ${INSTALL_HINT}`, { reason: 'no-driver' });
    const gpu = await dawn(icd);
    return { gpu, instance: gpu, driver: wanted };
  }
  // hardware / auto: first the system's drivers as they are (a user-set VK_ICD_FILENAMES is respected)
  const userIcd = process.env.VK_ICD_FILENAMES;
  const systemGpu = await dawn(null);
  const kind = await isSoftware(systemGpu);
  if (kind === 'hardware') return { gpu: systemGpu, instance: systemGpu, driver: 'hardware' };
  if (wanted === 'hardware') {
    throw new DeviceError(`no hardware WebGPU adapter found (${kind === 'none' ? 'no adapter at all' : 'only a software one'}); use --adapter auto to fall back to a CPU driver`, {
      reason: 'no-hardware',
    });
  }
  if (userIcd && kind === 'software') return { gpu: systemGpu, instance: systemGpu, driver: 'auto' };
  for (const soft of ['lavapipe', 'swiftshader'] as const) {
    const icd = findIcd(soft);
    if (!icd) continue;
    const gpu = await dawn(icd);
    if ((await isSoftware(gpu)) !== 'none') return { gpu, instance: gpu, driver: soft };
  }
  throw new DeviceError(`no WebGPU adapter: ${INSTALL_HINT}`, { reason: 'no-adapter' });
}
