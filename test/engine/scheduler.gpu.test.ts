/**
 * Continuous batching (src/engine/scheduler.ts) through the library API: concurrent model.generate() calls on a
 * model loaded with maxSequences share batched decode steps, and each stream equals the same request run alone;
 * the waiting queue is FIFO and bounded (BusyError beyond it); a waiting request can be cancelled.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortError, BusyError } from '../../src/errors.js';
import { loadTextModel, type TextModel } from '../../src/engine/text-model.js';
import type { DoneEvent, GenerationEvent } from '../../src/engine/types.js';
import { folderFiles } from '../../src/model/node-checkpoint.js';
import { golden } from '../format/shared-paths.js';
import { testGpu } from '../helpers/gpu.js';

const fixture = JSON.parse(readFileSync(join(golden('small'), 'tokens.json'), 'utf8')) as { prompt: number[]; greedy: number[] };
const PROMPTS = [fixture.prompt, fixture.prompt.slice(0, 4), [...fixture.prompt].reverse(), fixture.prompt.slice(3)];
const LENGTHS = [24, 7, 15, 11];

async function tokensOf(gen: AsyncGenerator<GenerationEvent>): Promise<number[]> {
  let done: DoneEvent | undefined;
  for await (const ev of gen) if (ev.type === 'done') done = ev;
  return done!.tokens;
}

let model: TextModel;
beforeAll(async () => {
  const gpu = await testGpu();
  model = await loadTextModel(folderFiles(golden('small')), { backend: 'webgpu', gpu, ctxSize: 64, maxSequences: 3, maxQueue: 1 });
});
afterAll(async () => model?.close());

const run = (i: number, signal?: AbortSignal) =>
  tokensOf(model.generate(PROMPTS[i]!, { maxTokens: LENGTHS[i]!, temperature: 0, ignoreEos: true, signal }));

describe('concurrent generate() on a batched model', () => {
  it('streams run together equal their solo runs, in batched steps; the 4th waits its turn (queue bound 1)', async () => {
    const alone: number[][] = [];
    for (let i = 0; i < PROMPTS.length; i++) alone.push(await run(i));
    expect(alone[0]).toEqual(fixture.greedy.slice(0, LENGTHS[0]));
    const before = model.scheduler!.stats();
    const together = await Promise.all(PROMPTS.map((_, i) => run(i)));
    expect(together).toEqual(alone);
    const after = model.scheduler!.stats();
    const steps = after.steps - before.steps;
    const rows = after.rows - before.rows;
    expect(rows / steps, `mean rows per step (${rows} rows in ${steps} steps)`).toBeGreaterThan(1.5);
    expect(after.queued - before.queued).toBe(1);
    expect(after.running).toBe(0);
  });

  it('beyond the queue bound a request is refused with a BusyError; a cancelled waiter leaves the queue', async () => {
    const running = [run(0), run(2), run(1)]; // three sequences busy
    const controller = new AbortController();
    const waiting = run(3, controller.signal); // queued (bound 1)
    await expect(run(3)).rejects.toBeInstanceOf(BusyError);
    controller.abort();
    await expect(waiting).rejects.toBeInstanceOf(AbortError);
    await Promise.all(running);
    expect(model.scheduler!.stats()).toMatchObject({ waiting: 0, running: 0 });
    // and the model still serves
    expect(await run(1)).toHaveLength(LENGTHS[1]!);
  });
});

describe('n choices of one prompt (shared prefill)', () => {
  it('greedy choices all equal the solo greedy run; the prompt but its last token is prefilled once', async () => {
    const before = model.scheduler!.stats().prefillTokens;
    const gens = model.generateChoices!(fixture.prompt, 3, { maxTokens: 12, temperature: 0, ignoreEos: true });
    const outs = await Promise.all(gens.map(tokensOf));
    for (const o of outs) expect(o).toEqual(fixture.greedy.slice(0, 12));
    expect(model.scheduler!.stats().prefillTokens - before).toBe(fixture.prompt.length - 1);
    expect(model.scheduler!.stats()).toMatchObject({ waiting: 0, running: 0 });
  });

  it('seeded choices are reproducible, choice i with seed + i; more choices than sequences is an InputError', async () => {
    const run = () => Promise.all(model.generateChoices!(fixture.prompt, 2, { maxTokens: 10, temperature: 1, seed: 5, ignoreEos: true }).map(tokensOf));
    const a = await run();
    expect(await run()).toEqual(a);
    expect(a[0]).not.toEqual(a[1]);
    expect(() => model.generateChoices!(fixture.prompt, 4, {})).toThrow(/n = 4 choices need n sequences/);
  });
});

