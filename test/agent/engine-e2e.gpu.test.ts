/**
 * The agent and `webmoe serve` end to end on webmoe's real engine, webgpu backend, on lavapipe; the child processes
 * (`webmoe serve`, `webmoe agent`) get the same adapter. See helpers/engine-e2e.ts.
 * Lavapipe only: what this file checks is the plumbing above the engine (HTTP, SSE, cancellation, the agent loop,
 * the CLI processes), which does not depend on the adapter, and the engine's numbers on SwiftShader are specified by
 * the engine and kernel tests that run on both adapters (test/engine/, test/kernels/). On SwiftShader this file
 * took 79 s of the suite (the agent run alone 50 s), a second run of the same plumbing.
 */
import { describe, it } from 'vitest';
import { testAdapter, testGpu } from '../helpers/gpu.js';
import { describeEngineE2E } from './helpers/engine-e2e.js';

const adapter = testAdapter();
if (adapter === 'swiftshader') {
  describe('agent and serve on the webgpu backend (swiftshader)', () => {
    it.skip('runs on lavapipe only: adapter-independent plumbing (see the file header)', () => {});
  });
} else {
  describeEngineE2E(`webgpu backend, ${adapter}`, { backend: 'webgpu', gpu: () => testGpu(), adapter, agentRuns: true });
}
