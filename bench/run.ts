/**
 * One bench run → one BenchReport (bench/schema.ts): the kernel suite, the end-to-end suite, or both. Shared by
 * `webmoe bench` (src/cli/bench.ts) and the browser Bench page (web/bench.ts); the callers open checkpoints
 * and provide session factories, so this file has no Node imports.
 */
import type { GpuContext } from '../src/gpu/device.js';
import { Kernels } from '../src/gpu/kernels.js';
import type { Checkpoint } from '../src/model/checkpoint.js';
import type { InferenceSession } from '../src/engine/types.js';
import { ExpertLoadRecorder, type MoeTelemetry } from '../src/engine/telemetry.js';
import { measureCeilings, type Ceilings } from './ceilings.js';
import { DEFAULT_E2E, benchPrompt, e2eRow, timeSession, type E2eOptions } from './e2e.js';
import { DEFAULT_TIMING } from './harness.js';
import { adapterRecord, runKernelBench, type KernelBenchOptions } from './kernels.js';
import { SCHEMA_ID, type BenchReport, type E2eRow } from './schema.js';
import { e2eTargets } from './targets.js';
import { planKernels } from '../src/gpu/plan.js';

export type Suite = 'kernels' | 'e2e' | 'all';

export interface E2eModel {
  name: string;
  ckpt: Checkpoint;
}

/** Makes an InferenceSession for one checkpoint on one backend. */
export interface SessionFactory {
  /** 'webgpu' or 'cpu-reference' */
  backend: string;
  create(ckpt: Checkpoint): Promise<InferenceSession>;
  /** The device the sessions run on (submissions are counted on it). */
  gpu?: GpuContext;
  /** Routing decisions of the session's engine for `tokens` (prompt + generated), for MoE telemetry. */
  telemetry?(ckpt: Checkpoint, session: InferenceSession, tokens: number[], recorder: ExpertLoadRecorder): Promise<void>;
}

export interface RunOptions extends KernelBenchOptions {
  suite: Suite;
  runtime: 'node' | 'browser';
  models?: E2eModel[];
  backends?: SessionFactory[];
  e2e?: Partial<E2eOptions>;
  /** Progress of the e2e suite (done of total, label). */
  onE2eProgress?: (done: number, total: number, label: string) => void;
}

export async function runBench(gpu: GpuContext, opts: RunOptions): Promise<BenchReport> {
  const t0 = performance.now();
  const created = new Date().toISOString();
  let ceilings: Ceilings;
  let kernelPart: Pick<BenchReport, 'kernels' | 'skipped' | 'targets'> = { kernels: [], skipped: [], targets: [] };
  if (opts.suite !== 'e2e') {
    const k = await runKernelBench(gpu, opts);
    ceilings = k.ceilings;
    kernelPart = { kernels: k.kernels, skipped: k.skipped, targets: k.targets };
  } else {
    opts.onProgress?.(0, 1, 'ceilings: streaming read and FMA');
    ceilings = await measureCeilings(gpu, new Kernels(gpu), { timing: { method: opts.timing?.method ?? 'auto' }, streamBytes: opts.streamBytes });
    opts.onProgress?.(1, 1, 'done');
  }
  const report: BenchReport = {
    schema: SCHEMA_ID,
    created,
    adapter: adapterRecord(gpu, opts.runtime),
    plan: planKernels(new Kernels(gpu)),
    ceilings,
    kernels: kernelPart.kernels,
    e2e: [],
    telemetry: [],
    targets: kernelPart.targets,
    skipped: kernelPart.skipped,
    settings: {
      suite: opts.suite,
      full: Boolean(opts.full),
      repeats: opts.timing?.repeats ?? DEFAULT_TIMING.repeats,
      target_pass_ms: opts.timing?.targetPassMs ?? DEFAULT_TIMING.targetPassMs,
      timer: gpu.features.has('timestamp-query') && opts.timing?.method !== 'wall' ? 'timestamp-query' : 'wall-clock',
    },
    duration_s: 0,
  };
  if (opts.suite !== 'kernels') {
    const { rows, telemetry, skipped } = await runE2e(opts.models ?? [], opts.backends ?? [], ceilings, opts);
    report.e2e = rows;
    report.telemetry = telemetry;
    report.skipped.push(...skipped);
    report.targets.push(...e2eTargets(rows, ceilings, report.adapter));
  }
  report.duration_s = (performance.now() - t0) / 1000;
  return report;
}

export async function runE2e(
  models: E2eModel[],
  backends: SessionFactory[],
  ceilings: Pick<Ceilings, 'bandwidth_gbps' | 'dispatch_us' | 'submit_ms'>,
  opts: Pick<RunOptions, 'e2e' | 'onE2eProgress'>,
): Promise<{ rows: E2eRow[]; telemetry: MoeTelemetry[]; skipped: BenchReport['skipped'] }> {
  const o = { ...DEFAULT_E2E, ...opts.e2e };
  const rows: E2eRow[] = [];
  const telemetry: MoeTelemetry[] = [];
  const skipped: BenchReport['skipped'] = [];
  const total = models.length * backends.length;
  let done = 0;
  for (const m of models) {
    const c = m.ckpt.config;
    const prompt = benchPrompt(c.vocab_size, Math.min(o.promptTokens, c.max_position_embeddings - o.decodeTokens - 8));
    for (const b of backends) {
      opts.onE2eProgress?.(done++, total, `${m.name} on ${b.backend}`);
      let session: InferenceSession | undefined;
      try {
        session = await b.create(m.ckpt);
        const t = await timeSession(session, prompt, o, b.gpu);
        const method =
          `${b.backend}: TTFT = median of ${Math.max(1, o.repeats)} prefills of ${prompt.length} tokens to the first sampled token on the CPU; ` +
          `decode = median of ${t.stepMs.length} steps, each timed to its sampled token (greedy); wall clock (performance.now)`;
        rows.push(e2eRow(m.name, b.backend, m.ckpt, prompt.length, t, ceilings, method));
        if (b.telemetry && c.derived.moeLayers.some(Boolean)) {
          const rec = new ExpertLoadRecorder(c.n_routed_experts, c.num_experts_per_tok);
          await b.telemetry(m.ckpt, session, [...prompt, ...t.tokens.slice(0, -1)], rec);
          telemetry.push(rec.summary(m.name, b.backend));
        }
      } catch (err) {
        skipped.push({ kernel: 'e2e', shape: m.name, variant: b.backend, reason: (err as Error).message });
      } finally {
        session?.dispose();
      }
    }
  }
  opts.onE2eProgress?.(total, total, 'done');
  return { rows, telemetry, skipped };
}
