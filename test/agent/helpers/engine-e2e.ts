/**
 * End to end on webmoe's real engine, shared by engine-e2e.test.ts (cpu backend) and engine-e2e.gpu.test.ts
 * (webgpu backend on the vitest project's adapter):
 *   - the server contract (server-contract.ts) with the engine on a toy checkpoint that has a tokenizer;
 *   - a disconnecting client cancels its generation in the engine (tokens counted at the engine);
 *   - `webmoe agent --model` against the local engine (in process, through the CLI command);
 *   - a real `webmoe serve` child process on 127.0.0.1 (`--port 0`, URL parsed from stdout): models list,
 *     streaming, `webmoe agent --endpoint` as a second child process against it, cancellation on disconnect
 *     (its log line), and SIGINT with a generation in flight stops it with exit 0.
 * A toy model emits random tokens, so everything here asserts on protocol, streaming, token counts and finish
 * reasons, never on text.
 *
 * The checkpoint is MINI_TOY: the `tiny` toy's widths with a 320-entry vocabulary (so it gets the byte-level
 * tokenizer) and room for a 16k context. The agent's first prompt (system prompt + the six tool definitions
 * rendered as text by the byte-level tokenizer) is ~3400 tokens; on the `small` toy one such prefill takes
 * ~64 s on the cpu backend, ~137 s on lavapipe and ~415 s on SwiftShader, against ~7 s / ~8 s / ~62 s here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultAgentSystemPrompt } from '../../../src/agent/agent.js';
import type { LocalTextModel } from '../../../src/agent/local-backend.js';
import { startServer } from '../../../src/agent/server.js';
import { Toolbox } from '../../../src/agent/tools.js';
import { agentCliCommand } from '../../../src/cli/agent.js';
import { interactiveModel } from '../../../src/cli/load-model.js';
import { renderChat } from '../../../src/text/chat-template.js';
import { loadTextModel, requireTokenizer, type Backend, type TextModel } from '../../../src/engine/text-model.js';
import type { AdapterChoice, GpuContext } from '../../../src/gpu/device.js';
import { folderFiles } from '../../../src/model/node-checkpoint.js';
import { toyConfigJson, writeToyCheckpoint } from '../../../src/model/toy.js';
import { describeServerContract } from './server-contract.js';
import { tempWorkspace } from './workspace.js';
import { Sink } from '../../helpers/sink.js';

/** `tiny` widths (2 layers, hidden 64, 8 experts top-2) with a byte-level tokenizer and a 16k context. */
export const MINI_TOY = { ...toyConfigJson('tiny'), vocab_size: 320, max_position_embeddings: 16384 };
/** The model id `webmoe serve` derives from the folder name. */
export const MINI_ID = 'toy-mini';
const BIN = join(import.meta.dirname, '..', '..', '..', 'bin', 'webmoe.js');

export interface EngineE2EOptions {
  backend: Backend;
  /** webgpu: the device for in-process models, and the adapter the child processes pick. */
  gpu?: () => Promise<GpuContext>;
  adapter?: AdapterChoice;
  /** Also run the two extra agent runs (each one ~3400-token prefill). */
  agentRuns?: boolean;
}


/** The token count of the agent's first request, rendered locally: what the server must report as prompt_tokens. */
async function agentPromptTokens(model: LocalTextModel, task: string, ws: string): Promise<number> {
  const toolbox = await Toolbox.create(ws);
  const messages = [
    { role: 'system' as const, content: defaultAgentSystemPrompt() },
    { role: 'user' as const, content: task },
  ];
  return renderChat(model.tokenizer, messages, { tools: toolbox.definitions }).tokens.length;
}

/** A `webmoe serve` child process. */
export interface ServeProcess {
  child: ChildProcess;
  /** e.g. http://127.0.0.1:41234/v1 */
  baseURL: string;
  modelId: string;
  /** stdout lines so far (the URL line, then one per request). */
  lines: string[];
  stderr(): string;
  /** Resolves with the first stdout line matching `re` (rejects after `ms`). */
  waitForLine(re: RegExp, ms: number): Promise<string>;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited: Promise<number | string>;
}

