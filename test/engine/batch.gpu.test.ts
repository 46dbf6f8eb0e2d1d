/**
 * Batched decode (src/engine/batch-session.ts) on the adapter of the vitest project:
 *   - greedy streams that join and leave mid-run produce exactly the tokens of the same request run alone
 *     (batch invariance), and the golden prompt's stream equals the fixture's greedy continuation;
 *   - with the plan's per-row GEMVs (CPU adapters) a batched row is bit-identical to a one-token decode of the
 *     ordinary engine;
 *   - pipelined steps (rows without a token read the sequence's last sample on the GPU, two steps in flight, a
 *     sequence leaving) produce the tokens of host-fed steps; after a prefill or a rewind a row needs its token;
 *   - warm-up (BatchSession.warmUp) leaves no pipeline for the steps of any batch size to compile;
 *   - bad use is a typed error: a full session, a row for a closed or repeated sequence, a step past the context.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContextOverflowError, InputError } from '../../src/errors.js';
import { createBatchSession, type BatchSession } from '../../src/engine/batch-session.js';
import type { StepSampling } from '../../src/engine/types.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { golden } from '../format/shared-paths.js';
import { testGpu } from '../helpers/gpu.js';

const GREEDY: StepSampling = { temperature: 0, topK: 0, topP: 1, uniform: 0 };
const fixture = JSON.parse(readFileSync(join(golden('small'), 'tokens.json'), 'utf8')) as { prompt: number[]; greedy: number[] };

interface Request {
  prompt: number[];
  tokens: number;
  /** the step at which it joins the running batch */
  joinAt: number;
}

const REQUESTS: Request[] = [
  { prompt: fixture.prompt, tokens: 20, joinAt: 0 },
  { prompt: fixture.prompt.slice(0, 5), tokens: 9, joinAt: 3 },
  { prompt: [...fixture.prompt].reverse().slice(0, 11), tokens: 14, joinAt: 5 },
];

let session: BatchSession;
beforeAll(async () => {
  const gpu = await testGpu();
  session = await createBatchSession(gpu, await openCheckpointDir(golden('small')), { maxSequences: 3, ctxSize: 64 });
});
afterAll(() => session?.dispose());

/** One request alone through the batch session: prefill, then one-row steps. */
async function solo(r: Request): Promise<number[]> {
  const id = session.openSequence();
  try {
    const out = [await session.prefill(id, r.prompt, GREEDY)];
    while (out.length < r.tokens) out.push((await session.step([{ sequence: id, token: out.at(-1)!, sampling: GREEDY }]))[0]!);
    return out;
  } finally {
    session.closeSequence(id);
  }
}

/** All requests together: each joins at its step, leaves when it has its tokens. */
async function together(reqs: Request[]): Promise<number[][]> {
  const outs: number[][] = reqs.map(() => []);
  const ids: (number | null)[] = reqs.map(() => null);
  for (let step = 0; outs.some((o, i) => o.length < reqs[i]!.tokens); step++) {
    for (const [i, r] of reqs.entries()) {
      if (r.joinAt === step) {
        ids[i] = session.openSequence();
        outs[i]!.push(await session.prefill(ids[i]!, r.prompt, GREEDY));
      }
    }
    const rows = reqs.flatMap((r, i) => (ids[i] !== null && outs[i]!.length < r.tokens ? [{ i, sequence: ids[i]!, token: outs[i]!.at(-1)!, sampling: GREEDY }] : []));
    if (rows.length === 0) continue;
    const next = await session.step(rows);
    rows.forEach((row, b) => {
      outs[row.i]!.push(next[b]!);
      if (outs[row.i]!.length === reqs[row.i]!.tokens) {
        session.closeSequence(row.sequence);
        ids[row.i] = null;
      }
    });
  }
  return outs;
}

