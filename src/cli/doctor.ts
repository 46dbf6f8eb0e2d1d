import { Option, type Command } from 'commander';
import { ADAPTER_CHOICES, type AdapterChoice } from '../gpu/device.js';
import { doctor, DoctorError } from '../gpu/doctor.js';
import { describePlan } from '../gpu/plan.js';
import { InputError } from '../errors.js';
import { readTextFile } from '../format/node-source.js';
import { parseConfig } from '../model/config.js';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Adds the shared `--adapter` option (also read from WEBMOE_ADAPTER). */
export function adapterOption(): Option {
  return new Option('--adapter <kind>', 'WebGPU adapter: auto takes a hardware GPU, then lavapipe, then SwiftShader')
    .choices(ADAPTER_CHOICES as string[])
    .env('WEBMOE_ADAPTER');
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('show the WebGPU adapter, its features and limits, and check that a kernel runs correctly')
    .addOption(adapterOption())
    .option('--json', 'print one JSON object on stdout')
    .option('--model <dir>', "also print the kernel plan for this checkpoint's shapes (a folder with config.json, or the config file)")
    .action(async (opts: { adapter?: AdapterChoice; json?: boolean; model?: string }) => {
      const shapes = opts.model === undefined ? undefined : await modelShapes(opts.model);
      const report = await doctor(opts.adapter, shapes);
      if (opts.json) {
        process.stdout.write(JSON.stringify(report) + '\n');
      } else {
        const a = report.adapter;
        const lines = [
          `adapter:  ${a.description || a.device || a.vendor} (${a.vendor}, ${a.architecture}) — ${a.software ? 'software (CPU)' : 'hardware'}, driver ${a.driver}`,
          ...(a.lavapipeThreads !== undefined ? [`threads:  ${threadsLine(a.lavapipeThreads)}`] : []),
          `features: ${report.features.join(', ')}`,
          'limits:',
          ...Object.entries(report.limits).map(([k, v]) => `  ${k.padEnd(36)} ${v}`),
          `kernel:   ${report.kernel.name} over ${report.kernel.elements} elements, max error ${report.kernel.maxError}`,
          ...(report.plan ? ['kernel plan (src/gpu/plan.ts):', ...describePlan(report.plan).map((l) => `  ${l}`)] : []),
          report.ok ? 'WebGPU works.' : `FAILED: ${report.error}`,
        ];
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (!report.ok) throw new DoctorError(report.error ?? 'kernel check failed');
    });
}

/** doctor's line on lavapipe's compute threads (node-adapter.ts lavapipeThreads). */
function threadsLine(n: number | string): string {
  if (typeof n === 'string') return `LP_NUM_THREADS='${n}' is not a whole number >= 0 (Mesa reads a leading number if there is one, else uses every core); set a whole number, or unset it for webmoe's choice`;
  return `lavapipe computes on ${n === 0 ? 'its queue thread (LP_NUM_THREADS=0)' : `${n} pool threads (LP_NUM_THREADS)`}; set LP_NUM_THREADS to override`;
}

/** The shapes the kernel plan depends on, from a checkpoint folder's config.json (or a config file). */
export async function modelShapes(path: string): Promise<{ hidden: number; rank: number; rope: number }> {
  const isDir = await stat(path).then((s) => s.isDirectory(), () => false);
  const file = isDir ? join(path, 'config.json') : path;
  const text = await readTextFile(file, 16 * 2 ** 20);
  if (text === undefined) throw new InputError(`--model ${path}: no config.json there`, 'model');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InputError(`--model ${file}: not JSON (${(err as Error).message})`, 'model');
  }
  const c = parseConfig(json, file);
  return { hidden: c.hidden_size, rank: c.kv_lora_rank, rope: c.qk_rope_head_dim };
}
