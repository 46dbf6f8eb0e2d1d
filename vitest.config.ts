import { defineConfig } from 'vitest/config';

/**
 * Test projects:
 *   cpu          everything that needs no GPU (format, model reference, agent, ...)
 *   lavapipe     GPU tests (*.gpu.test.ts) on Mesa lavapipe: shader-f16, subgroups, 128 MiB bindings
 *   swiftshader  the same GPU tests on SwiftShader: no shader-f16, 1 GiB bindings
 *   browser      headless Chromium tests (*.browser.test.ts)
 * GPU tests read the adapter from WEBMOE_TEST_ADAPTER (test/helpers/gpu.ts); tests never mock WebGPU.
 */
const gpuTests = ['test/**/*.gpu.test.ts'];
export default defineConfig({
  test: {
    pool: 'forks',
    // two test files at a time on the 2-core machine (vitest's default here is one: cores - 1). GPU tests keep
    // lavapipe's threads busy only in bursts (compiles, uploads and CPU references run between dispatches), so two
    // files overlap well; no test asserts a time, and every file makes its own devices, servers (port 0) and folders
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      { test: { name: 'cpu', include: ['test/**/*.test.ts'], exclude: [...gpuTests, 'test/**/*.browser.test.ts'], testTimeout: 120_000 } },
      { test: { name: 'lavapipe', include: gpuTests, env: { WEBMOE_TEST_ADAPTER: 'lavapipe' }, testTimeout: 300_000, hookTimeout: 300_000 } },
      { test: { name: 'swiftshader', include: gpuTests, env: { WEBMOE_TEST_ADAPTER: 'swiftshader' }, testTimeout: 300_000, hookTimeout: 300_000 } },
      { test: { name: 'browser', include: ['test/**/*.browser.test.ts'], testTimeout: 300_000, hookTimeout: 300_000 } },
    ],
  },
});
