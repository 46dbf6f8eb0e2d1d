/**
 * The golden-fixture tests skip when ../shared is absent (a clone used on its own). In CI the fixtures are
 * always there, so a skip would hide a broken path: fail loudly instead.
 */
import { expect, it } from 'vitest';
import { SHARED_DIR } from './format/shared-paths.js';
import { GOLDEN_DIR } from './model/reference-fixtures.js';

it.runIf(process.env.CI === 'true' || process.env.WEBMOE_REQUIRE_FIXTURES === '1')('CI finds the shared golden fixtures and configs', () => {
  expect(SHARED_DIR, 'set WEBMOE_SHARED_DIR or put shared/ beside the checkout').toBeDefined();
  expect(GOLDEN_DIR).toBeDefined();
});
