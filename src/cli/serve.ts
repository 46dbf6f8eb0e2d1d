/**
 * `webmoe serve --model DIR [--port P] [--host 127.0.0.1] [--name ID] [--backend webgpu|cpu] [--adapter A]
 *   [--ctx-size N] [--allow-host NAME]... [--allow-origin ORIGIN]... [--max-sequences N] [--max-queue N]`
 *
 * Loads the checkpoint (a progress bar on stderr), then serves it over an OpenAI-compatible HTTP API
 * (src/agent/server.ts): POST /v1/chat/completions, POST /v1/completions, GET /v1/models. The first line on
 * stdout is `webmoe serving 'ID' at http://HOST:PORT/v1 (...)` (with `--port 0` the port the system chose), then
 * one line per request. SIGINT / SIGTERM stop it cleanly: stop listening, drop open connections (which aborts
 * their generations), wait for the engine to finish its current step, free the model, exit 0. A second Ctrl-C
 * while stopping kills the process.
 */
import type { Command } from 'commander';
import { modelIdFromDir, serveCommand, type Out } from '../agent/cli-commands.js';
import type { RunningServer } from '../agent/server.js';
import { requireTokenizer, type Backend } from '../engine/text-model.js';
import { InputError, TokenizerError } from '../errors.js';
import type { AdapterChoice } from '../gpu/device.js';
import { intArg, interactiveModel, loadCliModel, modelLoadOptions } from './load-model.js';

export interface ServeCliOptions {
  model: string;
  port?: number;
  host?: string;
  /** The model id clients use (default: the checkpoint folder's name). */
  name?: string;
  backend?: Backend;
  adapter?: AdapterChoice;
  ctxSize?: number;
  /** `--gpu-memory MIB`: expert offloading under this budget. */
  gpuMemory?: number;
  /** `--allow-host NAME` (repeatable): Host names accepted besides loopback and --host. */
  allowHost?: string[];
  /** `--allow-origin ORIGIN` (repeatable): web origins that may call the server (CORS). */
  allowOrigin?: string[];
  /** `--max-sequences N`: generations decoded together (webgpu; default 8). */
  maxSequences?: number;
  /** `--max-queue N`: requests that may wait for a sequence; beyond it 503 (default 64). */
  maxQueue?: number;
}

export const DEFAULT_MAX_SEQUENCES = 8;

export const DEFAULT_PORT = 8000;
export const DEFAULT_HOST = '127.0.0.1';

export interface ServeIo {
  out?: Out;
  err?: Out;
  /** Stops the server when fired (the CLI wires SIGINT / SIGTERM to it once the server listens). */
  stop: AbortSignal;
  /** Called once the server listens. */
  onListening?: (server: RunningServer) => void;
}

export function registerServe(program: Command): void {
  const cmd = program
    .command('serve')
    .description('serve a checkpoint over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models)')
    .requiredOption('--model <dir>', 'checkpoint folder (config.json + *.safetensors + a tokenizer), or an http(s) URL of one')
    .option('--port <p>', `TCP port; 0 picks a free one (printed) (default: ${DEFAULT_PORT})`, intArg('port', 0, 65535))
    .option('--host <addr>', `address to listen on; anything but loopback exposes the model to the network (default: ${DEFAULT_HOST})`)
    .option('--name <id>', "the model id clients pass as 'model' (default: the checkpoint folder's name)")
    .option('--allow-host <name>', 'also answer requests whose Host header is NAME (repeatable; loopback names and the --host address are always accepted)', collect, [])
    .option('--allow-origin <origin>', "let web pages from ORIGIN (e.g. http://localhost:5173, or '*') call the server: CORS headers and preflights (repeatable; other origins get 403)", collect, [])
    .option('--max-sequences <n>', `concurrent requests decoded together in batched steps, each with its own --ctx-size of cache (webgpu; default ${DEFAULT_MAX_SEQUENCES}; 1 = one at a time)`, intArg('max-sequences', 1, 64))
    .option('--max-queue <n>', 'requests that may wait for a free sequence; more get 503 (default 64)', intArg('max-queue', 0, 1_000_000));
  for (const o of modelLoadOptions()) cmd.addOption(o);
  cmd.action(async (opts: ServeCliOptions) => {
    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    try {
      await serveCliCommand(opts, {
        stop: stop.signal,
        // only once listening: during the load, Ctrl-C keeps its default (kill the process)
        onListening: () => {
          process.once('SIGINT', onSignal);
          process.once('SIGTERM', onSignal);
        },
      });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  });
}

/** What `webmoe serve` does once arguments are parsed: resolves after the server has stopped and the model is freed. */
export async function serveCliCommand(opts: ServeCliOptions, io: ServeIo): Promise<void> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  const host = opts.host ?? DEFAULT_HOST;
  if (!host.trim()) throw new InputError('--host is empty (use e.g. 127.0.0.1, or 0.0.0.0 for every interface)', 'host');
  const modelId = opts.name ?? modelIdFromDir(opts.model);
  if (!modelId.trim()) throw new InputError('--name is empty', 'name');
  const loaded = await loadCliModel(
    {
      model: opts.model,
      backend: opts.backend,
      adapter: opts.adapter,
      ctxSize: opts.ctxSize,
      gpuMemory: opts.gpuMemory,
      maxSequences: opts.maxSequences ?? ((opts.backend ?? 'webgpu') === 'webgpu' ? DEFAULT_MAX_SEQUENCES : undefined),
      maxQueue: opts.maxQueue,
      beforeWeights: (ckpt, tok) => {
        if (!tok) throw new TokenizerError(`${ckpt.name} has no tokenizer (tokenizer.json or tiktoken.model): serve needs one for the chat template`);
      },
    },
    err,
  );
  try {
    err.write(`webmoe: ${loaded.describe()}\n`);
    const tracked = interactiveModel(requireTokenizer(loaded.model));
    const server = await serveCommand({
      model: tracked.model, modelId, host, port: opts.port ?? DEFAULT_PORT, out, signal: io.stop, allowHosts: opts.allowHost, allowOrigins: opts.allowOrigin,
    });
    io.onListening?.(server);
    await untilAborted(io.stop);
    await server.close();
    // closing dropped the connections, which aborts their generations at the engine's next step
    if (!(await tracked.idle(10_000))) err.write('webmoe: a generation did not stop within 10 s; freeing the model anyway\n');
    err.write('webmoe: server stopped\n');
  } finally {
    await loaded.close();
  }
}

/** Commander's accumulator for a repeatable option. */
function collect(value: string, previous: string[]): string[] {
  if (!value.trim()) throw new InputError('--allow-host / --allow-origin need a value', 'allow');
  return [...previous, value];
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
