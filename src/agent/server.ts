/**
 * An OpenAI-compatible HTTP server over one LocalTextModel (node:http, no framework):
 *   POST /v1/chat/completions  Kimi template + tools; tool calls come back as OpenAI `tool_calls`
 *   POST /v1/completions       raw prompt (string or token ids)
 *   GET  /v1/models, /v1/models/{id}
 * Streaming responses are SSE `data: {...}` chunks ending with `data: [DONE]`. Generations run one at a time
 * in arrival order, or all at once when the model batches (`concurrency` > 1: its scheduler gathers their decode
 * steps and answers 503 beyond its queue); a client that disconnects (while queued or generating) aborts its
 * generation.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AbortError, BusyError, ContextOverflowError, InputError, TokenizerError, WebmoeError } from '../errors.js';
import type { ChatChunk } from './backend.js';
import { LocalBackend } from './local-backend.js';
import type { LocalTextModel } from './local-backend.js';
import type { ParsedChatRequest, ParsedCompletionRequest } from './server-requests.js';
import { HttpError, badRequest, parseChatRequest, parseCompletionRequest } from './server-requests.js';

export { HttpError } from './server-requests.js';

export interface ServerOptions {
  model: LocalTextModel;
  /** The name clients pass as `model` and `GET /v1/models` lists (the CLI uses the checkpoint folder's name). */
  modelId: string;
  host?: string;
  /** 0 = an ephemeral port (see the returned url). */
  port?: number;
  /** Default 1 MiB; larger bodies get 413. */
  maxBodyBytes?: number;
  /**
   * Host names accepted in the `Host` header besides loopback (localhost, *.localhost, 127.x.y.z, [::1]) and
   * `host` itself when it is not loopback or a wildcard (`--allow-host`). Anything else gets 403 (DNS rebinding).
   */
  allowHosts?: readonly string[];
  /**
   * Origins (`https://app.example:8443`, or `*` for any) whose pages may call the server (`--allow-origin`): they
   * get CORS headers and preflight answers. Requests with any other `Origin` header get 403.
   */
  allowOrigins?: readonly string[];
  /** One line per request and per notable event (disconnects, errors). */
  log?: (line: string) => void;
}

export interface RunningServer {
  /** e.g. `http://127.0.0.1:41234` (clients use `${url}/v1` as their base URL). */
  url: string;
  port: number;
  /** Stops listening and drops open connections (aborting their generations). Safe to call twice. */
  close(): Promise<void>;
}

/** How the server runs generations: one at a time (SerialQueue), or all at once for a batching engine. */
export interface TaskRunner {
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

/** Runs every task at once: the engine's scheduler batches their steps and queues beyond its sequences. */
export class ConcurrentRunner implements TaskRunner {
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(new AbortError('client disconnected'));
    return task();
  }
}

/** Runs tasks one at a time in arrival order. A task whose signal fired while it waited is skipped. */
export class SerialQueue implements TaskRunner {
  private tail: Promise<void> = Promise.resolve();
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const prev = this.tail;
    const result = prev.then(() => {
      if (signal?.aborted) throw new AbortError('client disconnected while queued');
      return task();
    });
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

const DEFAULT_MAX_BODY = 1 << 20;

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const { model, modelId } = opts;
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? ((): void => {});
  // a batching engine takes concurrent generations itself (its scheduler queues beyond its sequences)
  const queue: TaskRunner = (model.concurrency ?? 1) > 1 ? new ConcurrentRunner() : new SerialQueue();
  const backend = new LocalBackend(model);
  const created = Math.floor(Date.now() / 1000);
  const access = accessPolicy(host, opts.allowHosts ?? [], opts.allowOrigins ?? []);
  const ctx: HandlerContext = { model, modelId, backend, queue, created, log, maxBody: opts.maxBodyBytes ?? DEFAULT_MAX_BODY, access };

