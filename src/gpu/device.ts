/**
 * One way to get a GPUDevice, in Node (Dawn through the `webgpu` package) and in the browser (navigator.gpu).
 *
 * - Requests the adapter's real limits (not the small WebGPU defaults) and the optional features webmoe uses
 *   (shader-f16, subgroups, timestamp-query) only where the adapter has them, and reports what it got.
 * - `device.lost` and uncaptured errors are recorded and thrown as a DeviceError by the next `check()`:
 *   nothing is swallowed, and a lost device is never used silently.
 * - In Node, `adapter: auto|hardware|lavapipe|swiftshader` picks the Vulkan driver (see node-adapter.ts).
 *
 * Trap (docs/webgpu-on-linux.md §4): the object Dawn's `create()` returns must stay referenced while the device
 * lives, or the process crashes when it is garbage-collected. `GpuContext.instance` holds it.
 */
import { DeviceError } from '../errors.js';
import { adapterClass } from './ops/adapter-class.js';

export type AdapterChoice = 'auto' | 'hardware' | 'lavapipe' | 'swiftshader';
export const ADAPTER_CHOICES: readonly AdapterChoice[] = ['auto', 'hardware', 'lavapipe', 'swiftshader'];

/** Optional features webmoe can use; requested only when the adapter has them. */
export const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;
export type OptionalFeature = (typeof OPTIONAL_FEATURES)[number];

/** The limits webmoe raises to the adapter's maximum. */
export const LIMITS_WE_USE = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxUniformBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxBindGroups',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
] as const;
export type LimitName = (typeof LIMITS_WE_USE)[number];

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (lavapipe/llvmpipe, SwiftShader, WARP...). */
  software: boolean;
  /** Which driver webmoe picked in Node ('browser' in a page). */
  driver: AdapterChoice | 'browser';
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  /**
   * Node on lavapipe: its compute pool's threads (LP_NUM_THREADS, node-adapter.ts lavapipeThreads; 0: inline), or
   * the user's LP_NUM_THREADS as given when it is not a thread count (Mesa then keeps its own default)
   */
  lavapipeThreads?: number | string;
}

export interface GpuOptions {
  /** Node only; default: WEBMOE_ADAPTER or 'auto'. */
  adapter?: AdapterChoice;
  /** Extra limits to require (fails with DeviceError when the adapter cannot provide them). */
  requiredLimits?: Partial<Record<LimitName, number>>;
  /** Features to leave out even when the adapter has them (to test the f32 path on an f16 adapter). */
  disableFeatures?: OptionalFeature[];
  /**
   * Caps maxStorageBufferBindingSize below the adapter's (tests force the tensor-splitting path with a few MiB).
   * The device is still created with the real limit; kernels and the engine read `limits` from the context.
   */
  maxBindingSizeCap?: number;
}

export interface GpuContext {
  device: GPUDevice;
  adapter: GPUAdapter;
  info: AdapterDescription;
  features: ReadonlySet<OptionalFeature>;
  /** The limits the device was created with (after maxBindingSizeCap). */
  limits: Readonly<Record<LimitName, number>>;
  /** Throws the first recorded device loss or uncaptured error as a DeviceError. Call before each submission. */
  check(): void;
  /** True once the device is lost (destroy() included). */
  readonly lost: boolean;
  destroy(): void;
  /** Dawn's instance in Node: referenced here so it outlives the device. */
  readonly instance: unknown;
}

/** Creates a device on the best adapter (or the one asked for). */
export async function createGpu(options: GpuOptions = {}): Promise<GpuContext> {
  const gpu = globalThis.navigator?.gpu;
  if (gpu && typeof process === 'undefined') {
    return createOnGpu(gpu, null, 'browser', options);
  }
  // Node: load Dawn and choose the Vulkan driver (kept out of browser bundles by the dynamic import)
  const nodeAdapter = await import(/* @vite-ignore */ './node-adapter.js');
  const { gpu: nodeGpu, instance, driver } = await nodeAdapter.nodeGpu(options.adapter);
  const ctx = await createOnGpu(nodeGpu, instance, driver, options);
  if (adapterClass(ctx) === 'llvmpipe') ctx.info.lavapipeThreads = nodeAdapter.lavapipeThreadsInUse();
  return ctx;
}

