/** A device that goes away under a session gives a typed DeviceError on the next call: no crash, no hang. */
import { expect, it } from 'vitest';
import { join } from 'node:path';
import { DeviceError } from '../../src/errors.js';
import { createSession } from '../../src/engine/session.js';
import { createGpu } from '../../src/gpu/device.js';
import { openCheckpointDir } from '../../src/model/node-checkpoint.js';
import { GOLDEN_DIR } from '../model/reference-fixtures.js';
import { testAdapter } from '../helpers/gpu.js';

const GREEDY = { temperature: 0, topK: 0, topP: 1, uniform: 0 };

it('a destroyed device turns the next prefill / decode into a DeviceError', async () => {
  const gpu = await createGpu({ adapter: testAdapter() });
  const ckpt = await openCheckpointDir(join(GOLDEN_DIR!, 'tiny'));
  const session = await createSession(gpu, ckpt, { ctxSize: 32 });
  await ckpt.close();
  const first = await session.prefill([1, 2, 3], GREEDY);
  expect(first).toBeGreaterThanOrEqual(0);
  gpu.destroy();
  await expect(session.decode(first, GREEDY)).rejects.toBeInstanceOf(DeviceError);
  await expect(session.prefill([4], GREEDY)).rejects.toThrow(/destroyed|lost/);
  session.dispose();
});
