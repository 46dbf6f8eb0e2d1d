/**
 * The golden fixtures are vendored in test/fixtures/: a bare clone must find every case and config, so that no
 * golden test can silently skip.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { FIXTURES_DIR } from './format/shared-paths.js';
import { GOLDEN_DIR } from './model/reference-fixtures.js';

it('the vendored golden fixtures and configs are present', () => {
  expect(GOLDEN_DIR).toBeDefined();
  for (const c of ['tiny', 'small', 'ragged', 'yarn', 'int4']) {
    for (const f of ['config.json', 'model.safetensors', 'logits.npy', 'taps.safetensors', 'tokens.json']) {
      expect(existsSync(join(FIXTURES_DIR, 'golden', c, f)), `${c}/${f}`).toBe(true);
    }
  }
  for (const f of ['kimi-k2.json', 'deepseek-v3.json']) expect(existsSync(join(FIXTURES_DIR, 'configs', f)), f).toBe(true);
});