async function createOnGpu(gpu: GPU, instance: unknown, driver: AdapterChoice | 'browser', options: GpuOptions): Promise<GpuContext> {
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new DeviceError(
      driver === 'browser'
        ? 'no WebGPU adapter: enable WebGPU in this browser (Chrome/Edge 113+, or --enable-unsafe-webgpu) and serve the page from https or localhost'
        : `no WebGPU adapter (driver: ${driver}): run 'bash scripts/install-deps.sh' as root to install the software Vulkan drivers, or pass --adapter`,
      { reason: 'no-adapter' },
    );
  }
  const disabled = new Set(options.disableFeatures ?? []);
  const features = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f) && !disabled.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMITS_WE_USE) {
    const value = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof value === 'number') requiredLimits[name] = value;
  }
  for (const [name, value] of Object.entries(options.requiredLimits ?? {})) {
    const have = (adapter.limits as unknown as Record<string, number>)[name];
    const isMin = name.startsWith('min');
    if (have === undefined || (isMin ? value < have : value > have)) {
      throw new DeviceError(`the adapter cannot provide ${name} = ${value} (it offers ${have ?? 'none'})`, { limit: name, value: have, required: value });
    }
    requiredLimits[name] = value;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: features as GPUFeatureName[], requiredLimits, label: 'webmoe' });
  } catch (err) {
    throw new DeviceError(`requestDevice failed: ${(err as Error).message}`, { reason: 'request-device' });
  }
  const limits = {} as Record<LimitName, number>;
  for (const name of LIMITS_WE_USE) limits[name] = (device.limits as unknown as Record<string, number>)[name] ?? 0;
  if (options.maxBindingSizeCap !== undefined) {
    limits.maxStorageBufferBindingSize = Math.min(limits.maxStorageBufferBindingSize, options.maxBindingSizeCap);
  }
  return wrapDevice(device, adapter, instance, describeAdapter(adapter, driver), new Set(features), limits);
}

function wrapDevice(
  device: GPUDevice,
  adapter: GPUAdapter,
  instance: unknown,
  info: AdapterDescription,
  features: ReadonlySet<OptionalFeature>,
  limits: Record<LimitName, number>,
): GpuContext {
  let failure: DeviceError | null = null;
  let lost = false;
  let destroyed = false;
  device.lost.then((l) => {
    lost = true;
    if (!destroyed) failure ??= new DeviceError(`GPU device lost (${l.reason}): ${l.message || 'no message'}`, { reason: 'lost' });
  });
  device.addEventListener('uncapturederror', (ev) => {
    const e = (ev as GPUUncapturedErrorEvent).error;
    failure ??= new DeviceError(`WebGPU ${e.constructor?.name ?? 'error'}: ${e.message}`, { reason: 'uncaptured' });
  });
  return {
    device,
    adapter,
    info,
    features,
    limits,
    instance,
    get lost() {
      return lost || destroyed;
    },
    check() {
      if (failure) throw failure;
      if (destroyed) throw new DeviceError('the GPU device was destroyed', { reason: 'destroyed' });
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      device.destroy();
    },
  };
}

function describeAdapter(adapter: GPUAdapter, driver: AdapterChoice | 'browser'): AdapterDescription {
  const i = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean; subgroupMinSize?: number; subgroupMaxSize?: number };
  const text = `${i.vendor} ${i.architecture} ${i.device} ${i.description}`.toLowerCase();
  const software = Boolean(i.isFallbackAdapter) || /llvmpipe|lavapipe|swiftshader|software|warp|basic render/.test(text);
  return {
    vendor: i.vendor,
    architecture: i.architecture,
    device: i.device,
    description: i.description,
    software,
    driver,
    subgroupMinSize: i.subgroupMinSize,
    subgroupMaxSize: i.subgroupMaxSize,
  };
}
