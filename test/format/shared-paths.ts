/**
 * Where the shared fixtures live: $WEBMOE_SHARED_DIR, else shared/ in the checkout, else ../shared beside it.
 * Tests that need them skip (with the reason in their name) when none is found.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export const SHARED_DIR: string | undefined = [process.env.WEBMOE_SHARED_DIR, join(REPO, 'shared'), join(REPO, '../shared')].find(
  (d): d is string => d !== undefined && existsSync(join(d, 'golden')) && existsSync(join(d, 'configs')),
);

/** A golden fixture folder (tiny, small, ragged, yarn). */
export const golden = (name: string): string => join(SHARED_DIR ?? '/nonexistent', 'golden', name);
/** A production config (kimi-k2.json, deepseek-v3.json). */
export const sharedConfig = (file: string): string => join(SHARED_DIR ?? '/nonexistent', 'configs', file);
export const GOLDEN_NAMES = ['tiny', 'small', 'ragged', 'yarn'] as const;