  const server = http.createServer((req, res) => {
    handle(ctx, req, res).catch((err: unknown) => {
      if (err instanceof AbortError) return void res.destroy(); // the client is gone; nobody to answer
      if (!(err instanceof HttpError)) log(`error: ${req.method} ${req.url}: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) sendError(res, toHttpError(err));
      else if (res.getHeader('Content-Type') === 'text/event-stream' && !res.writableEnded) {
        // Mid-stream failure: an error event (the openai client throws it as an APIError), then the end.
        const e = toHttpError(err);
        res.end(`data: ${JSON.stringify({ error: { message: e.message, type: e.errorType, param: e.param, code: e.errorCode } })}\n\n`);
      } else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new InputError(`cannot listen on ${host}:${opts.port ?? 0}: ${err.code ?? err.message} (pick another --port or --host)`, 'port')),
    );
    server.listen(opts.port ?? 0, host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    // Idempotent: a signal handler and a finally block may both close.
    close: () =>
      (closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections(); // keep-alive sockets would otherwise hold close() open
      })),
  };
}

interface HandlerContext {
  model: LocalTextModel;
  modelId: string;
  backend: LocalBackend;
  queue: TaskRunner;
  created: number;
  log: (line: string) => void;
  maxBody: number;
  access: AccessPolicy;
}

// ---------------------------------------------------------------------------------------------------------
// Who may call: Host and Origin checks, CORS
//
// The server has no authentication, so a web page the user visits must not be able to use it:
//   - DNS rebinding: a page on evil.example re-resolves its own name to 127.0.0.1 and calls the server "same
//     origin"; its requests carry `Host: evil.example`. Only loopback names, the --host address and --allow-host
//     names are accepted, so the rebound requests get 403.
//   - Cross-site requests: a page may send a "simple" POST (text/plain, no preflight) to 127.0.0.1 from any site.
//     POSTs must say `Content-Type: application/json` (which a page can only send after a CORS preflight), and a
//     request with an `Origin` header that is not allowed gets 403 before anything runs.
// --allow-origin names the pages that may call on purpose; they get CORS headers and preflight answers.

interface AccessPolicy {
  hosts: Set<string>;
  origins: Set<string>;
  anyOrigin: boolean;
}

/** `Host` header (or --allow-host value) → lower-case host name without port or brackets; '' when unusable. */
export function hostName(value: string): string {
  let h = value.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? '' : h.slice(1, end);
  }
  const colon = h.lastIndexOf(':');
  if (colon >= 0 && h.indexOf(':') === colon) h = h.slice(0, colon); // one colon: name:port (several: bare IPv6)
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

/** localhost, *.localhost (RFC 6761: browsers resolve them to loopback themselves), 127.0.0.0/8, ::1. */
export function isLoopbackName(name: string): boolean {
  if (name === 'localhost' || name.endsWith('.localhost') || name === '::1' || name === '0:0:0:0:0:0:0:1') return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(name);
  return m !== null && m.slice(1).every((x) => Number(x) <= 255);
}

function accessPolicy(listenHost: string, allowHosts: readonly string[], allowOrigins: readonly string[]): AccessPolicy {
  const hosts = new Set(allowHosts.map(hostName).filter(Boolean));
  const listen = hostName(listenHost.includes(':') && !listenHost.startsWith('[') ? `[${listenHost}]` : listenHost);
  if (listen && listen !== '0.0.0.0' && listen !== '::' && !isLoopbackName(listen)) hosts.add(listen);
  const origins = new Set<string>();
  let anyOrigin = false;
  for (const o of allowOrigins) {
    if (o.trim() === '*') anyOrigin = true;
    else origins.add(normalizeOrigin(o) ?? o.trim().toLowerCase());
  }
  return { hosts, origins, anyOrigin };
}

/** `https://App.Example:443/` → `https://app.example` (the form browsers send); undefined when not a URL origin. */
function normalizeOrigin(o: string): string | undefined {
  try {
    const u = new URL(o.trim());
    return u.origin === 'null' ? undefined : u.origin;
  } catch {
    return undefined;
  }
}

/** Checks Host and Origin, sets the CORS headers of an allowed origin; throws the 403 of a refused request. */
function checkAccess(p: AccessPolicy, req: http.IncomingMessage, res: http.ServerResponse): void {
  const hostHeader = req.headers.host;
  // no Host header at all (HTTP/1.0 tools): not a browser, so not a rebinding vector
  if (hostHeader !== undefined) {
    const name = hostName(hostHeader);
    if (!isLoopbackName(name) && !p.hosts.has(name)) {
      throw new HttpError(
        403,
        `Host '${hostHeader}' is not allowed: this server answers requests addressed to localhost, 127.0.0.1, [::1] or its --host address; ` +
          `start it with --allow-host ${name || 'NAME'} to accept this name`,
        null,
        'host_not_allowed',
      );
    }
  }
  const origin = req.headers.origin;
  if (origin === undefined) return;
  const norm = normalizeOrigin(origin);
  const sameOrigin = norm !== undefined && hostHeader !== undefined && new URL(norm).host === hostHeader.trim().toLowerCase();
  if (p.anyOrigin || (norm !== undefined && p.origins.has(norm))) {
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Vary', 'Origin');
    return;
  }
  if (sameOrigin) return;
  throw new HttpError(
    403,
    `Cross-origin requests from '${origin}' are refused: start the server with --allow-origin ${norm ?? origin} to let that page call it`,
    null,
    'origin_not_allowed',
  );
}

/** Answers an OPTIONS request (a CORS preflight when it carries an allowed Origin). */
function preflight(req: http.IncomingMessage, res: http.ServerResponse): void {
  res.setHeader('Allow', 'GET, POST, OPTIONS');
  if (res.hasHeader('Access-Control-Allow-Origin')) {
    res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
    const asked = req.headers['access-control-request-headers'];
    res.setHeader('Access-Control-Allow-Headers', typeof asked === 'string' && /^[\w\s,-]+$/.test(asked) ? asked : 'Content-Type, Authorization');
    res.setHeader('Access-Control-Max-Age', '600');
  }
  res.writeHead(204);
  res.end();
}

/** POST bodies must be JSON: a page can send text/plain cross-site without a preflight, never application/json. */
function requireJson(req: http.IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new HttpError(415, `Content-Type must be application/json, got ${type ? `'${type}'` : 'none'}`, null, 'unsupported_media_type');
  }
}

async function handle(ctx: HandlerContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const method = req.method ?? 'GET';
  checkAccess(ctx.access, req, res);
  if (method === 'OPTIONS') return preflight(req, res);
  const route = (want: string, handler: () => Promise<void>): Promise<void> => {
    if (method !== want) throw new HttpError(405, `Method ${method} not allowed for ${path}; use ${want}`, null, 'method_not_allowed');
    if (want === 'POST') requireJson(req);
    return handler();
  };
  if (path === '/v1/models') return route('GET', async () => sendJson(res, 200, { object: 'list', data: [modelCard(ctx)] }));
  if (path.startsWith('/v1/models/')) {
    return route('GET', async () => {
      const raw = path.slice('/v1/models/'.length);
      let id = raw;
      try {
        id = decodeURIComponent(raw);
      } catch {
        // a malformed escape (%ZZ) names no model: 404 below, with the id as sent
      }
      if (id !== ctx.modelId) throw new HttpError(404, `The model '${id}' does not exist`, 'model', 'model_not_found');
      sendJson(res, 200, modelCard(ctx));
    });
  }
  if (path === '/v1/chat/completions') {
    return route('POST', async () => chatCompletions(ctx, parseChatRequest(await readJson(req, ctx.maxBody), ctx.modelId), res));
  }
  if (path === '/v1/completions') {
    return route('POST', async () => completions(ctx, parseCompletionRequest(await readJson(req, ctx.maxBody), ctx.modelId), res));
  }
  throw new HttpError(404, `Unknown request URL: ${method} ${path}`, null, 'unknown_url');
}

const modelCard = (ctx: HandlerContext): Record<string, unknown> => ({
  id: ctx.modelId,
  object: 'model',
  created: ctx.created,
  owned_by: 'webmoe',
  max_model_len: ctx.model.contextSize,
});

// ---------------------------------------------------------------------------------------------------------
// /v1/chat/completions

async function chatCompletions(ctx: HandlerContext, r: ParsedChatRequest, res: http.ServerResponse): Promise<void> {
  const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
  const base = { id, object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: ctx.modelId };
  const signal = abortOnDisconnect(res);
  ctx.log(`POST /v1/chat/completions ${r.stream ? 'stream' : 'json'} messages=${r.messages.length} tools=${r.tools?.length ?? 0}`);
  await runQueued(ctx, signal, async () => {
    const replies = ctx.backend.chatChoices(
      { messages: r.messages, tools: r.tools, maxTokens: r.maxTokens, temperature: r.temperature, topP: r.topP, seed: r.seed, stop: r.stop, signal },
      r.n,
    );
    // Pull each reply's first chunk before answering, so a request that fails up front (context overflow) gets a
    // plain JSON error instead of a half-open event stream.
    const firsts = await Promise.all(replies.map((c) => c.next()));
    const all = replies.map((c, i) => prepend(firsts[i]!, c));
    if (!r.stream) return sendJson(res, 200, await chatJson(all, base));
    startSse(res);
    // n choices stream concurrently, each chunk tagged with its choice's index; usage sums their completions
    const usages = await Promise.all(all.map((chunks, index) => streamChoice(res, base, index, chunks)));
    const usage = sumUsage(usages);
    if (r.includeUsage && usage) await sendSse(res, { ...base, choices: [], usage });
    endSse(res);
  });
}

/** Streams one choice's chunks as SSE deltas with its index; returns its usage. */
async function streamChoice(res: http.ServerResponse, base: object, index: number, chunks: AsyncIterable<ChatChunk>): Promise<Usage | undefined> {
  let toolIndex = 0;
  let usage: Usage | undefined;
  await sendSse(res, { ...base, choices: [{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
  for await (const c of chunks) {
    if (c.type === 'usage') usage = usageJson(c);
    else if (c.type === 'finish') await sendSse(res, { ...base, choices: [{ index, delta: {}, logprobs: null, finish_reason: c.reason }] });
    else {
      const delta =
        c.type === 'text'
          ? { content: c.text }
          : { tool_calls: [{ index: toolIndex++, id: c.call.id, type: 'function', function: { name: c.call.name, arguments: c.call.arguments } }] };
      await sendSse(res, { ...base, choices: [{ index, delta, logprobs: null, finish_reason: null }] });
    }
  }
  return usage;
}

/** The usage of n choices of one prompt: the prompt counted once, the completions summed. */
function sumUsage(usages: Array<Usage | undefined>): Usage | undefined {
  const have = usages.filter((u): u is Usage => u !== undefined);
  if (have.length === 0) return undefined;
  const completion = have.reduce((a, u) => a + u.completion_tokens, 0);
  return { prompt_tokens: have[0]!.prompt_tokens, completion_tokens: completion, total_tokens: have[0]!.prompt_tokens + completion };
}

async function* prepend<T>(first: IteratorResult<T>, rest: AsyncGenerator<T>): AsyncGenerator<T> {
  if (first.done) return;
  yield first.value;
  yield* rest;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

const usageJson = (u: { promptTokens: number; completionTokens: number }): Usage => ({
  prompt_tokens: u.promptTokens,
  completion_tokens: u.completionTokens,
  total_tokens: u.promptTokens + u.completionTokens,
});

async function chatJson(replies: AsyncIterable<ChatChunk>[], base: { id: string; created: number; model: string }): Promise<unknown> {
  const choices = await Promise.all(replies.map((chunks, index) => choiceJson(chunks, index)));
  return { ...base, object: 'chat.completion', choices: choices.map((c) => c.choice), usage: sumUsage(choices.map((c) => c.usage)) ?? usageJson({ promptTokens: 0, completionTokens: 0 }) };
}

async function choiceJson(chunks: AsyncIterable<ChatChunk>, index: number): Promise<{ choice: unknown; usage: Usage }> {
  let text = '';
  const toolCalls: unknown[] = [];
  let finish = 'stop';
  let usage: Usage = usageJson({ promptTokens: 0, completionTokens: 0 });
  for await (const c of chunks) {
    if (c.type === 'text') text += c.text;
    else if (c.type === 'tool_call') toolCalls.push({ id: c.call.id, type: 'function', function: { name: c.call.name, arguments: c.call.arguments } });
    else if (c.type === 'usage') usage = usageJson(c);
    else finish = c.reason;
  }
  const message = { role: 'assistant', content: text || (toolCalls.length > 0 ? null : ''), refusal: null, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) };
  return { choice: { index, message, logprobs: null, finish_reason: finish }, usage };
}

// ---------------------------------------------------------------------------------------------------------
// /v1/completions

async function completions(ctx: HandlerContext, r: ParsedCompletionRequest, res: http.ServerResponse): Promise<void> {
  const id = `cmpl-${randomUUID().replaceAll('-', '')}`;
  const base = { id, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: ctx.modelId };
  const signal = abortOnDisconnect(res);
  ctx.log(`POST /v1/completions ${r.stream ? 'stream' : 'json'}`);
  const prompt = typeof r.prompt === 'string' ? ctx.model.tokenizer.encode(r.prompt) : r.prompt;
  const room = ctx.model.contextSize - prompt.length;
  if (room <= 0) throw new ContextOverflowError(prompt.length, ctx.model.contextSize);
  // OpenAI's default for /v1/completions is 16 tokens.
  const maxTokens = Math.min(room, r.maxTokens ?? 16);
  await runQueued(ctx, signal, async () => {
    const events = ctx.model.generate(prompt, { maxTokens, temperature: r.temperature, topP: r.topP, seed: r.seed, stopStrings: r.stop, signal });
    const first = await events.next();
    const all = prepend(first, events);
    const choice = (text: string, finish: string | null): unknown => ({ ...base, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }] });
    if (r.stream) startSse(res);
    let text = '';
    for await (const ev of all) {
      if (ev.type === 'token') {
        if (r.stream && ev.text) await sendSse(res, choice(ev.text, null));
        else text += ev.text;
        continue;
      }
      if (ev.stats.finishReason === 'abort' || signal.aborted) throw new AbortError();
      const finish = ev.stats.finishReason === 'length' ? 'length' : 'stop';
      const usage = usageJson({ promptTokens: prompt.length, completionTokens: ev.stats.generatedTokens });
      if (!r.stream) return sendJson(res, 200, { ...(choice(text, finish) as object), usage });
      await sendSse(res, choice('', finish));
      if (r.includeUsage) await sendSse(res, { ...base, choices: [], usage });
      return endSse(res);
    }
    throw new WebmoeError('ENGINE', 'generate() ended without a done event');
  });
}

// ---------------------------------------------------------------------------------------------------------
// Plumbing

/** An AbortSignal that fires when the client goes away before the response is complete. */
function abortOnDisconnect(res: http.ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort(new AbortError('client disconnected'));
  });
  return controller.signal;
}

/** Queues a generation; a disconnect (before or during it) ends quietly, the socket being gone already. */
async function runQueued(ctx: HandlerContext, signal: AbortSignal, task: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  try {
    await ctx.queue.run(task, signal);
    const summaries = [ctx.model.batchSummary?.(), ctx.model.offloadSummary?.()].filter(Boolean);
    if (summaries.length) ctx.log(`done in ${(performance.now() - t0).toFixed(0)} ms; ${summaries.join('; ')}`);
  } catch (err) {
    if (signal.aborted) {
      ctx.log('client disconnected; generation aborted');
      return;
    }
    throw err;
  }
}

/**
 * Reads the body. Past `limit` the rest is read and discarded (memory stays bounded) before the 413 is sent:
 * answering, or closing, while the client is still uploading makes it see a connection reset instead of the
 * response (bodies over 16 MiB were once cut off that way). Node's requestTimeout bounds how long a
 * client may keep sending.
 */
function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) parts.push(chunk);
    });
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new AbortError('client disconnected while sending the request'));
    });
    req.on('end', () => {
      if (size > limit) return reject(new HttpError(413, `request body exceeds ${limit} bytes`, null, 'request_too_large'));
      try {
        resolve(JSON.parse(Buffer.concat(parts).toString('utf8')));
      } catch {
        reject(badRequest('We could not parse the JSON body of your request: it is not valid JSON.', null, 'invalid_json'));
      }
    });
  });
}

