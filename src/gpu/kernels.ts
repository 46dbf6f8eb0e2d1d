/**
 * The kernel registry: the single door to the GPU for compute work. Kernel name = WGSL file stem in shaders/.
 * Pipelines are created once per (name, override constants) and cached; every pipeline, bind group and shader
 * module carries the kernel's name as its label, so validation errors and profiles name the kernel.
 * Variants that need `shader-f16` or `subgroups` (declared by `enable` directives in the file) are only
 * available when the device has the feature.
 */
import { DeviceError, WebmoeError } from '../errors.js';
import type { GpuContext, OptionalFeature } from './device.js';
import { SHADERS } from './shaders.gen.js';
import { createBuffer, type UniformArena } from './buffers.js';
import { checkArguments, packParams, parseContract, type KernelContract, type ParamValues } from './contract.js';

export type OverrideConstants = Record<string, number>;

/** A dispatch whose bind group and Params are built once (Kernels.prepare). */
export interface PreparedDispatch {
  encode(pass: GPUComputePassEncoder): void;
  /** frees its Params buffer */
  destroy(): void;
}

/** The arguments of one dispatch by name (Kernels.run). */
export interface RunArgs {
  constants?: OverrideConstants;
  /** every binding of group 0 but the uniform, by its WGSL name */
  bind: Readonly<Record<string, GPUBuffer | GPUBufferBinding>>;
  /** the Params struct's fields by name ('_' padding may be left out) */
  params?: ParamValues;
  /** workgroups per dimension, or an indirect-arguments buffer and byte offset */
  grid: readonly [number, number?, number?] | { indirect: GPUBuffer; offset?: number };
}

/** Features a WGSL source needs, from its `enable` directives. */
export function requiredFeatures(source: string): OptionalFeature[] {
  const out: OptionalFeature[] = [];
  if (/^\s*enable\s+[^;]*\bf16\b/m.test(source)) out.push('shader-f16');
  if (/^\s*enable\s+[^;]*\bsubgroups\b/m.test(source)) out.push('subgroups');
  return out;
}

/**
 * Kernels outside the library bundle (the naive reference twins and the bench kernels: shaders/reference/,
 * shaders/bench/), registered by importing src/gpu/shaders-extra.gen.ts (tests and `webmoe bench` do).
 */
const extra: Record<string, string> = {};

export function registerShaders(sources: Readonly<Record<string, string>>): void {
  for (const [name, src] of Object.entries(sources)) {
    if (SHADERS[name] !== undefined && SHADERS[name] !== src) throw new WebmoeError('KERNEL', `kernel '${name}' is registered twice`);
    extra[name] = src;
  }
}

function sourceOf(name: string): string | undefined {
  return SHADERS[name] ?? extra[name];
}

/** Every kernel: the library's and those registered (registerShaders). */
export function kernelNames(): string[] {
  return [...new Set([...Object.keys(SHADERS), ...Object.keys(extra)])].sort();
}

/** Bind groups kept per registry before the cache is emptied (bounds memory when callers bind fresh buffers). */
const BIND_GROUP_CACHE_MAX = 8192;

export class Kernels {
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** the same pipelines keyed by the constants in the caller's order (no sort per dispatch) */
  private readonly pipelinesByCall = new Map<string, GPUComputePipeline>();
  // Bind groups are immutable, so one (pipeline, resources) pair can be reused across steps: an engine step
  // rebinds the same weights, activations and uniform-arena slots every time, and createBindGroup was ~85% of
  // the JS cost of recording a decode step (measured: 2.2 ms -> 0.33 ms for 55 dispatches on lavapipe).
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly ids = new WeakMap<object, number>();
  private readonly contracts = new Map<string, KernelContract>();
  /** per pipeline: the binding and Params names (in order) already checked against the contract */
  private readonly checked = new Map<GPUComputePipeline, Array<{ bind: string[]; params: string[] }>>();
  private nextId = 1;

  constructor(readonly gpu: GpuContext) {}

  /** Compute pipelines created so far. */
  get pipelineCount(): number {
    return this.pipelines.size;
  }

  /** True when the kernel exists and the device has every feature it enables. */
  available(name: string): boolean {
    const src = sourceOf(name);
    return src !== undefined && requiredFeatures(src).every((f) => this.gpu.features.has(f));
  }

