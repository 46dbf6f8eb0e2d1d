/**
 * The JSON that `webmoe bench` writes (Node) and the browser Bench page produces: one schema for both,
 * documented in docs/benchmarks.md, checked by `validateReport` (the CLI validates before writing; tests
 * validate real and synthetic reports). Fractions are clamped to [0, 1]; the unclamped ratios are kept in the
 * `raw_*` fields (a small kernel whose data sits in a CPU cache can beat the DRAM streaming ceiling).
 */
import type { MoeTelemetry } from '../src/engine/telemetry.js';
import type { KernelTime } from './profile.js';
import type { Ceilings } from './ceilings.js';
import type { KernelPlan } from '../src/gpu/plan.js';

export type { LayerLoad, MoeTelemetry } from '../src/engine/telemetry.js';

export const SCHEMA_ID = 'webmoe-bench/1';

export interface AdapterRecord {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  software: boolean;
  driver: string;
  features: string[];
  limits: Record<string, number>;
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  /** 'node' (Dawn via the webgpu package) or 'browser' */
  runtime: 'node' | 'browser';
  userAgent?: string;
}

/** A benchmark target (docs/benchmarks.md "Targets"), printed next to its figure and never asserted. */
export interface TargetCheck {
  id: string;
  description: string;
  value: number;
  threshold: number;
  met: boolean;
  /** What keeps it from being met (only when not met). */
  limited_by?: string;
}

export interface KernelRow {
  /** Kernel family: fp8_gemv, fp8_gemm, mla_decode, moe_router, moe_experts, ... */
  kernel: string;
  variant: 'naive' | 'optimised';
  /** The WGSL files (and entry points) that ran. */
  impl: string;
  /** A short human name of the shape, e.g. "kimi expert gate/up 7168->2048". */
  shape: string;
  dims: Record<string, number>;
  /** Compulsory bytes moved per call (weights + scales + inputs + outputs; scratch not counted). */
  bytes: number;
  /** Useful FLOP per call (2 per multiply-add; dequantisation and softmax not counted). */
  flops: number;
  /** Median time per call (ms) by `method`. */
  time_ms: number;
  min_ms: number;
  max_ms: number;
  /** Median wall time per call, submit to onSubmittedWorkDone (includes host overhead). */
  wall_ms: number;
  gbps: number;
  gflops: number;
  /** gbps / ceilings.bandwidth_gbps, clamped to [0, 1] */
  fraction_of_bandwidth: number;
  /** gflops / ceilings.fma_gflops, clamped to [0, 1] */
  fraction_of_fma: number;
  raw_fraction_of_bandwidth: number;
  raw_fraction_of_fma: number;
  /** How the time was measured, in words. */
  method: string;
  timer: 'timestamp' | 'wall';
  /** Calls per timed pass. */
  inner: number;
  samples: number;
  resolution_ns?: number;
  /** The variant the engine runs on this device (optimised rows). */
  engine_default?: boolean;
  /** Optimised rows: naive time / optimised time for the same shape, when both ran. */
  speedup_vs_naive?: number;
  /** The weight format the row's kernel reads, when the shape is run in several formats. */
  weight_format?: 'fp8' | 'int4';
  /** gbps / the format's decode ceiling (ceilings.fp8_decode_gbps or int4_decode_gbps), not clamped. */
  fraction_of_decode_ceiling?: number;
  targets?: TargetCheck[];
}

export interface StepBytes {
  /** Routed experts selected for the token + shared experts + dense MLP layers (FP8 codes + scales). */
  experts: number;
  /** q_a, q_b (or q), kv_a, kv_b, o_proj + the norms (FP8 codes + scales, f32 norms). */
  attention: number;
  /** The latent cache rows attended, all layers. */
  kv_cache: number;
  /** Router gates (BF16), embedding row, final norm, lm_head (BF16). */
  other: number;
  total: number;
}

export interface LayerDispatches {
  layer: number;
  kind: 'dense' | 'moe';
  /** MoE layers: shards the routed experts were split into to fit the binding limit (0 under expert offloading). */
  shards?: number;
  dispatches: number;
}