/** Starts `webmoe serve ... --port 0` and waits for the line with its URL. */
export async function startServeProcess(args: string[], timeoutMs = 120_000): Promise<ServeProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const watchers = new Set<() => void>();
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of watchers) w();
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const waitForLine = (re: RegExp, ms: number): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = lines.find((l) => re.test(l));
        if (hit !== undefined) {
          done();
          resolve(hit);
        }
        return hit !== undefined;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no line matching ${re} within ${ms} ms; stdout:\n${lines.join('\n')}\nstderr:\n${stderr}`));
      }, ms);
      const onExit = (): void => {
        setTimeout(() => {
          if (check()) return;
          done();
          reject(new Error(`webmoe serve exited before printing ${re}; stdout:\n${lines.join('\n')}\nstderr:\n${stderr}`));
        }, 50);
      };
      const done = (): void => {
        clearTimeout(timer);
        watchers.delete(watcher);
        child.off('exit', onExit);
      };
      const watcher = (): void => void check();
      watchers.add(watcher);
      child.once('exit', onExit);
      check();
    });
  try {
    const first = await waitForLine(/^webmoe serving '.*' at http:\/\/\S+\/v1 /, timeoutMs);
    const m = /^webmoe serving '(.*)' at (http:\/\/\S+\/v1) /.exec(first)!;
    return { child, baseURL: m[2]!, modelId: m[1]!, lines, stderr: () => stderr, waitForLine, exited };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

/** Runs `webmoe ARGS...` as a child process to the end. */
export function runCli(args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('close', (code, signal) => resolve({ code: code ?? signal ?? -1, stdout, stderr }));
  });
}

const TOTALS = /answered after (\d+) turns?; 0 summaries; (\d+) prompt \+ (\d+) completion tokens/;

export function describeEngineE2E(label: string, opts: EngineE2EOptions): void {
  const { backend } = opts;
  const adapterArgs = opts.adapter ? ['--adapter', opts.adapter] : [];
  let base: string;
  let dir: string;
  let model: (TextModel & LocalTextModel) | undefined;

  /** The checkpoint (written once) and one model over it, shared by every block of the file. */
  let ready: Promise<TextModel & LocalTextModel> | undefined;
  const load = (): Promise<TextModel & LocalTextModel> =>
    (ready ??= (async () => {
      base = await mkdtemp(join(tmpdir(), 'webmoe-e2e-'));
      dir = join(base, MINI_ID);
      await writeToyCheckpoint(MINI_TOY, dir, { seed: 1 });
      const gpu = opts.gpu ? await opts.gpu() : undefined;
      model = requireTokenizer(await loadTextModel(folderFiles(dir), { backend, gpu }));
      return model;
    })());

  afterAll(async () => {
    await model?.close();
    if (base) await rm(base, { recursive: true, force: true });
  });

  describeServerContract(`real engine (${label}), toy checkpoint`, async () => ({ model: await load(), modelId: MINI_ID }));

  describe(`engine end to end (${label})`, () => {
    beforeAll(async () => {
      await load();
    });

    it('a client that disconnects mid-stream cancels its generation in the engine (the model as webmoe serve serves it)', async () => {
      const m = await load();
      const tracked = interactiveModel(m);
      let generated = 0;
      const counting: LocalTextModel = {
        ...tracked.model,
        generate: async function* (prompt, o) {
          for await (const ev of tracked.model.generate(prompt, o)) {
            if (ev.type === 'token') generated++;
            yield ev;
          }
        },
      };
      const server = await startServer({ model: counting, modelId: MINI_ID, port: 0 });
      try {
        const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
        const ac = new AbortController();
        const maxTokens = 3000;
        const stream = await client.chat.completions.create(
          { model: MINI_ID, messages: [{ role: 'user', content: 'Count to a million.' }], max_tokens: maxTokens, temperature: 0, stream: true },
          { signal: ac.signal },
        );
        let content = 0;
        for await (const c of stream) {
          expect(c.choices[0]?.finish_reason ?? null).toBeNull(); // greedy on this toy loops without EOS
          if (c.choices[0]?.delta.content) content++;
          if (content === 3) break; // leaving the loop aborts the request
        }
        ac.abort();
        expect(await tracked.idle(30_000)).toBe(true); // the engine's generator has finished...
        expect(generated).toBeGreaterThanOrEqual(3);
        expect(generated).toBeLessThan(maxTokens / 2); // ...long before max_tokens
        // and the server goes on serving
        const r = await client.chat.completions.create({ model: MINI_ID, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
        expect(r.usage?.completion_tokens).toBeLessThanOrEqual(2);
      } finally {
        await server.close();
      }
    });

    it.runIf(opts.agentRuns !== false)('`webmoe agent --model` runs the agent on the local engine', async () => {
      const t = await tempWorkspace();
      try {
        const out = new Sink();
        const err = new Sink();
        const task = 'List the files in the workspace.';
        const r = await agentCliCommand({ task, workspace: t.ws, model: dir, backend, adapter: opts.adapter, maxTurns: 2, maxTokens: 8, temperature: 0 }, { out, err });
        if (r === 'interrupted') throw new Error('interrupted');
        // random tokens contain no tool-call markers: one turn that ends the run
        expect(r).toEqual({ reason: 'answered', turns: 1, summaries: 0, promptTokens: await agentPromptTokens(model!, task, t.ws), completionTokens: expect.any(Number) });
        expect(r.completionTokens).toBeGreaterThanOrEqual(1);
        expect(r.completionTokens).toBeLessThanOrEqual(8);
        expect(out.text.endsWith('    [done after 1 turn]\n')).toBe(true);
        expect(err.text).toMatch(new RegExp(`^webmoe: ${MINI_ID} on .*; context 4096\\n`)); // min(max_position_embeddings, 4096)
        expect(err.text).toMatch(TOTALS);
      } finally {
        await t.cleanup();
      }
    });
  });

  describe(`a webmoe serve process (${label})`, () => {
    let serve: ServeProcess | undefined;
    let client: OpenAI;

    beforeAll(async () => {
      await load();
      serve = await startServeProcess(['--model', dir, '--backend', backend, ...adapterArgs, '--ctx-size', '16384']);
      client = new OpenAI({ baseURL: serve.baseURL, apiKey: 'x', maxRetries: 0 });
    });
    afterAll(async () => {
      if (serve && serve.child.exitCode === null) {
        serve.child.kill('SIGKILL');
        await serve.exited;
      }
    });

    it('listens on 127.0.0.1 under the folder name and reports the load on stderr', async () => {
      expect(serve!.baseURL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      expect(serve!.modelId).toBe(MINI_ID);
      expect((await client.models.list()).data.map((m) => ({ id: m.id, len: (m as unknown as { max_model_len: number }).max_model_len }))).toEqual([{ id: MINI_ID, len: 16384 }]);
      expect(serve!.stderr()).toMatch(new RegExp(`webmoe: ${MINI_ID} on .*; context 16384\\n`));
    });

    it('streams a chat with usage, within max_tokens', async () => {
      const messages = [{ role: 'user' as const, content: 'Say hello.' }];
      const stream = await client.chat.completions.create({ model: MINI_ID, messages, max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true } });
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      const finishes = chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter((f) => f !== null);
      expect(finishes).toEqual(['length']); // greedy on this toy never emits EOS in 6 tokens
      const usage = chunks[chunks.length - 1]?.usage;
      expect(usage).toEqual({ prompt_tokens: renderChat(model!.tokenizer, messages).tokens.length, completion_tokens: 6, total_tokens: expect.any(Number) });
      await serve!.waitForLine(/POST \/v1\/chat\/completions stream messages=1 tools=0$/, 1000);
    });

    it.runIf(opts.agentRuns !== false)('`webmoe agent --endpoint` runs the agent through the HTTP backend', async () => {
      const t = await tempWorkspace();
      try {
        const task = 'Read README.md.';
        const r = await runCli(['agent', '--task', task, '--workspace', t.ws, '--endpoint', serve!.baseURL, '--remote-model', MINI_ID, '--max-turns', '2', '--max-tokens', '8', '--temperature', '0']);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout.endsWith('    [done after 1 turn]\n')).toBe(true);
        const totals = TOTALS.exec(r.stderr);
        expect(totals, r.stderr).not.toBeNull();
        const [, turns, prompt, completion] = totals!.map(Number);
        expect(turns).toBe(1);
        // the server rendered the same template with the same tools as the local backend would
        expect(prompt).toBe(await agentPromptTokens(model!, task, t.ws));
        expect(completion).toBeGreaterThanOrEqual(1);
        expect(completion).toBeLessThanOrEqual(8);
        await serve!.waitForLine(/POST \/v1\/chat\/completions stream messages=2 tools=6$/, 1000);
      } finally {
        await t.cleanup();
      }
    });

    it('cancels the generation of a client that disconnects', async () => {
      const ac = new AbortController();
      // 16 000 greedy tokens would take far longer than the wait below on any backend
      const stream = await client.chat.completions.create(
        { model: MINI_ID, messages: [{ role: 'user', content: 'Count to a million.' }], max_tokens: 16_000, temperature: 0, stream: true },
        { signal: ac.signal },
      );
      let content = 0;
      for await (const c of stream) {
        expect(c.choices[0]?.finish_reason ?? null).toBeNull();
        if (c.choices[0]?.delta.content && ++content === 3) break;
      }
      ac.abort();
      await serve!.waitForLine(/client disconnected; generation aborted$/, 10_000);
      const r = await client.chat.completions.create({ model: MINI_ID, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
      expect(r.choices[0]?.finish_reason).toMatch(/^(length|stop)$/);
    });

    it('stops cleanly on SIGINT with a generation in flight: exit 0', async () => {
      const stream = await client.chat.completions.create({ model: MINI_ID, messages: [{ role: 'user', content: 'Go on forever.' }], max_tokens: 16_000, temperature: 0, stream: true });
      const it = stream[Symbol.asyncIterator]();
      await it.next();
      serve!.child.kill('SIGINT');
      // the open stream is cut (the client sees an error or an early end), and the process exits 0
      await (async () => {
        for (;;) if ((await it.next()).done) return;
      })().catch(() => undefined);
      expect(await serve!.exited).toBe(0);
      expect(serve!.stderr()).toMatch(/webmoe: server stopped\n$/);
    });
  });
}
