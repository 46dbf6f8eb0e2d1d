/**
 * Node only: Dawn (the `webgpu` package) on the right Vulkan driver.
 *   auto        a hardware adapter if there is one, else lavapipe, else SwiftShader
 *   hardware    the system's Vulkan drivers; fails when only a software adapter exists
 *   lavapipe    Mesa's CPU driver (shader-f16, subgroups, 128 MiB bindings)
 *   swiftshader Chromium's CPU driver (no shader-f16, 1 GiB bindings)
 * The choice comes from the argument, else WEBMOE_ADAPTER, else auto. The Vulkan loader reads
 * VK_ICD_FILENAMES when Dawn creates its instance, so it is set just before `create()`.
 */
import { existsSync } from 'node:fs';
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

async function dawn(icd: string | null): Promise<GPU> {
  const { create } = await import('webgpu');
  if (icd) process.env.VK_ICD_FILENAMES = icd;
  const gpu = create([]) as GPU;
  instances.push(gpu);
  return gpu;
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
