import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';

it('src/gpu/shaders.gen.ts is up to date with shaders/*.wgsl', () => {
  expect(() => execFileSync('npx', ['tsx', 'scripts/embed-shaders.ts', '--check'], { stdio: 'pipe' })).not.toThrow();
});
