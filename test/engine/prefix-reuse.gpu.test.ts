/**
 * Prefix reuse in the scheduler (src/engine/scheduler.ts): a prompt that begins like an earlier one takes that
 * prompt's cache rows (whole prefill chunks) instead of computing them, from a free sequence that kept them or by
 * a copy from a running one, and every token equals the same request on a scheduler that reuses nothing (the
 * reused rows are bit for bit the rows a fresh prefill computes: same chunks, same positions).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBatchSession, type BatchSession } from '../../src/engine/batch-session.js';
import { generate } from '../../src/engine/generate.js';
import { BatchScheduler } from '../../src/engine/scheduler.js';
import type { GenerationEvent } from '../../src/engine/types.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { golden } from '../format/shared-paths.js';
import { testGpu } from '../helpers/gpu.js';

const fixture = JSON.parse(readFileSync(join(golden('small'), 'tokens.json'), 'utf8')) as { prompt: number[] };
const CHUNK = 4;
// a shared beginning of 14 tokens (3 whole chunks of 4 reusable), then each prompt its own way
const BASE = [...fixture.prompt.slice(0, 10), ...fixture.prompt.slice(0, 4).reverse()];
const A = [...BASE, 7, 8, 9];
const B = [...BASE, 300, 301];
const OPTS = { maxTokens: 9, temperature: 0, ignoreEos: true } as const;

let batch: BatchSession;
beforeAll(async () => {
  batch = await createBatchSession(await testGpu(), await openCheckpointDir(golden('small')), { maxSequences: 3, ctxSize: 64 });
});
afterAll(() => batch?.dispose());

async function tokens(s: BatchScheduler, prompt: number[], maxTokens: number = OPTS.maxTokens): Promise<number[]> {
  const lane = s.lane();
  try {
    let out: number[] = [];
    for await (const ev of generate(lane, undefined, prompt, { ...OPTS, maxTokens })) if (ev.type === 'done') out = ev.tokens;
    return out;
  } finally {
    lane.release();
  }
}

describe('prefix reuse', () => {
  it('a later prompt with the same beginning reuses whole chunks of it, free or running, and decodes the same tokens', async () => {
    const fresh = new BatchScheduler(batch, { prefillChunk: CHUNK, prefixReuse: false });
    const expectedA = await tokens(fresh, A);
    const expectedB = await tokens(fresh, B);
    expect(fresh.stats().reusedTokens).toBe(0);
    expect(expectedA).not.toEqual(expectedB);

    // one after another: B claims the free sequence that kept A's rows
    const s = new BatchScheduler(batch, { prefillChunk: CHUNK });
    expect(await tokens(s, A)).toEqual(expectedA);
    expect(s.stats().reusedTokens).toBe(0);
    expect(await tokens(s, B)).toEqual(expectedB);
    expect(s.stats().reusedTokens).toBe(12);
    // A again: B took the sequence that kept A (the best match), so A reuses B's 12 rows
    expect(await tokens(s, A)).toEqual(expectedA);
    expect(s.stats().reusedTokens).toBe(12 + 12);
    // and A once more: all but its last partial chunk (16 of 17 tokens)
    expect(await tokens(s, A)).toEqual(expectedA);
    expect(s.stats().reusedTokens).toBe(12 + 12 + 16);

    // while A decodes, B copies A's rows from the running sequence
    const t = new BatchScheduler(batch, { prefillChunk: CHUNK });
    const lane = t.lane();
    const gen: AsyncGenerator<GenerationEvent> = generate(lane, undefined, A, { ...OPTS, maxTokens: 30 });
    const first = await gen.next(); // A has prefilled and is decoding
    expect(first.value).toMatchObject({ type: 'token', token: expectedA[0] });
    const b = tokens(t, B);
    const rest: number[] = [expectedA[0]!];
    for await (const ev of gen) if (ev.type === 'token') rest.push(ev.token);
    lane.release();
    expect(await b).toEqual(expectedB);
    expect(t.stats().reusedTokens).toBe(12);
    expect(rest.slice(0, OPTS.maxTokens)).toEqual(expectedA);
  });
});
