/**
 * What `webmoe serve` and `webmoe agent` do once src/cli.ts has parsed arguments and built the model or
 * backend. Nothing here reads argv or exits; output goes to the given stream.
 */
import path from 'node:path';
import OpenAI from 'openai';
import { InputError } from '../errors.js';
import { visibleControls } from '../text/visible-controls.js';
import type { AgentEvent, AgentOptions } from './agent.js';
import { runAgent } from './agent.js';
import { runSwarm } from './swarm.js';
import type { ChatBackend } from './backend.js';
import type { LocalTextModel } from './local-backend.js';
import { OpenAIBackend } from './openai-backend.js';
import type { RunningServer } from './server.js';
import { startServer } from './server.js';

/** Something to print to: process.stdout, or a test's collector. */
export interface Out {
  write(s: string): unknown;
  isTTY?: boolean;
  /** Terminal width (process.stdout.columns); tool results are cut to it. */
  columns?: number;
}

export interface ServeCommandOptions {
  model: LocalTextModel;
  /** `--name`, else use modelIdFromDir(--model). */
  modelId: string;
  host?: string;
  port?: number;
  /** `--allow-host` / `--allow-origin` (server.ts ServerOptions). */
  allowHosts?: readonly string[];
  allowOrigins?: readonly string[];
  out?: Out;
  /** Closes the server when fired (the CLI wires SIGINT/SIGTERM to it). */
  signal?: AbortSignal;
  /** Log one line per request (default true). */
  logRequests?: boolean;
}

/** Starts the server and prints where it listens; resolves once listening. */
export async function serveCommand(opts: ServeCommandOptions): Promise<RunningServer> {
  const out = opts.out ?? process.stdout;
  const server = await startServer({
    model: opts.model,
    modelId: opts.modelId,
    host: opts.host,
    port: opts.port,
    allowHosts: opts.allowHosts,
    allowOrigins: opts.allowOrigins,
    log: opts.logRequests === false ? undefined : (line) => out.write(`${new Date().toISOString()} ${line}\n`),
  });
  out.write(`webmoe serving '${opts.modelId}' at ${server.url}/v1 (OpenAI-compatible; Ctrl-C to stop)\n`);
  opts.signal?.addEventListener('abort', () => void server.close(), { once: true });
  return server;
}

/** The model id for a checkpoint folder: its name (`/models/Kimi-K2-toy/` → `Kimi-K2-toy`). */
export function modelIdFromDir(dir: string): string {
  return path.basename(path.resolve(dir));
}

export interface RemoteBackendOptions {
  /** `--endpoint`, e.g. http://host:8000/v1 */
  endpoint: string;
  /** `--remote-model` */
  remoteModel: string;
  /** `--api-key-env`: the name of the environment variable holding the key. */
  apiKeyEnv?: string;
  env?: Record<string, string | undefined>;
}

function apiKeyFrom(opts: { apiKeyEnv?: string; env?: Record<string, string | undefined> }): string | undefined {
  if (!opts.apiKeyEnv) return undefined;
  const apiKey = (opts.env ?? process.env)[opts.apiKeyEnv];
  if (!apiKey) throw new InputError(`--api-key-env ${opts.apiKeyEnv}: that environment variable is not set`, 'api-key-env');
  return apiKey;
}

function checkEndpoint(endpoint: string): void {
  try {
    new URL(endpoint);
  } catch {
    throw new InputError(`--endpoint '${endpoint}' is not a URL (expected e.g. http://127.0.0.1:8000/v1)`, 'endpoint');
  }
}

/** Builds the HTTP backend for `webmoe agent --endpoint URL --remote-model NAME [--api-key-env NAME]`. */
export function remoteBackend(opts: RemoteBackendOptions): OpenAIBackend {
  const apiKey = apiKeyFrom(opts);
  checkEndpoint(opts.endpoint);
  return new OpenAIBackend({ baseURL: opts.endpoint, model: opts.remoteModel, apiKey });
}

/**
 * `--endpoint` without `--remote-model`: the server's model, when it lists exactly one under GET /v1/models
 * (asked through the official openai client). Several, none, or no answer is an InputError saying to pass
 * --remote-model.
 */
