/**
 * The action of `webmoe bench` (registered by src/cli/bench.ts, which loads this file lazily so the library
 * build under src/ does not include bench/). Node only: opens checkpoints, draws the progress bar on stderr,
 * prints the summary with the targets on stdout, validates the JSON against the schema and writes the JSON and
 * the self-contained HTML report where asked.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { createGpu, type GpuContext } from '../src/gpu/device.js';
import { InputError, WebmoeError } from '../src/errors.js';
import { memoryFiles, openCheckpoint, type Checkpoint } from '../src/model/checkpoint.js';
import { openCheckpointDir } from '../src/model/node-checkpoint.js';
import { isToyName, makeToyCheckpointInMemory, TOY_CONFIG_NAMES } from '../src/model/toy.js';
import { cpuBackend, webgpuBackend } from './backends.js';
import type { BenchCliOptions } from '../src/cli/bench.js';
import { runBench, type E2eModel, type SessionFactory, type Suite } from './run.js';
import { formatBatchSummary, runBatchBench } from './batch.js';
import { renderHtml } from './report-html.js';
import { validateReport, type BenchReport } from './schema.js';
import { formatSummary } from './summary.js';
import { formatMarkdown } from './markdown.js';
import { intOption } from './options.js';

type BenchOpts = BenchCliOptions;
const DEFAULT_MODELS = 'tiny,small,ragged,yarn';

/** Runs `webmoe bench <suite>` with the parsed options. */
export async function benchAction(suiteArg: string, opts: BenchOpts): Promise<void> {
  if (suiteArg === 'batch') return batchAction(opts);
  const suite = parseSuite(suiteArg);
  const gpu = await createGpu({ adapter: opts.adapter });
  try {
    const report = await run(gpu, suite, opts);
    const problems = validateReport(report);
    if (problems.length) throw new WebmoeError('BENCH', `the report does not match its schema: ${problems.slice(0, 5).join('; ')}`);
    process.stdout.write(formatSummary(report) + '\n');
    if (opts.json) await writeOut(opts.json, JSON.stringify(report, null, 1) + '\n');
    if (opts.html) await writeOut(opts.html, renderHtml(report));
    if (opts.markdown) await writeOut(opts.markdown, formatMarkdown(report));
  } finally {
    gpu.destroy();
  }
}

function parseSuite(s: string): Suite {
  if (s === 'kernels' || s === 'e2e' || s === 'all') return s;
  throw new InputError(`unknown bench suite '${s}': use kernels, e2e, batch, offload, page or all`, 'suite');
}

/** `webmoe bench batch`: concurrent streams (bench/batch.ts) on `small` (and k2-layer with --full), or --models. */
async function batchAction(opts: BenchOpts): Promise<void> {
  const gpu = await createGpu({ adapter: opts.adapter });
  const bar = progress();
  try {
    const names = opts.models === DEFAULT_MODELS || opts.models === undefined ? 'small' : opts.models;
    const models = await openModels({ ...opts, models: names }, (d, t, l) => bar.update(d, t, l));
    // the server section needs a tokenizer: the toys that carry one
    const serverModels = await Promise.all(
      names.split(',').filter((n) => n === 'small' || n === 'ragged').map(async (n) => ({ name: n, files: memoryFiles(n, (await makeToyCheckpointInMemory(n, { seed: 0 })).data) })),
    );
    const report = await runBatchBench(gpu, models, { serverModels, onProgress: (l) => bar.update(0, 1, `batch: ${l}`) });
    bar.stop();
    process.stdout.write(formatBatchSummary(report) + '\n');
    if (opts.json) await writeOut(opts.json, JSON.stringify(report, null, 1) + '\n');
  } finally {
    bar.stop();
    gpu.destroy();
  }
}

async function writeOut(file: string, text: string): Promise<void> {
  const path = resolve(file);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
  process.stderr.write(`wrote ${path}\n`);
}

/** A progress bar on a terminal, plain lines otherwise. */
function progress(): { update(done: number, total: number, label: string): void; stop(): void } {
  if (!process.stderr.isTTY) {
    return { update: (d, t, l) => process.stderr.write(`[${d}/${t}] ${l}\n`), stop: () => {} };
  }
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: 'bench {bar} {value}/{total} | {eta_formatted} left | {label}', hideCursor: true, clearOnComplete: true, etaBuffer: 4 },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, label) {
      if (!started) {
        bar.start(total, done, { label });
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(done, { label });
      }
    },
    stop: () => started && bar.stop(),
  };
}

async function run(gpu: GpuContext, suite: Suite, opts: BenchOpts): Promise<BenchReport> {
  const bar = progress();
  try {
    const models = suite === 'kernels' ? [] : await openModels(opts, (d, t, l) => bar.update(d, t, l));
    const backends = suite === 'kernels' ? [] : sessionFactories(gpu, opts.backends ?? 'webgpu,cpu');
    return await runBench(gpu, {
      suite,
      runtime: 'node',
      full: opts.full,
      only: opts.only?.split(','),
      skipNaive: opts.naive === false,
      timing: { repeats: intOption(opts.repeats, 'repeats', 7), method: opts.wall ? 'wall' : 'auto' },
      models,
      backends,
      streamBytes: opts.streamMib !== undefined ? intOption(opts.streamMib, 'stream-mib', 128) * 2 ** 20 : undefined,
      e2e: { promptTokens: intOption(opts.promptTokens, 'prompt-tokens', 64), decodeTokens: intOption(opts.decodeTokens, 'decode-tokens', 32) },
      onProgress: (d, t, l) => bar.update(d, t, `kernels: ${l}`),
      onE2eProgress: (d, t, l) => bar.update(d, t, `e2e: ${l}`),
    });
  } finally {
    bar.stop();
  }
}

async function openModels(opts: BenchOpts, onProgress: (d: number, t: number, l: string) => void): Promise<E2eModel[]> {
  const names = (opts.models ?? DEFAULT_MODELS).split(',').map((s) => s.trim()).filter(Boolean);
  if (opts.full && !names.includes('k2-layer')) names.push('k2-layer');
  const out: E2eModel[] = [];
  for (const [i, name] of names.entries()) {
    onProgress(i, names.length, `e2e: preparing ${name}`);
    let ckpt: Checkpoint;
    if (isToyName(name)) {
      const toy = await makeToyCheckpointInMemory(name, { seed: 0 });
      ckpt = await openCheckpoint(memoryFiles(name, toy.data));
    } else {
      ckpt = await openCheckpointDir(name);
    }
    out.push({ name: isToyName(name) ? name : ckpt.name, ckpt });
  }
  return out;
}

function sessionFactories(gpu: GpuContext, list: string): SessionFactory[] {
  const out: SessionFactory[] = [];
  for (const b of list.split(',').map((x) => x.trim())) {
    if (b === 'webgpu') out.push(webgpuBackend(gpu));
    else if (b === 'cpu' || b === 'cpu-reference') out.push(cpuBackend());
    else throw new InputError(`unknown backend '${b}': use webgpu, cpu`, 'backends');
  }
  return out;
}