export interface E2eRow {
  model: string;
  /** 'webgpu' or 'cpu-reference' (the plain-TypeScript forward pass, the baseline). */
  backend: string;
  prompt_tokens: number;
  decode_tokens: number;
  ttft_ms: number;
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number;
  /** Median time of one decode step (ms). */
  decode_step_ms: number;
  /**
   * Decode tokens/s through generate() (greedy, the same number of tokens after the same prompt): pipelined steps
   * where the session offers them (decodeNext: the next step submitted before this one is read back), one step at a
   * time otherwise. What a user of generate() gets; decode_tokens_per_s times each step alone.
   */
  generate_decode_tokens_per_s?: number;
  /** generate()'s tokens equal the timed steps' tokens (greedy both) */
  generate_same_tokens?: boolean;
  step_bytes: StepBytes;
  /** step_bytes.total / ceilings.bandwidth_gbps, ms */
  roofline_ms: number;
  /** roofline_ms / decode_step_ms, clamped to [0, 1] */
  fraction_of_roofline: number;
  raw_fraction_of_roofline: number;
  /** Queue submissions per decode step (webgpu only; the target is 1). */
  submissions_per_decode_step?: number;
  /** Compute dispatches recorded per decode step (webgpu only). */
  dispatches_per_decode_step?: number;
  /**
   * The decode step's dispatches per layer, counted between the engine's layer markers (engine/forward.ts
   * layerMarker; webgpu only): a MoE layer's routed-expert shard count comes with it.
   */
  dispatches_per_layer?: LayerDispatches[];
  /** The step's dispatches before the first layer and from the head on (embedding, final norm, lm_head, sampling). */
  dispatches_outside_layers?: number;
  /** dispatches × ceilings.dispatch_us + submissions × ceilings.submit_ms: the step's cost before any byte moves. */
  fixed_cost_ms?: number;
  /** One decode step's dispatches replayed alone: isolated GPU time and share per kernel, largest first (bench/profile.ts). */
  profile?: KernelTime[];
  /**
   * GPU time of one decode step: the span of timestamps added to the step's own passes (or, without
   * timestamp-query, its dispatches replayed as one sequence): median of 5 recorded steps.
   * decode_step_ms - kernel_ms is the host side (encoding, submit, readback, JS).
   */
  kernel_ms?: number;
  method: string;
  targets?: TargetCheck[];
}

export interface BenchReport {
  schema: typeof SCHEMA_ID;
  created: string;
  adapter: AdapterRecord;
  /** the kernel plan of this device (src/gpu/plan.ts; no model shapes: the toy-width choices) */
  plan?: KernelPlan;
  ceilings: Ceilings;
  kernels: KernelRow[];
  e2e: E2eRow[];
  telemetry: MoeTelemetry[];
  /** Every target checked in this run (also attached to their rows). */
  targets: TargetCheck[];
  skipped: Array<{ kernel: string; shape: string; variant?: string; reason: string }>;
  settings: { suite: string; full: boolean; repeats: number; target_pass_ms: number; timer: string };
  duration_s: number;
}

/** A readable adapter name: browsers often leave `description` and `device` empty. */
export function adapterName(a: Pick<AdapterRecord, 'description' | 'device' | 'vendor' | 'architecture'>): string {
  return a.description || a.device || [a.vendor, a.architecture].filter(Boolean).join(' ') || 'unknown adapter';
}

// ------------------------------------------------------------------------------------------------------------
// Validation: a list of problems, empty when the report is well-formed.

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(errors: string[], o: Json, key: string, where: string, opts: { min?: number; max?: number; optional?: boolean } = {}): void {
  const v = o[key];
  if (v === undefined && opts.optional) return;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    errors.push(`${where}.${key}: expected a finite number, got ${JSON.stringify(v)}`);
    return;
  }
  if (opts.min !== undefined && v < opts.min) errors.push(`${where}.${key}: ${v} < ${opts.min}`);
  if (opts.max !== undefined && v > opts.max) errors.push(`${where}.${key}: ${v} > ${opts.max}`);
}

function str(errors: string[], o: Json, key: string, where: string, optional = false): void {
  const v = o[key];
  if (v === undefined && optional) return;
  if (typeof v !== 'string' || (!optional && v.length === 0)) errors.push(`${where}.${key}: expected a non-empty string, got ${JSON.stringify(v)}`);
}

function arr(errors: string[], o: Json, key: string, where: string): unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) {
    errors.push(`${where}.${key}: expected an array`);
    return [];
  }
  return v;
}