export async function defaultRemoteModel(opts: Omit<RemoteBackendOptions, 'remoteModel'> & { signal?: AbortSignal }): Promise<string> {
  const apiKey = apiKeyFrom(opts);
  checkEndpoint(opts.endpoint);
  const client = new OpenAI({ baseURL: opts.endpoint, apiKey: apiKey ?? 'not-needed', maxRetries: 1, timeout: 30_000 });
  const need = '--endpoint needs --remote-model NAME';
  let ids: string[];
  try {
    ids = [];
    for await (const m of client.models.list({ signal: opts.signal })) ids.push(m.id);
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    const why = (err as Error).message?.split('\n')[0] ?? String(err);
    throw new InputError(`${need}: could not read the server's models to choose one (GET ${opts.endpoint.replace(/\/$/, '')}/models: ${why})`, 'remote-model');
  }
  if (ids.length === 1) return ids[0]!;
  if (ids.length === 0) throw new InputError(`${need}: the server lists no models under /v1/models`, 'remote-model');
  const shown = ids.slice(0, 5).join(', ') + (ids.length > 5 ? ', ...' : '');
  throw new InputError(`${need}: the server lists ${ids.length} models (${shown}); choose one`, 'remote-model');
}

export interface AgentCommandOptions extends Omit<AgentOptions, 'backend'> {
  /** `new LocalBackend(model)` for --model, `remoteBackend(...)` for --endpoint. */
  backend: ChatBackend;
  out?: Out;
  /** ANSI dim for tool traffic; default: out.isTTY. */
  color?: boolean;
}

export interface AgentCommandResult {
  reason: 'answered' | 'max_turns';
  turns: number;
  summaries: number;
  promptTokens: number;
  completionTokens: number;
}

/** Runs the agent and prints its event stream readably. */
export async function agentCommand(opts: AgentCommandOptions): Promise<AgentCommandResult> {
  const { backend, out = process.stdout, color, ...agentOpts } = opts;
  const printer = new EventPrinter(out, color ?? out.isTTY === true);
  const result: AgentCommandResult = { reason: 'answered', turns: 0, summaries: 0, promptTokens: 0, completionTokens: 0 };
  for await (const ev of runAgent({ ...agentOpts, backend })) {
    printer.print(ev);
    if (ev.type === 'summary') result.summaries++;
    if (ev.type === 'usage') {
      result.promptTokens += ev.promptTokens;
      result.completionTokens += ev.completionTokens;
    }
    if (ev.type === 'done') [result.reason, result.turns] = [ev.reason, ev.turns];
  }
  return result;
}

export interface SwarmCommandResult {
  subtasks: string[];
  agents: Array<{ folder: string; reason: 'answered' | 'max_turns'; turns: number }>;
  merge: { reason: 'answered' | 'max_turns'; turns: number };
  promptTokens: number;
  completionTokens: number;
}

/**
 * Runs an agent swarm (swarm.ts) and prints every agent's stream, each line prefixed with its agent (`[2] `,
 * `[merge] `), so N streams that arrive at once stay readable.
 */
export async function swarmCommand(opts: AgentCommandOptions & { parallel: number }): Promise<SwarmCommandResult> {
  const { backend, out = process.stdout, color, ...agentOpts } = opts;
  const outs = new Map<number | 'merge', PrefixedOut>();
  const printers = new Map<number | 'merge', EventPrinter>();
  let promptTokens = 0;
  let completionTokens = 0;
  const r = await runSwarm({
    ...agentOpts,
    backend,
    onEvent: (who, ev) => {
      let p = printers.get(who);
      if (!p) {
        const o = new PrefixedOut(out, `[${who}] `);
        outs.set(who, o);
        p = new EventPrinter(o, color ?? out.isTTY === true);
        printers.set(who, p);
      }
      p.print(ev);
      if (ev.type === 'usage') {
        promptTokens += ev.promptTokens;
        completionTokens += ev.completionTokens;
      }
    },
  });
  for (const o of outs.values()) o.flush();
  return {
    subtasks: r.subtasks,
    agents: r.agents.map((a) => ({ folder: a.folder, reason: a.reason, turns: a.turns })),
    merge: { reason: r.merge.reason, turns: r.merge.turns },
    promptTokens,
    completionTokens,
  };
}

