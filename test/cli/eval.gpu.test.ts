/**
 * `webmoe eval` on the webgpu backend: the pinned protocol (src/cli/eval.ts) over the committed demo model on both
 * backends in-process, same text, same windows. Tolerance 1e-6 relative on the total NLL: the GPU kernels match the
 * reference's logits to ~1e-6 relative, and the NLL sums hundreds of log-probabilities whose errors do not add up
 * in one direction (measured on the full evaluation set of docs/demo-model.md: 8e-10).
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { evaluateTexts } from '../../src/cli/eval.js';
import { loadTextModel } from '../../src/engine/text-model.js';
import { folderFiles } from '../../src/model/node-checkpoint.js';
import { testAdapter, testGpu } from '../helpers/gpu.js';

const dir = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'models', 'demo');
const text = 'import os\n\n\ndef read_lines(path):\n    with open(path) as f:\n        return f.read().splitlines()\n';

it.skipIf(!existsSync(join(dir, 'config.json')))(`eval of models/demo: webgpu (${testAdapter()}) equals the cpu reference`, async () => {
  const results: number[] = [];
  for (const backend of ['cpu', 'webgpu'] as const) {
    const model = await loadTextModel(folderFiles(dir), { backend, gpu: backend === 'webgpu' ? await testGpu() : undefined, ctxSize: 16 });
    try {
      // ctx 16, stride 5: several windows, each from position 0 on a reset cache
      const res = await evaluateTexts(model.session, model.checkpoint.config.vocab_size, (s) => model.tokenizer!.encode(s), 256, [{ name: 'a', text }], 16, 5);
      expect(res.tokens).toBeGreaterThan(16);
      results.push(res.nll_nats);
    } finally {
      await model.close();
    }
  }
  expect(Math.abs(results[1]! - results[0]!) / results[0]!).toBeLessThan(1e-6);
});