function targets(errors: string[], list: unknown, where: string): void {
  if (list === undefined) return;
  if (!Array.isArray(list)) {
    errors.push(`${where}: expected an array of targets`);
    return;
  }
  list.forEach((t, i) => {
    const w = `${where}[${i}]`;
    if (!isObj(t)) return void errors.push(`${w}: expected an object`);
    str(errors, t, 'id', w);
    str(errors, t, 'description', w);
    num(errors, t, 'threshold', w);
    if (typeof t.value !== 'number' || Number.isNaN(t.value)) errors.push(`${w}.value: expected a number`);
    if (typeof t.met !== 'boolean') errors.push(`${w}.met: expected a boolean`);
    if (t.met === false && typeof t.limited_by !== 'string') errors.push(`${w}.limited_by: an unmet target must say what limits it`);
  });
}

export function validateKernelRow(errors: string[], r: unknown, where: string): void {
  if (!isObj(r)) return void errors.push(`${where}: expected an object`);
  for (const k of ['kernel', 'impl', 'shape', 'method']) str(errors, r, k, where);
  if (r.variant !== 'naive' && r.variant !== 'optimised') errors.push(`${where}.variant: expected 'naive' or 'optimised'`);
  if (r.timer !== 'timestamp' && r.timer !== 'wall') errors.push(`${where}.timer: expected 'timestamp' or 'wall'`);
  for (const k of ['bytes', 'flops']) num(errors, r, k, where, { min: 0 });
  for (const k of ['time_ms', 'min_ms', 'max_ms', 'wall_ms']) num(errors, r, k, where, { min: 0 });
  if (typeof r.time_ms === 'number' && r.time_ms <= 0) errors.push(`${where}.time_ms: must be > 0`);
  for (const k of ['gbps', 'gflops', 'raw_fraction_of_bandwidth', 'raw_fraction_of_fma']) num(errors, r, k, where, { min: 0 });
  for (const k of ['fraction_of_bandwidth', 'fraction_of_fma']) num(errors, r, k, where, { min: 0, max: 1 });
  num(errors, r, 'inner', where, { min: 1 });
  num(errors, r, 'samples', where, { min: 1 });
  num(errors, r, 'speedup_vs_naive', where, { min: 0, optional: true });
  num(errors, r, 'fraction_of_decode_ceiling', where, { min: 0, optional: true });
  if (r.weight_format !== undefined && r.weight_format !== 'fp8' && r.weight_format !== 'int4') errors.push(`${where}.weight_format: expected 'fp8' or 'int4'`);
  if (!isObj(r.dims)) errors.push(`${where}.dims: expected an object of numbers`);
  targets(errors, r.targets, `${where}.targets`);
}

function validateE2e(errors: string[], r: unknown, where: string): void {
  if (!isObj(r)) return void errors.push(`${where}: expected an object`);
  str(errors, r, 'model', where);
  str(errors, r, 'backend', where);
  str(errors, r, 'method', where);
  for (const k of ['prompt_tokens', 'decode_tokens']) num(errors, r, k, where, { min: 0 });
  for (const k of ['ttft_ms', 'prefill_tokens_per_s', 'decode_tokens_per_s', 'decode_step_ms', 'roofline_ms', 'raw_fraction_of_roofline']) num(errors, r, k, where, { min: 0 });
  num(errors, r, 'fraction_of_roofline', where, { min: 0, max: 1 });
  num(errors, r, 'submissions_per_decode_step', where, { min: 0, optional: true });
  num(errors, r, 'dispatches_per_decode_step', where, { min: 0, optional: true });
  num(errors, r, 'fixed_cost_ms', where, { min: 0, optional: true });
  num(errors, r, 'kernel_ms', where, { min: 0, optional: true });
  if (r.profile !== undefined) {
    if (!Array.isArray(r.profile)) errors.push(`${where}.profile: expected an array`);
    else r.profile.forEach((k, i) => {
      if (!isObj(k)) return void errors.push(`${where}.profile[${i}]: expected an object`);
      str(errors, k, 'kernel', `${where}.profile[${i}]`);
      num(errors, k, 'dispatches', `${where}.profile[${i}]`, { min: 1 });
      num(errors, k, 'ms', `${where}.profile[${i}]`, { min: 0 });
      num(errors, k, 'share', `${where}.profile[${i}]`, { min: 0, max: 1 });
    });
  }
  if (!isObj(r.step_bytes)) errors.push(`${where}.step_bytes: expected an object`);
  else for (const k of ['experts', 'attention', 'kv_cache', 'other', 'total']) num(errors, r.step_bytes, k, `${where}.step_bytes`, { min: 0 });
  targets(errors, r.targets, `${where}.targets`);
}