/** An Out that writes whole lines, each prefixed; a partial line waits for its end (or flush). */
export class PrefixedOut implements Out {
  private partial = '';
  constructor(
    private readonly out: Out,
    private readonly prefix: string,
  ) {}
  get isTTY(): boolean | undefined {
    return this.out.isTTY;
  }
  get columns(): number | undefined {
    return this.out.columns === undefined ? undefined : Math.max(20, this.out.columns - this.prefix.length);
  }
  write(s: string): void {
    const lines = (this.partial + s).split('\n');
    this.partial = lines.pop()!;
    if (lines.length > 0) this.out.write(lines.map((l) => this.prefix + l + '\n').join(''));
  }
  flush(): void {
    if (this.partial) this.out.write(this.prefix + this.partial + '\n');
    this.partial = '';
  }
}

const MAX_RESULT_LINES = 12;
/** Width of printed tool lines when the output is not a terminal (a terminal's own width is used otherwise). */
const DEFAULT_WIDTH = 160;

/** Text as it streams; tool calls and results dim and indented; summaries and the end noted. */
export class EventPrinter {
  private atLineStart = true;
  constructor(
    private readonly out: Out,
    private readonly color: boolean,
  ) {}

  print(ev: AgentEvent): void {
    switch (ev.type) {
      case 'text':
        this.write(this.safe(ev.text));
        break;
      case 'tool_call':
        this.block(this.safe(`→ ${ev.call.name} ${oneLine(ev.call.arguments, Math.max(20, this.width - ev.call.name.length - 4))}`));
        break;
      case 'tool_result': {
        const lines = this.safe(ev.content).split('\n');
        const shown = lines.slice(0, MAX_RESULT_LINES);
        if (lines.length > MAX_RESULT_LINES) shown.push(`… ${lines.length - MAX_RESULT_LINES} more lines`);
        // cut by width too: one 3000-character line must not fill the screen
        this.block(shown.map((l, i) => `${i === 0 ? (ev.ok ? '← ' : '✗ ') : '  '}${cutWidth(l, this.width - 2)}`).join('\n'));
        break;
      }
      case 'summary':
        this.block(`[context compacted: ~${ev.tokensBefore} → ~${ev.tokensAfter} tokens]`);
        break;
      case 'usage':
        break;
      case 'done':
        this.block(ev.reason === 'answered' ? `[done after ${ev.turns} turn${ev.turns === 1 ? '' : 's'}]` : `[stopped: reached the limit of ${ev.turns} turns]`);
        break;
    }
  }

  /** Characters available for a tool line after the 4-space indent. */
  private get width(): number {
    const columns = this.out.isTTY && this.out.columns ? this.out.columns : DEFAULT_WIDTH;
    return Math.max(40, columns - 4);
  }

  /** Model and tool text on a terminal: control characters shown as pictures, so output cannot drive the terminal. */
  private safe(s: string): string {
    return this.out.isTTY ? visibleControls(s) : s;
  }

  private write(s: string): void {
    if (!s) return;
    this.out.write(s);
    this.atLineStart = s.endsWith('\n');
  }

  /** A block on its own lines, indented, dim when coloured. */
  private block(text: string): void {
    if (!this.atLineStart) this.write('\n');
    const indented = text
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n');
    this.write(this.color ? `\x1b[2m${indented}\x1b[22m\n` : `${indented}\n`);
  }
}

/** `s` cut to `width` characters, saying how many were left out. */
function cutWidth(s: string, width: number): string {
  if (s.length <= width) return s;
  const note = ` … (+${s.length - width} chars)`;
  const keep = Math.max(10, width - note.length);
  return `${s.slice(0, keep)} … (+${s.length - keep} chars)`;
}

function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s*\n\s*/g, ' ');
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}
