import http from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventPrinter, agentCommand, defaultRemoteModel, modelIdFromDir, remoteBackend, serveCommand } from '../../src/agent/cli-commands.js';
import { agentCliCommand } from '../../src/cli/agent.js';
import { KIMI_SPECIALS } from '../../src/text/chat-template.js';
import { InputError } from '../../src/errors.js';
import { ScriptedBackend } from './helpers/scripted-backend.js';
import { ToyModel, kimiByteTokenizer } from './helpers/toy-model.js';
import type { TempWorkspace } from './helpers/workspace.js';
import { tempWorkspace } from './helpers/workspace.js';

class Collector {
  text = '';
  constructor(
    readonly isTTY = false,
    readonly columns?: number,
  ) {}
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

let t: TempWorkspace;
beforeEach(async () => {
  t = await tempWorkspace();
});
afterEach(async () => t.cleanup());

describe('agentCommand', () => {
  it('prints text as it streams, tool traffic indented, summaries and the end noted', async () => {
    const backend = new ScriptedBackend([
      { text: 'Looking around.', calls: [{ name: 'list_dir', args: {} }, { name: 'read_file', args: { path: '/etc/passwd' } }] },
      { kind: 'summary', text: 'Task: look. Next step: answer.', usage: { promptTokens: 10, completionTokens: 5 } },
      { text: 'All done.\n', usage: { promptTokens: 20, completionTokens: 3 } },
    ]);
    const out = new Collector();
    const result = await agentCommand({ backend, task: 'Look around.', workspace: t.ws, out, summarizeAtTokens: 1 });
    const lines = out.text.split('\n');
    expect(lines.slice(0, 7)).toEqual([
      'Looking around.',
      '    → list_dir {}',
      '    → read_file {"path":"/etc/passwd"}',
      '    ← dangling@',
      '      filelink@',
      '      link@',
      "    ✗ error: absolute path '/etc/passwd' refused: use a path relative to the workspace root",
    ]);
    expect(lines[7]).toMatch(/^ {4}\[context compacted: ~\d+ → ~\d+ tokens\]$/);
    expect(lines.slice(8)).toEqual(['All done.', '    [done after 2 turns]', '']);
    expect(result).toEqual({ reason: 'answered', turns: 2, summaries: 1, promptTokens: 30, completionTokens: 8 });
  });

  it('dims tool traffic on a terminal', async () => {
    const backend = new ScriptedBackend([{ calls: [{ name: 'list_dir', args: {} }] }, { text: 'ok' }]);
    const out = new Collector(true);
    await agentCommand({ backend, task: 'x', workspace: t.ws, out });
    expect(out.text).toContain('\x1b[2m    → list_dir {}\x1b[22m\n');
  });
});

describe('serveCommand', () => {
  it('serves a model, prints its URL, and stops when the signal fires', async () => {
    const model = new ToyModel(kimiByteTokenizer(), () => `pong${KIMI_SPECIALS.imEnd}`);
    const out = new Collector();
    const stop = new AbortController();
    const server = await serveCommand({ model, modelId: 'toy', port: 0, out, signal: stop.signal });
    expect(out.text).toContain(`webmoe serving 'toy' at ${server.url}/v1`);
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const r = await client.chat.completions.create({ model: 'toy', messages: [{ role: 'user', content: 'ping' }] });
    expect(r.choices[0]?.message.content).toBe('pong');
    expect(out.text).toMatch(/POST \/v1\/chat\/completions json messages=1 tools=0\n/);
    stop.abort();
    await server.close(); // the same close the signal started
    await expect(fetch(`${server.url}/v1/models`)).rejects.toThrow();
  });
});

describe('helpers for the CLI', () => {
  it('modelIdFromDir takes the checkpoint folder name', () => {
    expect(modelIdFromDir('/models/Kimi-K2-toy/')).toBe('Kimi-K2-toy');
  });

  it('remoteBackend reads the key from the named variable and validates the endpoint', () => {
    expect(() => remoteBackend({ endpoint: 'http://127.0.0.1:1/v1', remoteModel: 'm', apiKeyEnv: 'NOPE', env: {} })).toThrow(InputError);
    expect(() => remoteBackend({ endpoint: 'not a url', remoteModel: 'm' })).toThrow(/is not a URL/);
    const b = remoteBackend({ endpoint: 'http://127.0.0.1:1/v1', remoteModel: 'm', apiKeyEnv: 'KEY', env: { KEY: 'sk-123' } });
    expect(b.client.apiKey).toBe('sk-123');
    expect(b.client.baseURL).toBe('http://127.0.0.1:1/v1');
  });
});

describe('tool results in the terminal', () => {
  const call = { id: 'c1', name: 'read_file', arguments: JSON.stringify({ path: 'x'.repeat(500) }) };
  const long = `${'y'.repeat(3000)}\nshort line`;

  it('are cut by width as well as by lines', () => {
    const tty = new Collector(true, 80);
    const p = new EventPrinter(tty, false);
    p.print({ type: 'tool_call', call, turn: 1 });
    p.print({ type: 'tool_result', call, ok: true, content: long, turn: 1 });
    const lines = tty.text.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80);
    expect(lines[1]).toMatch(/^ {4}← y+ … \(\+\d+ chars\)$/);
    expect(Number(/\+(\d+) chars/.exec(lines[1]!)![1]) + lines[1]!.indexOf(' …') - 6).toBe(3000); // the count is exact
    expect(lines[2]).toBe('      short line');
  });

  it('use 160 columns when the output is not a terminal', () => {
    const out = new Collector(false);
    new EventPrinter(out, false).print({ type: 'tool_result', call, ok: false, content: long, turn: 1 });
    const [first] = out.text.split('\n');
    expect(first!.length).toBeLessThanOrEqual(160);
    expect(first).toMatch(/^ {4}✗ y+ … \(\+\d+ chars\)$/);
  });
});

