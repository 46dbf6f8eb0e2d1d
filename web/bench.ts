/**
 * The browser Bench view (web/bench.html): runs bench/run.ts's kernel suite on the page's WebGPU adapter and
 * shows the same HTML report `webmoe bench --html` writes, with the JSON for download. The JSON is also put in
 * #result (data-done / data-error set when finished) for the headless-browser test.
 * URL parameters: only (comma list), repeats, full=1, naive=0, stream-mib (bandwidth-ceiling buffer), autorun=1.
 */
import { createGpu } from '../src/gpu/device.js';
import { runBench } from '../bench/run.js';
import { renderHtml } from '../bench/report-html.js';
import { validateReport } from '../bench/schema.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);

function setFromParams(): void {
  if (params.has('only')) $<HTMLInputElement>('only').value = params.get('only')!;
  if (params.has('repeats')) $<HTMLInputElement>('repeats').value = params.get('repeats')!;
  if (params.get('full') === '1') $<HTMLInputElement>('full').checked = true;
  if (params.get('naive') === '0') $<HTMLInputElement>('naive').checked = false;
}

async function run(): Promise<void> {
  const button = $<HTMLButtonElement>('run');
  const progress = $<HTMLProgressElement>('progress');
  const label = $('label');
  const result = $('result');
  button.disabled = true;
  delete result.dataset.done;
  delete result.dataset.error;
  try {
    const gpu = await createGpu();
    const only = $<HTMLInputElement>('only').value.split(',').map((s) => s.trim()).filter(Boolean);
    const streamMiB = Number(params.get('stream-mib') ?? 0);
    const report = await runBench(gpu, {
      suite: 'kernels',
      runtime: 'browser',
      full: $<HTMLInputElement>('full').checked,
      only: only.length ? only : undefined,
      skipNaive: !$<HTMLInputElement>('naive').checked,
      timing: { repeats: Math.max(1, Number($<HTMLInputElement>('repeats').value) || 7) },
      streamBytes: streamMiB > 0 ? streamMiB * 2 ** 20 : undefined,
      onProgress: (done, total, what) => {
        progress.max = total;
        progress.value = done;
        label.textContent = `${done}/${total} ${what}`;
      },
    });
    gpu.destroy();
    const problems = validateReport(report);
    if (problems.length) throw new Error(`report does not match the schema: ${problems.slice(0, 5).join('; ')}`);
    const json = JSON.stringify(report, null, 1);
    const html = renderHtml(report);
    const frame = $<HTMLIFrameElement>('report');
    frame.srcdoc = html;
    frame.hidden = false;
    for (const [id, text, type] of [['download-json', json, 'application/json'], ['download-html', html, 'text/html']] as const) {
      const a = $<HTMLAnchorElement>(id);
      a.href = URL.createObjectURL(new Blob([text], { type }));
      a.hidden = false;
    }
    label.textContent = `done in ${report.duration_s.toFixed(1)} s`;
    result.textContent = json;
    result.dataset.done = '1';
  } catch (err) {
    label.textContent = `failed: ${(err as Error).message}`;
    result.dataset.error = (err as Error).message;
  } finally {
    button.disabled = false;
  }
}

setFromParams();
$('run').addEventListener('click', () => void run());
if (params.get('autorun') === '1') void run();
