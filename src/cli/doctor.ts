import { Option, type Command } from 'commander';
import { ADAPTER_CHOICES, type AdapterChoice } from '../gpu/device.js';
import { doctor, DoctorError } from '../gpu/doctor.js';

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
    .action(async (opts: { adapter?: AdapterChoice; json?: boolean }) => {
      const report = await doctor(opts.adapter);
      if (opts.json) {
        process.stdout.write(JSON.stringify(report) + '\n');
      } else {
        const a = report.adapter;
        const lines = [
          `adapter:  ${a.description || a.device || a.vendor} (${a.vendor}, ${a.architecture}) — ${a.software ? 'software (CPU)' : 'hardware'}, driver ${a.driver}`,
          `features: ${report.features.join(', ')}`,
          'limits:',
          ...Object.entries(report.limits).map(([k, v]) => `  ${k.padEnd(36)} ${v}`),
          `kernel:   ${report.kernel.name} over ${report.kernel.elements} elements, max error ${report.kernel.maxError}`,
          report.ok ? 'WebGPU works.' : `FAILED: ${report.error}`,
        ];
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (!report.ok) throw new DoctorError(report.error ?? 'kernel check failed');
    });
}
