/**
 * The agent and `webmoe serve` end to end on webmoe's real engine, cpu backend (the f64 reference; needs no
 * adapter): see helpers/engine-e2e.ts. Plus the process-level behaviour of the two commands that does not
 * depend on the backend: SIGTERM, and typed errors as one line on stderr with exit code 2.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentCliCommand, type AgentCliOptions } from '../../src/cli/agent.js';
import { serveCliCommand, type ServeCliOptions } from '../../src/cli/serve.js';
import { ConfigError, InputError, TokenizerError } from '../../src/errors.js';
import { writeToyCheckpoint } from '../../src/model/toy.js';
import { describeEngineE2E, MINI_TOY, runCli, startServeProcess } from './helpers/engine-e2e.js';
import { Sink } from '../helpers/sink.js';

describeEngineE2E('cpu backend', { backend: 'cpu' });


describe('webmoe serve / agent as processes', () => {
  let base: string;
  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'webmoe-cli-'));
    await writeToyCheckpoint(MINI_TOY, join(base, 'mini'), { seed: 2 });
    await writeToyCheckpoint('tiny', join(base, 'no-tokenizer'), { seed: 2 });
    await writeFile(join(base, 'a-file'), 'x');
  });
  afterAll(async () => rm(base, { recursive: true, force: true }));
  const subst = (a: string): string =>
    a.replace('NO_TOKENIZER', join(base, 'no-tokenizer')).replace('MISSING', join(base, 'missing')).replace('MINI', join(base, 'mini')).replace('BASE', base);

  it('serve: --name sets the model id, --host is honoured, SIGTERM stops it with exit 0', async () => {
    const serve = await startServeProcess(['--model', join(base, 'mini'), '--backend', 'cpu', '--name', 'my-model', '--host', 'localhost']);
    try {
      expect(serve.modelId).toBe('my-model');
      expect(serve.baseURL).toMatch(/^http:\/\/localhost:\d+\/v1$/);
      const models = (await (await fetch(`${serve.baseURL}/models`)).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toEqual(['my-model']);
      serve.child.kill('SIGTERM');
      expect(await serve.exited).toBe(0);
      expect(serve.stderr()).toMatch(/webmoe: server stopped\n$/);
    } finally {
      serve.child.kill('SIGKILL');
    }
  });

  it.concurrent.each([
    [['serve', '--model', 'NO_TOKENIZER', '--backend', 'cpu'], /^webmoe: TokenizerError: no-tokenizer has no tokenizer .*serve needs one/],
    [['serve', '--model', 'MINI', '--port', '70000'], /^webmoe: InputError: --port must be an integer from 0 to 65535, got '70000'$/],
    [['agent', '--task', 'x', '--workspace', 'BASE'], /^webmoe: InputError: give exactly one of --model DIR .* or --endpoint URL/],
    [['agent', '--task', 'x', '--workspace', 'BASE/nope', '--model', 'MINI'], /^webmoe: InputError: --workspace .*nope does not exist/],
  ])('%j is a typed error: one line on stderr, exit 2', async (args, message) => {
    const r = await runCli(args.map(subst));
    expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    expect(r.stderr.trim()).toMatch(message);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
  });

  it.each([
    [{ model: 'MISSING', backend: 'cpu' }, ConfigError, /no config.json/],
    [{ model: 'MINI', backend: 'cpu', host: ' ' }, InputError, /--host is empty/],
    [{ model: 'MINI', backend: 'cpu', name: '' }, InputError, /--name is empty/],
  ] as const)('serve %j: %o', async (o, type, message) => {
    const opts = { ...o, model: subst(o.model) } as ServeCliOptions;
    const p = serveCliCommand(opts, { out: new Sink(), err: new Sink(), stop: new AbortController().signal });
    await expect(p).rejects.toThrow(type);
    await expect(p).rejects.toThrow(message);
  });

  const A = { task: 'x', workspace: 'BASE' };
  const E = { endpoint: 'http://127.0.0.1:9/v1', remoteModel: 'm' };
  it.each([
    [{ ...A, model: 'MINI', ...E }, /give exactly one of/],
    [{ ...A, endpoint: E.endpoint }, /--endpoint needs --remote-model/],
    [{ ...A, ...E, endpoint: 'not a url' }, /--endpoint 'not a url' is not a URL/],
    [{ ...A, ...E, backend: 'cpu' }, /--backend applies to --model/],
    [{ ...A, ...E, ctxSize: 100 }, /--ctx-size applies to --model/],
    [{ ...A, model: 'MINI', remoteModel: 'm' }, /--remote-model applies to --endpoint/],
    [{ ...A, model: 'MINI', apiKeyEnv: 'K' }, /--api-key-env applies to --endpoint/],
    [{ ...A, ...E, apiKeyEnv: 'WEBMOE_TEST_UNSET_KEY' }, /--api-key-env WEBMOE_TEST_UNSET_KEY: that environment variable is not set/],
    [{ ...A, task: ' ', model: 'MINI' }, /--task is empty/],
    [{ ...A, workspace: 'BASE/a-file', model: 'MINI' }, /--workspace .*a-file is not a directory/],
  ] as const)('agent %j is an InputError', async (o, message) => {
    const opts = { ...o, workspace: subst(o.workspace), ...('model' in o ? { model: subst(o.model) } : {}) } as AgentCliOptions;
    const p = agentCliCommand(opts, { out: new Sink(), err: new Sink(), env: {} });
    await expect(p).rejects.toThrow(InputError);
    await expect(p).rejects.toThrow(message);
  });

  it('agent on a checkpoint without a tokenizer is a TokenizerError before the weights load', async () => {
    const err = new Sink();
    await expect(agentCliCommand({ task: 'x', workspace: base, model: join(base, 'no-tokenizer'), backend: 'cpu' }, { out: new Sink(), err })).rejects.toThrow(TokenizerError);
    expect(err.text).toBe('');
  });

  it('--help describes both commands', async () => {
    const serve = await runCli(['serve', '--help']);
    expect(serve.code).toBe(0);
    for (const flag of ['--model', '--port', '--host', '--name', '--backend', '--adapter', '--ctx-size']) expect(serve.stdout).toContain(flag);
    const agent = await runCli(['agent', '--help']);
    expect(agent.code).toBe(0);
    for (const flag of ['--task', '--workspace', '--model', '--endpoint', '--remote-model', '--api-key-env', '--max-turns', '--summarize-at']) expect(agent.stdout).toContain(flag);
  });
});
