/**
 * The host side of a kernel's contract, read from its WGSL: the bindings of group 0 (index, name, storage read /
 * read_write or uniform), the fields of the uniform Params struct (name and scalar type, in order) and the
 * override constants. Kernels.run binds arguments and packs parameters BY NAME through it, so a launcher can no
 * longer pass a positional array that disagrees with the shader: a missing, extra or mistyped field is a typed
 * error naming the kernel and the field, checked once per (pipeline, set of names) and not on every dispatch.
 *
 * Parsed from the expanded source (includes spliced) the registry compiles, so the contract and the code are the
 * same text; test/gpu/contract.gpu.test.ts checks every kernel's parsed layout against the bind-group layout the
 * device reflects for its pipeline.
 */
import { KernelContractError } from '../errors.js';

export type ScalarType = 'u32' | 'i32' | 'f32';

export interface BindingSpec {
  index: number;
  name: string;
  kind: 'read' | 'read_write' | 'uniform';
}

export interface ParamField {
  name: string;
  type: ScalarType;
}

export interface OverrideSpec {
  name: string;
  type: string;
}

export interface KernelContract {
  kernel: string;
  /** group 0, by binding index */
  bindings: BindingSpec[];
  /** the uniform binding's struct fields, in memory order; null when the kernel has no uniform */
  params: ParamField[] | null;
  /** name of the uniform binding (filled from `params`) */
  uniform: string | null;
  overrides: OverrideSpec[];
}

const BINDING = /@group\(\s*0\s*\)\s*@binding\(\s*(\d+)\s*\)\s*var(?:<\s*(storage|uniform)\s*(?:,\s*(read|read_write))?\s*>)?\s+([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([A-Za-z_][A-Za-z0-9_<>, ]*)\s*;/g;
const OVERRIDE = /^\s*override\s+([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([a-z0-9]+)/gm;

/** The contract of a kernel from its (expanded) WGSL source. */
export function parseContract(kernel: string, source: string): KernelContract {
  const code = source.replace(/\/\/[^\n]*/g, ''); // comments may mention bindings
  const bindings: BindingSpec[] = [];
  let uniform: { name: string; type: string } | null = null;
  for (const m of code.matchAll(BINDING)) {
    const [, index, space, access, name, type] = m;
    const kind = space === 'uniform' ? 'uniform' : access === 'read_write' ? 'read_write' : 'read';
    bindings.push({ index: Number(index), name: name!, kind });
    if (kind === 'uniform') {
      if (uniform) throw new KernelContractError(kernel, 'more than one uniform binding: the registry fills one Params struct');
      uniform = { name: name!, type: type!.trim() };
    }
  }
  bindings.sort((a, b) => a.index - b.index);
  bindings.forEach((b, i) => {
    if (b.index !== i) throw new KernelContractError(kernel, `bindings of group 0 must be 0..n-1 without gaps (found ${b.index} at position ${i})`);
  });
  const params = uniform ? structFields(kernel, code, uniform.type) : null;
  const overrides = [...code.matchAll(OVERRIDE)].map((m) => ({ name: m[1]!, type: m[2]! }));
  return { kernel, bindings, params, uniform: uniform?.name ?? null, overrides };
}

function structFields(kernel: string, code: string, type: string): ParamField[] {
  const m = new RegExp(`struct\\s+${type}\\s*\\{([^}]*)\\}`).exec(code);
  if (!m) throw new KernelContractError(kernel, `the uniform's struct '${type}' is not in the source`);
  return m[1]!
    .split(',')
    .map((f) => f.trim())
    .filter(Boolean)
    .map((f) => {
      const fm = /^([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(u32|i32|f32)$/.exec(f);
      if (!fm) throw new KernelContractError(kernel, `Params field '${f}' is not a u32, i32 or f32 scalar (the registry packs scalars only)`);
      return { name: fm[1]!, type: fm[2] as ScalarType };
    });
}

/** Param values by field name; fields whose name starts with '_' (padding) may be left out and are written 0. */
export type ParamValues = Readonly<Record<string, number>>;

/**
 * Checks that `bind` names exactly the non-uniform bindings and `params` exactly the Params fields (padding
 * optional), with values of their types: a KernelContractError naming the first problem.
 */
export function checkArguments(c: KernelContract, bind: Readonly<Record<string, unknown>>, params: ParamValues | undefined): void {
  const want = c.bindings.filter((b) => b.kind !== 'uniform').map((b) => b.name);
  for (const n of want) if (bind[n] === undefined) throw new KernelContractError(c.kernel, `binding '${n}' is missing (the kernel binds ${want.join(', ')})`, n);
  for (const n of Object.keys(bind)) if (!want.includes(n)) throw new KernelContractError(c.kernel, `'${n}' is not a binding of this kernel (it binds ${want.join(', ')})`, n);
  if (!c.params) {
    if (params && Object.keys(params).length) throw new KernelContractError(c.kernel, 'the kernel has no Params uniform, but params were given');
    return;
  }
  const p = params ?? {};
  for (const f of c.params) {
    const v = p[f.name];
    if (v === undefined) {
      if (f.name.startsWith('_')) continue;
      throw new KernelContractError(c.kernel, `param '${f.name}' (${f.type}) is missing`, f.name);
    }
    const ok = f.type === 'f32' ? Number.isFinite(v) : f.type === 'u32' ? Number.isInteger(v) && v >= 0 && v <= 0xffffffff : Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31;
    if (!ok) throw new KernelContractError(c.kernel, `param '${f.name}' is ${f.type}, got ${v}`, f.name);
  }
  const names = new Set(c.params.map((f) => f.name));
  for (const n of Object.keys(p)) if (!names.has(n)) throw new KernelContractError(c.kernel, `'${n}' is not a Params field (${[...names].join(', ')})`, n);
}

/** Writes `params` into `view` in the struct's order (u32 / i32 / f32, little-endian; padding 0). */
export function packParams(fields: readonly ParamField[], params: ParamValues, view: DataView, offset = 0): void {
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    const v = params[f.name] ?? 0;
    if (f.type === 'f32') view.setFloat32(offset + i * 4, v, true);
    else if (f.type === 'i32') view.setInt32(offset + i * 4, v, true);
    else view.setUint32(offset + i * 4, v >>> 0, true);
  }
}