function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof ContextOverflowError) return new HttpError(400, err.message, 'messages', 'context_length_exceeded');
  if (err instanceof BusyError) return new HttpError(503, err.message, null, 'server_busy');
  if (err instanceof InputError) return new HttpError(400, err.message, err.field ?? null, 'invalid_value');
  if (err instanceof TokenizerError) return new HttpError(400, err.message, null, 'tokenizer_error');
  if (err instanceof WebmoeError) return new HttpError(500, err.message, null, err.code.toLowerCase());
  return new HttpError(500, `internal error: ${err instanceof Error ? err.message : String(err)}`);
}

function sendError(res: http.ServerResponse, e: HttpError): void {
  sendJson(res, e.status, { error: { message: e.message, type: e.errorType, param: e.param, code: e.errorCode } });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

function startSse(res: http.ServerResponse): void {
  // setHeader, not writeHead's object: the error path reads Content-Type back to know it is mid-stream.
  res.setHeader('Content-Type', 'text/event-stream');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('Connection', 'keep-alive');
  res.writeHead(200);
  res.socket?.setNoDelay(true);
  res.flushHeaders();
}

/** Writes one event, waiting out back-pressure (or the client leaving). */
async function sendSse(res: http.ServerResponse, data: unknown): Promise<void> {
  if (res.destroyed) return;
  if (res.write(`data: ${JSON.stringify(data)}\n\n`)) return;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function endSse(res: http.ServerResponse): void {
  res.end('data: [DONE]\n\n');
}
