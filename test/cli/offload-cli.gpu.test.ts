/**
 * `webmoe generate --gpu-memory MIB --record-routing FILE` end to end on WebGPU: the golden greedy continuation
 * under a budget that holds half of the routed experts, every GPU allocation within the budget, the offload
 * telemetry in the --json stats and a routing trace that the simulator's parser accepts; a budget under the
 * minimum is a typed error that names the minimum.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCommand } from '../../src/cli/generate.js';
import { planOffload } from '../../src/engine/offload-plan.js';
import { InputError } from '../../src/errors.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { parseTrace, traceStats } from '../../src/offload/traces.js';
import { GOLDEN_DIR } from '../model/reference-fixtures.js';
import { testAdapter } from '../helpers/gpu.js';
import { Sink } from '../helpers/sink.js';

const model = join(GOLDEN_DIR!, 'small');
const golden = JSON.parse(readFileSync(join(model, 'tokens.json'), 'utf8')) as { prompt: number[]; greedy: number[] };
let dir: string;
let halfMiB: number;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'webmoe-offload-cli-'));
  const ckpt = await openCheckpointDir(model);
  const c = ckpt.config;
  await ckpt.close();
  // the plan's estimate of the resident part, plus half of the experts' slots (the engine sizes slots exactly)
  const min = planOffload(c, { gpuMemory: 2 ** 40, ctxSize: 128, format: 'fp8' });
  halfMiB = (min.fixed + (min.moeLayers * min.experts * min.expertBytes) / 2) / 2 ** 20;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe(`webmoe generate --gpu-memory (${testAdapter()})`, () => {
  it('greedy tokens equal the fixture under half the expert bytes; stats and trace written', async () => {
    const out = new Sink();
    const err = new Sink();
    const trace = join(dir, 'routing.json');
    const n = 12;
    await generateCommand({
      model, adapter: testAdapter(), promptTokens: golden.prompt.join(','), maxTokens: n, temperature: 0, ignoreEos: true, json: true,
      ctxSize: 128, gpuMemory: halfMiB, recordRouting: trace,
    }, out, err);
    const res = JSON.parse(out.text) as { tokens: number[]; stats: { gpuBytes: number; offload?: { slotsPerLayer: number; experts: number; misses: number; hitRate: number; bytesStreamed: number; tokens: number } } };
    expect(res.tokens).toEqual(golden.greedy.slice(0, n));
    expect(res.stats.gpuBytes).toBeLessThanOrEqual(halfMiB * 2 ** 20);
    const o = res.stats.offload!;
    expect(o.slotsPerLayer).toBeLessThan(o.experts);
    expect(o.misses).toBeGreaterThan(0);
    expect(o.tokens).toBe(golden.prompt.length + n - 1); // the last token is sampled, never fed back
    const t = parseTrace(JSON.parse(readFileSync(trace, 'utf8')), trace);
    expect(t.tokens).toHaveLength(golden.prompt.length + n - 1);
    expect(traceStats(t).length).toBe(t.layers.length);
  });

  it('a budget below the minimum is an InputError naming the minimum', async () => {
    const err = await generateCommand({ model, adapter: testAdapter(), promptTokens: '1,2,3', maxTokens: 1, json: true, gpuMemory: 0.5 }, new Sink(), new Sink()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/--gpu-memory 0\.50 MiB is below this model's minimum of [\d.]+ MiB/);
  });
});
