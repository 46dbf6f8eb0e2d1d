/**
 * Where the test fixtures live: test/fixtures/ in this repository (vendored, see test/fixtures/README.md), or
 * $WEBMOE_FIXTURES_DIR (a folder with the same golden/ and configs/ layout) to test against other references.
 * Nothing at test time reads outside the repository unless that variable says so.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The fixtures folder: it always exists in a checkout, so no test skips for want of it. */
export const FIXTURES_DIR: string = process.env.WEBMOE_FIXTURES_DIR ?? join(REPO, 'test', 'fixtures');
if (!existsSync(join(FIXTURES_DIR, 'golden')) || !existsSync(join(FIXTURES_DIR, 'configs'))) {
  throw new Error(`test fixtures not found in ${FIXTURES_DIR} (expected golden/ and configs/)`);
}
/** Kept under its old name for the tests that read it: the folder holding golden/ and configs/. */
export const SHARED_DIR: string = FIXTURES_DIR;

/** A golden fixture folder (tiny, small, ragged, yarn, int4). */
export const golden = (name: string): string => join(FIXTURES_DIR, 'golden', name);
/** A production config (kimi-k2.json, deepseek-v3.json). */
export const sharedConfig = (file: string): string => join(FIXTURES_DIR, 'configs', file);
export const GOLDEN_NAMES = ['tiny', 'small', 'ragged', 'yarn'] as const;
