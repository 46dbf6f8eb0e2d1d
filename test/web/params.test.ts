/**
 * The page's URL parameters (web/params.ts): a value that does not parse is an InputError naming the parameter
 * (the page puts it in data-error), never the default silently (`temperature=abc` used to generate at 1).
 */
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { parseRunParams } from '../../web/params.js';

const parse = (q: string): ReturnType<typeof parseRunParams> => parseRunParams(new URLSearchParams(q));

describe('page URL parameters', () => {
  it('parses a full run', () => {
    const r = parse('model=http://h/m/&prompt-tokens=1,2,3&max-tokens=16&temperature=0&top-k=5&top-p=0.9&seed=7&ignore-eos=1&backend=cpu&ctx-size=64&connect-timeout=0.3&idle-timeout=2&warmup=1&gpu-memory=12.5');
    expect(r).toEqual({
      model: 'http://h/m/',
      backend: 'cpu',
      ctxSize: 64,
      gpuMemoryMiB: 12.5,
      prompt: [1, 2, 3],
      request: { maxTokens: 16, temperature: 0, topK: 5, topP: 0.9, seed: 7, ignoreEos: true },
      http: { connectTimeoutMs: 300, idleTimeoutMs: 2000 },
      warmup: true,
    });
    expect(parse('model=m').warmup).toBe(false);
    expect(parse('model=m').gpuMemoryMiB).toBeUndefined();
    expect(parse('model=m&gpu-memory=').gpuMemoryMiB).toBeUndefined(); // an empty field: no cap
    expect(parse('model=m&gpu-memory=0.25').gpuMemoryMiB).toBe(0.25);
    expect(parse('model=m&gpu-memory=2048').gpuMemoryMiB).toBe(2048);
    expect(parse('model=m&prompt=hi').request).toEqual({ maxTokens: undefined, temperature: undefined, topK: undefined, topP: undefined, seed: undefined, ignoreEos: false });
  });

  const bad: [string, string][] = [
    ['temperature=abc', 'temperature'],
    ['temperature=-1', 'temperature'],
    ['max-tokens=-3', 'max-tokens'],
    ['max-tokens=2.5', 'max-tokens'],
    ['top-k=x', 'top-k'],
    ['top-p=1.5', 'top-p'],
    ['top-p=0', 'top-p'],
    ['seed=NaN', 'seed'],
    ['ctx-size=0', 'ctx-size'],
    ['connect-timeout=0', 'connect-timeout'],
    ['idle-timeout=soon', 'idle-timeout'],
    ['backend=gpu', 'backend'],
    ['ignore-eos=yes', 'ignore-eos'],
    ['warmup=twice', 'warmup'],
    ['gpu-memory=0', 'gpu-memory'],
    ['gpu-memory=-64', 'gpu-memory'],
    ['gpu-memory=lots', 'gpu-memory'],
    ['gpu-memory=1e999', 'gpu-memory'],
    ['prompt-tokens=1,a,3', 'prompt-tokens'],
  ];
  for (const [q, key] of bad) {
    it(`${q} is an InputError naming ${key}`, () => {
      let err: unknown;
      try {
        parse(`model=http://h/m/&${q}`);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toContain(key);
      expect((err as Error).message).toContain(`'${q.split('=')[1]}'`);
    });
  }

  it('a missing model is an InputError', () => {
    expect(() => parse('prompt=hi')).toThrow(/model/);
  });
});
