/**
 * The page's URL parameters, checked: `?model=URL&prompt-tokens=1,2,3&max-tokens=N&temperature=T...`. A value
 * that does not parse is an InputError naming the parameter (the page reports it in `data-error`), never a
 * silent default: `<input type=number>` turns "abc" into "", which is how bad values used to vanish.
 * No DOM here, so the rules are unit-tested in Node (test/web/params.test.ts).
 */
import { InputError } from '../src/errors.js';
import type { Backend, GenerateRequest, HttpTimeouts } from './protocol.js';

export interface UrlRun {
  model: string;
  backend?: Backend;
  ctxSize?: number;
  /** `gpu-memory`: the GPU memory budget in MiB (fractional allowed; expert offloading), absent or empty: no cap. */
  gpuMemoryMiB?: number;
  /** The prompt: token ids (`prompt-tokens`) or text (`prompt`). */
  prompt?: string | number[];
  request: Omit<GenerateRequest, 'prompt'>;
  http: HttpTimeouts;
  /** `warmup=1`: one untimed generation first (pipelines compile), then the measured one. */
  warmup: boolean;
  /** `step-stats=1`: `#result` also gets `steps`, the session's counters after every token (protocol.ts StepSnapshot); absent when off. */
  stepStats?: true;
}

type Kind = { int: true; min: number } | { int: false; min: number; max?: number; minExclusive?: boolean };

/** One numeric parameter, or undefined when absent (or empty). */
export function numberParam(q: URLSearchParams, key: string, kind: Kind, what = 'URL parameter'): number | undefined {
  const raw = q.get(key);
  if (raw === null || raw.trim() === '') return undefined;
  const n = Number(raw);
  const bad = (rule: string): never => {
    throw new InputError(`${what} ${key} must be ${rule}, got '${raw}'`, key);
  };
  if (kind.int) {
    if (!/^\s*-?\d+\s*$/.test(raw) || !Number.isSafeInteger(n) || n < kind.min) bad(`an integer >= ${kind.min}`);
    return n;
  }
  const range = kind.max !== undefined ? `in ${kind.minExclusive ? '(' : '['}${kind.min}, ${kind.max}]` : `${kind.minExclusive ? '>' : '>='} ${kind.min}`;
  if (!Number.isFinite(n) || (kind.minExclusive ? n <= kind.min : n < kind.min) || (kind.max !== undefined && n > kind.max)) bad(`a number ${range}`);
  return n;
}

/** `prompt-tokens=1,2,3`. */
export function tokenList(text: string, key = 'prompt-tokens'): number[] {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p) || !Number.isSafeInteger(Number(p)))) {
    throw new InputError(`${key} must be comma-separated token ids (e.g. 1,2,3), got '${text}'`, key);
  }
  return parts.map(Number);
}

/** Every parameter of a URL-driven run, checked. Throws InputError naming the first bad one (`what` it is). */
export function parseRunParams(q: URLSearchParams, what = 'URL parameter'): UrlRun {
  const model = q.get('model');
  if (!model) throw new InputError('URL parameter model (the checkpoint folder URL) is missing', 'model');
  const backend = q.get('backend');
  if (backend !== null && backend !== 'webgpu' && backend !== 'cpu') throw new InputError(`URL parameter backend must be webgpu or cpu, got '${backend}'`, 'backend');
  const tokens = q.get('prompt-tokens');
  const secs = (key: string): number | undefined => {
    const s = numberParam(q, key, { int: false, min: 0, minExclusive: true });
    return s === undefined ? undefined : s * 1000;
  };
  const flag = boolParam(q, 'ignore-eos');
  return {
    model,
    backend: backend ?? undefined,
    ctxSize: numberParam(q, 'ctx-size', { int: true, min: 1 }),
    gpuMemoryMiB: gpuMemoryParam(q),
    prompt: tokens !== null ? tokenList(tokens, 'URL parameter prompt-tokens') : (q.get('prompt') ?? undefined),
    request: {
      maxTokens: numberParam(q, 'max-tokens', { int: true, min: 0 }, what),
      temperature: numberParam(q, 'temperature', { int: false, min: 0 }, what),
      topK: numberParam(q, 'top-k', { int: true, min: 0 }, what),
      topP: numberParam(q, 'top-p', { int: false, min: 0, max: 1, minExclusive: true }, what),
      seed: numberParam(q, 'seed', { int: true, min: 0 }, what),
      ignoreEos: flag,
    },
    http: { connectTimeoutMs: secs('connect-timeout'), idleTimeoutMs: secs('idle-timeout') },
    warmup: boolParam(q, 'warmup'),
    ...(boolParam(q, 'step-stats') ? { stepStats: true as const } : {}),
  };
}

/** `gpu-memory=MIB`: a number of MiB > 0 (fractional allowed), or undefined when absent or empty (no cap). */
export function gpuMemoryParam(q: URLSearchParams, what = 'URL parameter'): number | undefined {
  return numberParam(q, 'gpu-memory', { int: false, min: 0, minExclusive: true }, what);
}

/** A flag: absent, empty, 0 or false is off; 1 or true is on; anything else an InputError naming it. */
function boolParam(q: URLSearchParams, key: string): boolean {
  const v = q.get(key);
  if (v !== null && !['', '0', '1', 'true', 'false'].includes(v)) throw new InputError(`URL parameter ${key} must be 1, 0, true or false, got '${v}'`, key);
  return v === '1' || v === 'true';
}
