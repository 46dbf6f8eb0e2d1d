/**
 * The agent and `webmoe serve` end to end on webmoe's real engine, webgpu backend, on the adapter of the vitest
 * project (lavapipe or SwiftShader); the child processes (`webmoe serve`, `webmoe agent`) get the same adapter.
 * See helpers/engine-e2e.ts. The two extra agent runs (~3400-token prefills) are left to lavapipe: on
 * SwiftShader each takes about a minute, and the server contract already runs the agent on both backends there.
 */
import { testAdapter, testGpu } from '../helpers/gpu.js';
import { describeEngineE2E } from './helpers/engine-e2e.js';

const adapter = testAdapter();
describeEngineE2E(`webgpu backend, ${adapter}`, { backend: 'webgpu', gpu: () => testGpu(), adapter, agentRuns: adapter !== 'swiftshader' });