  source(name: string): string {
    const src = sourceOf(name);
    if (src === undefined) {
      throw new WebmoeError('KERNEL', `unknown kernel '${name}' (no shaders/${name}.wgsl; reference and bench kernels need src/gpu/shaders-extra.gen.js imported)`);
    }
    return src;
  }

  module(name: string): GPUShaderModule {
    let m = this.modules.get(name);
    if (!m) {
      const missing = requiredFeatures(this.source(name)).filter((f) => !this.gpu.features.has(f));
      if (missing.length) throw new DeviceError(`kernel '${name}' needs ${missing.join(', ')}, which this device lacks`, { reason: 'feature' });
      m = this.gpu.device.createShaderModule({ code: this.source(name), label: name });
      this.modules.set(name, m);
    }
    return m;
  }

  /** The cached compute pipeline for a kernel and its override constants (workgroup sizes, tiles). */
  pipeline(name: string, constants: OverrideConstants = {}, entryPoint = 'main'): GPUComputePipeline {
    // (built by hand: this runs for every dispatch of every step; the constants in the caller's order first, the
    // sorted key only on a miss, so one pipeline serves every order)
    let key = `${name}|${entryPoint}`;
    for (const c in constants) key += `|${c}=${constants[c]}`;
    let p = this.pipelinesByCall.get(key);
    if (p) return p;
    let sorted = `${name}|${entryPoint}`;
    for (const c of Object.keys(constants).sort()) sorted += `|${c}=${constants[c]}`;
    p = this.pipelines.get(sorted);
    if (!p) {
      p = this.gpu.device.createComputePipeline({
        label: name,
        layout: 'auto',
        compute: { module: this.module(name), entryPoint, constants },
      });
      this.pipelines.set(sorted, p);
    }
    this.pipelinesByCall.set(key, p);
    return p;
  }

  /** A bind group for group 0 with `resources[i]` at binding i (cached per pipeline and resources). */
  bindGroup(pipeline: GPUComputePipeline, resources: Array<GPUBuffer | GPUBufferBinding>, group = 0): GPUBindGroup {
    let key = `${this.idOf(pipeline)}:${group}`;
    for (const r of resources) key += 'buffer' in r ? `|${this.idOf(r.buffer)}@${r.offset ?? 0}+${r.size ?? -1}` : `|${this.idOf(r)}`;
    let bg = this.bindGroups.get(key);
    if (!bg) {
      bg = this.gpu.device.createBindGroup({
        label: pipeline.label,
        layout: pipeline.getBindGroupLayout(group),
        entries: resources.map((r, i) => ({ binding: i, resource: 'buffer' in r ? r : { buffer: r } })),
      });
      if (this.bindGroups.size >= BIND_GROUP_CACHE_MAX) this.bindGroups.clear();
      this.bindGroups.set(key, bg);
    }
    return bg;
  }