/** A stand-in server whose GET /v1/models lists `ids`. */
async function modelsServer(ids: string[]): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(req.url === '/v1/models' ? { object: 'list', data: ids.map((id) => ({ id, object: 'model', created: 0, owned_by: 'x' })) } : {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('--endpoint without --remote-model', () => {
  it("uses the server's only model", async () => {
    const model = new ToyModel(kimiByteTokenizer(), () => `Nothing to do.${KIMI_SPECIALS.imEnd}`);
    const server = await serveCommand({ model, modelId: 'only-one', port: 0, out: new Collector(), logRequests: false });
    try {
      expect(await defaultRemoteModel({ endpoint: `${server.url}/v1` })).toBe('only-one');
      const out = new Collector();
      const err = new Collector();
      const r = await agentCliCommand({ task: 'Do nothing.', workspace: t.ws, endpoint: `${server.url}/v1`, maxTurns: 1 }, { out, err, env: {} });
      expect(r).toMatchObject({ reason: 'answered', turns: 1 });
      expect(err.text).toContain(`webmoe: agent on ${server.url}/v1 (model 'only-one')\n`);
      expect(out.text).toContain('Nothing to do.');
    } finally {
      await server.close();
    }
  });

  it('is a one-line InputError when the server lists several models, none, or cannot be reached', async () => {
    const several = await modelsServer(['kimi-k2', 'kimi-k2.5']);
    const none = await modelsServer([]);
    try {
      await expect(defaultRemoteModel({ endpoint: several.url })).rejects.toThrow(InputError);
      await expect(defaultRemoteModel({ endpoint: several.url })).rejects.toThrow(/^--endpoint needs --remote-model NAME: the server lists 2 models \(kimi-k2, kimi-k2\.5\); choose one$/);
      await expect(defaultRemoteModel({ endpoint: none.url })).rejects.toThrow(/^--endpoint needs --remote-model NAME: the server lists no models under \/v1\/models$/);
    } finally {
      await several.close();
      await none.close();
    }
    const closed = defaultRemoteModel({ endpoint: 'http://127.0.0.1:9/v1' });
    await expect(closed).rejects.toThrow(InputError);
    await expect(closed).rejects.toThrow(/^--endpoint needs --remote-model NAME: could not read the server's models to choose one \(GET http:\/\/127\.0\.0\.1:9\/v1\/models: [^\n]+\)$/);
    await expect(defaultRemoteModel({ endpoint: 'nope' })).rejects.toThrow(/--endpoint 'nope' is not a URL/);
  });
});