function validateTelemetry(errors: string[], t: unknown, where: string): void {
  if (!isObj(t)) return void errors.push(`${where}: expected an object`);
  str(errors, t, 'model', where);
  str(errors, t, 'source', where);
  num(errors, t, 'experts', where, { min: 1 });
  num(errors, t, 'topk', where, { min: 1 });
  num(errors, t, 'tokens', where, { min: 0 });
  arr(errors, t, 'layers', where).forEach((l, i) => {
    const w = `${where}.layers[${i}]`;
    if (!isObj(l)) return void errors.push(`${w}: expected an object`);
    num(errors, l, 'layer', w, { min: 0 });
    num(errors, l, 'tokens', w, { min: 0 });
    for (const k of ['max_over_mean', 'cv', 'unused']) num(errors, l, k, w, { min: 0 });
    num(errors, l, 'normalized_entropy', w, { min: 0, max: 1 });
    const counts = Array.isArray(l.counts) ? l.counts : [];
    const share = Array.isArray(l.share) ? l.share : [];
    if (counts.length !== t.experts || share.length !== t.experts) errors.push(`${w}: counts and share need one entry per expert (${String(t.experts)})`);
    if (counts.some((c) => typeof c !== 'number' || c < 0 || !Number.isInteger(c))) errors.push(`${w}.counts: expected non-negative integers`);
    const sum = share.reduce((a: number, s) => a + (typeof s === 'number' ? s : NaN), 0);
    if (counts.some((c) => c > 0) && !(Math.abs(sum - 1) < 1e-6)) errors.push(`${w}.share: sums to ${sum}, expected 1`);
  });
}

/** Problems with a report (empty when it matches the schema). */
export function validateReport(report: unknown): string[] {
  const errors: string[] = [];
  if (!isObj(report)) return ['report: expected a JSON object'];
  if (report.schema !== SCHEMA_ID) errors.push(`schema: expected '${SCHEMA_ID}'`);
  str(errors, report, 'created', 'report');
  const a = report.adapter;
  if (!isObj(a)) errors.push('adapter: expected an object');
  else {
    for (const k of ['vendor', 'architecture', 'device', 'description']) if (typeof a[k] !== 'string') errors.push(`adapter.${k}: expected a string`);
    if (typeof a.software !== 'boolean') errors.push('adapter.software: expected a boolean');
    if (!Array.isArray(a.features)) errors.push('adapter.features: expected an array');
    if (!isObj(a.limits)) errors.push('adapter.limits: expected an object');
    if (a.runtime !== 'node' && a.runtime !== 'browser') errors.push("adapter.runtime: expected 'node' or 'browser'");
  }
  const c = report.ceilings;
  if (!isObj(c)) errors.push('ceilings: expected an object');
  else {
    num(errors, c, 'bandwidth_gbps', 'ceilings', { min: 0 });
    num(errors, c, 'fma_gflops', 'ceilings', { min: 0 });
    num(errors, c, 'fp8_decode_gbps', 'ceilings', { min: 0, optional: true });
    num(errors, c, 'int4_decode_gbps', 'ceilings', { min: 0, optional: true });
    num(errors, c, 'dispatch_us', 'ceilings', { min: 0, optional: true });
    num(errors, c, 'submit_ms', 'ceilings', { min: 0, optional: true });
    if (!((c.bandwidth_gbps as number) > 0) || !((c.fma_gflops as number) > 0)) errors.push('ceilings: both must be > 0');
  }
  arr(errors, report, 'kernels', 'report').forEach((r, i) => validateKernelRow(errors, r, `kernels[${i}]`));
  arr(errors, report, 'e2e', 'report').forEach((r, i) => validateE2e(errors, r, `e2e[${i}]`));
  arr(errors, report, 'telemetry', 'report').forEach((t, i) => validateTelemetry(errors, t, `telemetry[${i}]`));
  targets(errors, report.targets, 'targets');
  arr(errors, report, 'skipped', 'report');
  if (!isObj(report.settings)) errors.push('settings: expected an object');
  num(errors, report, 'duration_s', 'report', { min: 0 });
  return errors;
}

/** Clamps a ratio into [0, 1] (NaN → 0). */
export function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : x === Infinity ? 1 : 0;
}