describe('batched decode', () => {
  it('warm-up compiles the pipelines of every batch size: the steps after it compile none', async () => {
    const kernels = (session as unknown as { seqs: Array<{ model: { kernels: { pipelineCount: number } } }> }).seqs[0]!.model.kernels;
    const before = kernels.pipelineCount;
    const compiled = await session.warmUp();
    expect(kernels.pipelineCount - before).toBe(compiled);
    const ids = [0, 1, 2].map(() => session.openSequence());
    try {
      const firsts = await Promise.all(ids.map((id, i) => session.prefill(id, REQUESTS[i]!.prompt, GREEDY)));
      const afterPrefill = kernels.pipelineCount;
      for (let B = 1; B <= ids.length; B++) await session.step(ids.slice(0, B).map((sequence, i) => ({ sequence, token: firsts[i]!, sampling: GREEDY })));
      expect(kernels.pipelineCount).toBe(afterPrefill);
    } finally {
      ids.forEach((id) => session.closeSequence(id));
    }
  });

  it('streams joining and leaving mid-run equal their solo runs; the golden stream equals the fixture', async () => {
    const alone: number[][] = [];
    for (const r of REQUESTS) alone.push(await solo(r));
    expect(alone[0]).toEqual(fixture.greedy.slice(0, REQUESTS[0]!.tokens));
    const mixed = await together(REQUESTS);
    expect(mixed).toEqual(alone);
    expect(session.active).toBe(0);
  });

  it("a row's logits are bit-identical alone and beside other rows (batch invariance)", async () => {
    const prompts = [fixture.prompt, fixture.prompt.slice(2, 9), [...fixture.prompt].reverse()];
    const next = [7, 11, 13];
    const alone: Float32Array[] = [];
    for (const [i, p] of prompts.entries()) {
      const id = session.openSequence();
      await session.prefill(id, p, GREEDY);
      alone.push(await session.stepLogits([{ sequence: id, token: next[i]! }]));
      session.closeSequence(id);
    }
    const ids = prompts.map(() => session.openSequence());
    for (const [i, p] of prompts.entries()) await session.prefill(ids[i]!, p, GREEDY);
    const together = await session.stepLogits(ids.map((sequence, i) => ({ sequence, token: next[i]! })));
    const V = session.vocabSize;
    prompts.forEach((_, i) => expect(together.subarray(i * V, (i + 1) * V), `row ${i}`).toEqual(alone[i]));
    for (const id of ids) session.closeSequence(id);
  });

  it("per-row GEMVs (the plan's batchLinear on CPU adapters): a batched row equals the ordinary engine's one-token decode, bit for bit", async (ctx) => {
    // elsewhere (GPUs) batched rows run a GEMM for batch invariance, whose summation order differs from the GEMV's
    if (session.plan.batchLinear !== 'gemv-rows') ctx.skip();
    const prompts = [fixture.prompt.slice(1, 12), [...fixture.prompt].reverse().slice(0, 6)];
    const next = [5, 9];
    const single: Float32Array[] = [];
    for (const [i, p] of prompts.entries()) {
      const id = session.openSequence();
      await session.prefill(id, p, GREEDY);
      single.push(await session.forwardLogits(id, [next[i]!])); // the sequence's own GpuSession: one token, T = 1
      session.closeSequence(id);
    }
    const ids = prompts.map(() => session.openSequence());
    for (const [i, p] of prompts.entries()) await session.prefill(ids[i]!, p, GREEDY);
    const together = await session.stepLogits(ids.map((sequence, i) => ({ sequence, token: next[i]! })));
    const V = session.vocabSize;
    prompts.forEach((_, i) => expect(together.subarray(i * V, (i + 1) * V), `row ${i}`).toEqual(single[i]));
    for (const id of ids) session.closeSequence(id);
  });

  it('pipelined steps (rows without tokens read their last sample on the GPU, two in flight) equal the host-fed steps', async () => {
    const reqs = REQUESTS.slice(0, 2);
    const expected = await Promise.all(reqs.map(solo));
    const ids = reqs.map(() => session.openSequence());
    try {
      const firsts = await Promise.all(reqs.map((r, i) => session.prefill(ids[i]!, r.prompt, GREEDY)));
      // after a prefill the sample is on the host only: a row must give its token
      expect(session.canContinue(ids[0]!)).toBe(false);
      expect(() => session.step([{ sequence: ids[0]!, sampling: GREEDY }])).toThrow(/no token sampled on the GPU/);
      const outs = firsts.map((t) => [t]);
      const seconds = await session.step(ids.map((sequence, i) => ({ sequence, token: firsts[i]!, sampling: GREEDY })));
      seconds.forEach((t, i) => outs[i]!.push(t));
      // PIPELINE_DEPTH (2) steps submitted before the first is read back; the shorter request leaves early
      const steps = Math.max(...reqs.map((r) => r.tokens)) - 2;
      const inFlight: Array<{ rows: number[]; done: Promise<number[]> }> = [];
      for (let k = 0; k < steps || inFlight.length > 0; k++) {
        if (k < steps) {
          const rows = reqs.flatMap((r, i) => (outs[i]!.length + inFlight.filter((f) => f.rows.includes(i)).length < r.tokens ? [i] : []));
          if (rows.length > 0) {
            expect(rows.every((i) => session.canContinue(ids[i]!))).toBe(true);
            inFlight.push({ rows, done: session.step(rows.map((i) => ({ sequence: ids[i]!, sampling: GREEDY }))) });
          }
        }
        if (inFlight.length === 2 || k >= steps) {
          const f = inFlight.shift()!;
          (await f.done).forEach((t, b) => outs[f.rows[b]!]!.push(t));
        }
      }
      expect(outs).toEqual(expected);
      // a rewind (steps asked ahead and not needed) takes the chain away until a host-fed step
      const pos = session.position(ids[0]!);
      session.rewind(ids[0]!, 1);
      expect(session.position(ids[0]!)).toBe(pos - 1);
      expect(session.canContinue(ids[0]!)).toBe(false);
    } finally {
      ids.forEach((id) => session.closeSequence(id));
    }
  });

  it('typed errors: a full session, a closed or repeated sequence, a step past the context', async () => {
    const a = session.openSequence();
    const b = session.openSequence();
    const c = session.openSequence();
    expect(() => session.openSequence()).toThrow(/all 3 sequences are in use/);
    session.closeSequence(c);
    expect(() => session.step([{ sequence: c, token: 1, sampling: GREEDY }])).toThrow(/sequence \d+ is not open/);
    expect(() => session.step([{ sequence: a, token: 1, sampling: GREEDY }, { sequence: a, token: 2, sampling: GREEDY }])).toThrow(/appears twice/);
    expect(() => session.step([{ sequence: a, token: 1 << 20, sampling: GREEDY }])).toThrow(InputError);
    await session.prefill(b, Array.from({ length: 64 }, (_, i) => i % 50), GREEDY);
    expect(() => session.step([{ sequence: b, token: 1, sampling: GREEDY }])).toThrow(ContextOverflowError);
    session.closeSequence(a);
    session.closeSequence(b);
  });
});
