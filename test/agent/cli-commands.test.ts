import OpenAI from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { agentCommand, modelIdFromDir, remoteBackend, serveCommand } from '../../src/agent/cli-commands.js';
import { KIMI_SPECIALS } from '../../src/engine/chat-template.js';
import { InputError } from '../../src/errors.js';
import { ScriptedBackend } from './helpers/scripted-backend.js';
import { ToyModel, kimiByteTokenizer } from './helpers/toy-model.js';
import type { TempWorkspace } from './helpers/workspace.js';
import { tempWorkspace } from './helpers/workspace.js';

class Collector {
  text = '';
  constructor(readonly isTTY = false) {}
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