  private idOf(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(o, id);
    }
    return id;
  }

  /** Records one dispatch in an open compute pass. */
  dispatch(pass: GPUComputePassEncoder, pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, x: number, y = 1, z = 1): void {
    const max = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new DeviceError(`kernel '${pipeline.label}': dispatch ${x}x${y}x${z} exceeds maxComputeWorkgroupsPerDimension ${max}`, {
        limit: 'maxComputeWorkgroupsPerDimension',
        value: max,
        required: Math.max(x, y, z),
      });
    }
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
  }

  /** The host side of a kernel's contract, parsed from its WGSL once (contract.ts). */
  contract(name: string): KernelContract {
    let c = this.contracts.get(name);
    if (!c) {
      c = parseContract(name, this.source(name));
      this.contracts.set(name, c);
    }
    return c;
  }

  /**
   * Records one dispatch of kernel `name` with its bindings and Params BY NAME (the one door for launchers): the
   * names and types are checked against the WGSL once per pipeline and set of names (KernelContractError), the
   * Params are packed into `arena` in the struct's order, and the grid is direct (`[x, y, z]`) or indirect.
   */
  run(pass: GPUComputePassEncoder, arena: UniformArena, name: string, a: RunArgs): void {
    // (the per-dispatch path of every step: it builds the bind group's cache key directly and packs the Params
    // into the arena's mirror in place, allocating only the key string; measured in docs/benchmarks.md "Pipelined
    // batched steps")
    const pipe = this.pipeline(name, a.constants);
    const c = this.contract(name);
    this.checkOnce(pipe, c, a);
    let uOffset = 0;
    let uSize = 0;
    if (c.params) {
      uSize = Math.ceil(c.params.length / 4) * 16;
      uOffset = arena.slot(uSize);
      packParams(c.params, a.params ?? {}, arena.view, uOffset);
    }
    let key = `${this.idOf(pipe)}:0`; // bindGroup()'s key for the same resources
    for (const b of c.bindings) {
      if (b.kind === 'uniform') {
        key += `|${this.idOf(arena.buffer)}@${uOffset}+${uSize}`;
      } else {
        const r = a.bind[b.name]!;
        key += 'buffer' in r ? `|${this.idOf(r.buffer)}@${r.offset ?? 0}+${r.size ?? -1}` : `|${this.idOf(r)}`;
      }
    }
    let bg = this.bindGroups.get(key);
    if (!bg) {
      const uniform: GPUBufferBinding = { buffer: arena.buffer, offset: uOffset, size: uSize };
      bg = this.bindGroup(pipe, c.bindings.map((b) => (b.kind === 'uniform' ? uniform : a.bind[b.name]!)));
    }
    this.encodeGrid(pass, pipe, bg, a.grid);
  }

  /** The contract check of run(), once per pipeline and set of binding and Params names (in their order). */
  private checkOnce(pipe: GPUComputePipeline, c: KernelContract, a: RunArgs): void {
    const seen = this.checked.get(pipe);
    if (seen?.some((names) => sameNames(names.bind, a.bind) && sameNames(names.params, a.params))) return;
    checkArguments(c, a.bind, a.params);
    const names = { bind: Object.keys(a.bind), params: a.params ? Object.keys(a.params) : [] };
    if (seen) seen.push(names);
    else this.checked.set(pipe, [names]);
  }

  /**
   * A dispatch prepared once and encoded many times (benchmarks' timing loops, the doctor's check): the same
   * contract checks as run(), with the Params packed into a uniform buffer of its own (destroy() frees it).
   */
  prepare(name: string, a: RunArgs): PreparedDispatch {
    const pipe = this.pipeline(name, a.constants);
    const c = this.contract(name);
    checkArguments(c, a.bind, a.params);
    let uniform: GPUBuffer | undefined;
    if (c.params) {
      const fields = c.params;
      const bytes = new ArrayBuffer(Math.ceil(fields.length / 4) * 16);
      packParams(fields, a.params ?? {}, new DataView(bytes));
      uniform = createBuffer(this.gpu, bytes.byteLength, `${name} params`, 0x0040 | 0x0008); // UNIFORM | COPY_DST
      this.gpu.device.queue.writeBuffer(uniform, 0, bytes);
    }
    const bg = this.gpu.device.createBindGroup({
      label: name,
      layout: pipe.getBindGroupLayout(0),
      entries: c.bindings.map((b) => {
        const r = b.kind === 'uniform' ? uniform! : a.bind[b.name]!;
        return { binding: b.index, resource: 'buffer' in r ? r : { buffer: r } };
      }),
    });
    return {
      encode: (pass) => this.encodeGrid(pass, pipe, bg, a.grid),
      destroy: () => uniform?.destroy(),
    };
  }

  private encodeGrid(pass: GPUComputePassEncoder, pipe: GPUComputePipeline, bg: GPUBindGroup, grid: RunArgs['grid']): void {
    if ('indirect' in grid) {
      pass.setPipeline(pipe);
      pass.setBindGroup(0, bg);
      pass.dispatchWorkgroupsIndirect(grid.indirect, grid.offset ?? 0);
    } else {
      const [x, y = 1, z = 1] = grid;
      this.dispatch(pass, pipe, bg, x, y, z);
    }
  }

  /** Compiles a kernel and returns every compilation message (errors and warnings). */
  async compileMessages(name: string): Promise<GPUCompilationMessage[]> {
    const m = this.gpu.device.createShaderModule({ code: this.source(name), label: name });
    const info = await m.getCompilationInfo();
    return [...info.messages];
  }
}

/** Whether `obj`'s own keys are exactly `names`, in order (no allocation: run() calls it per dispatch). */
function sameNames(names: readonly string[], obj: object | undefined): boolean {
  if (!obj) return names.length === 0;
  let i = 0;
  for (const k in obj) {
    if (names[i] !== k) return false;
    i++;
  }
  return i === names.length;
}
