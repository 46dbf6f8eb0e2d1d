#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so `npx webmoe` always runs the current sources (no stale build).
import { register } from 'tsx/esm/api';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

register();
const here = dirname(fileURLToPath(import.meta.url));
await import(join(here, '..', 'src', 'cli.ts'));
