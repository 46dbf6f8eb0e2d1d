/**
 * `webmoe bench [kernels|e2e|all] [--json FILE] [--html FILE] [--full] [--adapter ...]`: kernel micro-benchmarks
 * and end-to-end toy-model benchmarks against this device's own measured ceilings (docs/benchmarks.md); `batch`
 * (docs/batching.md) and `offload` (expert offloading, docs/offloading.md: bench/offload.ts; with --page its real-files
 * row in headless Chromium from OPFS: bench/offload-page.ts).
 * The options are declared here; the work lives in bench/ (bench/cli.ts, bench/offload.ts), loaded when the command runs, so the
 * library build (src/ only) does not pull the benchmark suite in.
 */
import type { Command } from 'commander';
import { InputError, WebmoeError } from '../errors.js';
import type { AdapterChoice } from '../gpu/device.js';
import { TOY_CONFIG_NAMES } from '../model/toy.js';
import { adapterOption } from './doctor.js';

export interface BenchCliOptions {
  adapter?: AdapterChoice;
  json?: string;
  html?: string;
  markdown?: string;
  full?: boolean;
  only?: string;
  models?: string;
  backends?: string;
  repeats?: string;
  naive?: boolean;
  wall?: boolean;
  promptTokens?: string;
  decodeTokens?: string;
  streamMib?: string;
  /** offload suite (bench/offload.ts) */
  warmupTokens?: string;
  recall?: string;
  quick?: boolean;
  offloadDir?: string;
  /** offload --page: the real-files row in headless Chromium from OPFS (bench/offload-page.ts) */
  page?: boolean;
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('benchmark kernels (against the measured streaming-read and FMA ceilings) and toy models end to end')
    .argument('[suite]', 'kernels | e2e | batch (concurrent streams) | offload (expert offloading, issue #16) | page (the Kimi-style toy in headless Chromium) | all', 'all')
    .addOption(adapterOption())
    .option('--json <file>', 'write the JSON report (schema: docs/benchmarks.md)')
    .option('--html <file>', 'write the self-contained HTML report (roofline, bar charts, expert-load histograms)')
    .option('--markdown <file>', 'write the results as Markdown tables (as in docs/benchmarks.md)')
    .option('--full', 'every shape (Kimi-K2 widths up to 32k cached tokens, prefill up to 512 tokens) and the k2-layer toy')
    .option('--only <text,...>', 'only kernel shapes whose "kernel shape" contains one of these')
    .option('--models <name|dir,...>', `e2e checkpoints: toy names (${TOY_CONFIG_NAMES.join(', ')}) or checkpoint folders`, 'tiny,small,ragged,yarn')
    .option('--backends <list>', 'e2e backends: webgpu, cpu (the CPU reference)', 'webgpu,cpu')
    .option('--repeats <n>', 'timed samples per kernel (median reported; default 7); page: page loads per backend (default 3)')
    .option('--no-naive', 'skip the naive twins (no speedups)')
    .option('--wall', 'time with wall-clock even when the adapter has timestamp-query')
    .option('--prompt-tokens <n>', 'e2e prompt length (default 64; page: 48)')
    .option('--decode-tokens <n>', 'e2e decode steps (default 32); offload: timed steps per row (default 128)')
    .option('--stream-mib <n>', 'MiB streamed by the bandwidth ceiling (default 128, capped by the binding limit)')
    .option('--warmup-tokens <n>', 'offload: decode steps per row left out of the counts (default 32)')
    .option('--recall <p>', 'offload: lookahead recall of the routing replay (default 0.9)')
    .option('--quick', 'offload: skip the real-files row (also WEBMOE_BENCH_QUICK=1)')
    .option('--offload-dir <dir>', 'offload: folder of the real-files checkpoint, kept and reused (default: the OS temporary folder)')
    .option('--page', 'offload: only the real-files row, in the page (headless Chromium, HTTP Range, the OPFS expert store): two page loads (bench/offload-page.ts)')
    .action(async (suite: string, opts: BenchCliOptions) => {
      if (opts.page && suite !== 'offload') throw new InputError(`--page is an option of 'bench offload', not of 'bench ${suite}'`, 'page');
      // variables: keep bench/ out of the src/ build
      const path = opts.page ? '../../bench/offload-page.js' : suite === 'offload' ? '../../bench/offload.js' : suite === 'page' ? '../../bench/page.js' : '../../bench/cli.js';
      let mod: {
        benchAction?(suite: string, opts: BenchCliOptions): Promise<void>;
        offloadAction?(opts: BenchCliOptions): Promise<void>;
        offloadPageAction?(opts: BenchCliOptions): Promise<void>;
        pageAction?(opts: BenchCliOptions): Promise<void>;
      };
      try {
        mod = (await import(/* @vite-ignore */ path)) as typeof mod;
      } catch (err) {
        throw new WebmoeError('BENCH', `the benchmark suite (bench/) could not be loaded: run webmoe from a source checkout (${(err as Error).message})`);
      }
      if (opts.page) await mod.offloadPageAction!(opts);
      else if (suite === 'offload') await mod.offloadAction!(opts);
      else if (suite === 'page') await mod.pageAction!(opts);
      else await mod.benchAction!(suite, opts);
    });
}
