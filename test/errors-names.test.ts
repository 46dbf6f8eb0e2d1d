/**
 * Error names survive minification: the built page is minified, and a class's own name becomes "w" there, so
 * messages read "w: ..." unless every error class carries its name as a string (src/errors.ts `errorName`).
 * Checked on the source module and on the module as esbuild minifies it (the minifier Vite uses).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { transformWithEsbuild } from 'vite';
import { describe, expect, it } from 'vitest';
import * as errors from '../src/errors.js';

type ErrorClass = (new (...args: never[]) => Error) & { errorName?: string };

/** The exported classes that extend WebmoeError (and the base itself), by export name. */
function errorClasses(mod: Record<string, unknown>): [string, ErrorClass][] {
  const base = mod.WebmoeError as ErrorClass;
  return Object.entries(mod).filter((e): e is [string, ErrorClass] => typeof e[1] === 'function' && (e[1] === base || e[1].prototype instanceof base));
}

/** An instance: every constructor accepts strings/numbers in its leading arguments. */
const make = (cls: ErrorClass): Error => new (cls as unknown as new (...a: unknown[]) => Error)('x', 'y', 'z');

describe('error class names', () => {
  it('every exported error class declares errorName equal to its class name, and instances report it', () => {
    const classes = errorClasses(errors as unknown as Record<string, unknown>);
    expect(classes.length).toBeGreaterThanOrEqual(12);
    for (const [exported, cls] of classes) {
      expect(Object.prototype.hasOwnProperty.call(cls, 'errorName'), `${exported} declares static errorName`).toBe(true);
      expect(cls.errorName).toBe(exported);
      expect(make(cls).name).toBe(exported);
    }
    expect(errors.oneLineMessage(new errors.FormatError('bad', 'f.bin'))).toBe('FormatError: f.bin: bad');
  });

  it('names survive minification (esbuild, as in the built page)', async () => {
    const file = fileURLToPath(new URL('../src/errors.ts', import.meta.url));
    // errors.ts imports nothing, so a minifying transform of the one module is what the page bundle holds
    const { code } = await transformWithEsbuild(readFileSync(file, 'utf8'), file, { minify: true, format: 'esm', target: 'es2022' });
    const mod = (await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`)) as Record<string, unknown>;
    const classes = errorClasses(mod);
    expect(classes.length).toBe(errorClasses(errors as unknown as Record<string, unknown>).length);
    // the minifier did rename the classes: constructor.name no longer says what the error is
    expect(classes.some(([exported, cls]) => cls.name !== exported)).toBe(true);
    for (const [exported, cls] of classes) expect(make(cls).name).toBe(exported);
  });
});
