/**
 * ChatBackend over any OpenAI-compatible chat-completions endpoint (webmoe serve, vLLM, SGLang, OpenAI),
 * through the official `openai` client. Streams with `tools`; tool-call fragments arrive as deltas keyed by
 * `index` (id and name in the first fragment, arguments spread over many) and are yielded once complete.
 */
import OpenAI from 'openai';
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions';
import { AbortError } from '../errors.js';
import type { ChatBackend, ChatChunk, ChatMessage, ChatRequest, FinishReason } from './backend.js';
import { BackendError } from './backend.js';

export interface OpenAIBackendOptions {
  /** e.g. `http://127.0.0.1:8080/v1`. */
  baseURL: string;
  /** The served model's name (`GET /v1/models` lists it). */
  model: string;
  /** Local servers usually need none; a placeholder is sent then. */
  apiKey?: string;
  /** Sent as `max_tokens` when a request gives none. */
  defaultMaxTokens?: number;
  contextSize?: number;
  /** Retries on 429/5xx/connection errors (default 2, the client's own default). */
  maxRetries?: number;
  /** An already-built client (shares its connection pool and options). */
  client?: OpenAI;
}

export class OpenAIBackend implements ChatBackend {
  readonly client: OpenAI;
  readonly contextSize?: number;

  constructor(private readonly opts: OpenAIBackendOptions) {
    this.client =
      opts.client ??
      new OpenAI({ baseURL: opts.baseURL, apiKey: opts.apiKey ?? 'not-needed', maxRetries: opts.maxRetries ?? 2 });
    this.contextSize = opts.contextSize;
  }

  async *chat(req: ChatRequest): AsyncGenerator<ChatChunk> {
    const params: ChatCompletionCreateParamsStreaming = {
      model: this.opts.model,
      messages: req.messages.map(toOpenAIMessage),
      stream: true,
      stream_options: { include_usage: true },
    };
    if (req.tools && req.tools.length > 0) params.tools = req.tools;
    const maxTokens = req.maxTokens ?? this.opts.defaultMaxTokens;
    if (maxTokens !== undefined) params.max_tokens = maxTokens;
    if (req.temperature !== undefined) params.temperature = req.temperature;
    if (req.topP !== undefined) params.top_p = req.topP;
    if (req.seed !== undefined) params.seed = req.seed;
    if (req.stop && req.stop.length > 0) params.stop = req.stop;

    let stream: AsyncIterable<ChatCompletionChunk>;
    try {
      stream = await this.client.chat.completions.create(params, { signal: req.signal ?? undefined });
    } catch (err) {
      throw wrapError(err, req.signal);
    }
    const calls = new ToolCallAssembler();
    let finish: FinishReason | undefined;
    try {
      for await (const chunk of stream) {
        for (const choice of chunk.choices) {
          if (choice.index !== 0) continue;
          const delta = choice.delta;
          if (delta.content) yield { type: 'text', text: delta.content };
          for (const tc of delta.tool_calls ?? []) calls.add(tc);
          if (choice.finish_reason) finish = mapFinish(choice.finish_reason);
        }
        if (chunk.usage) {
          yield { type: 'usage', promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens };
        }
      }
    } catch (err) {
      throw wrapError(err, req.signal);
    }
    const toolCalls = calls.done();
    for (const call of toolCalls) yield { type: 'tool_call', call };
    yield { type: 'finish', reason: toolCalls.length > 0 ? 'tool_calls' : (finish ?? 'stop') };
  }
}

type ToolCallDelta = NonNullable<ChatCompletionChunk.Choice.Delta['tool_calls']>[number];

/** Joins streamed tool-call fragments by index. */
class ToolCallAssembler {
  private readonly byIndex = new Map<number, { id: string; name: string; arguments: string }>();

  add(d: ToolCallDelta): void {
    let call = this.byIndex.get(d.index);
    if (!call) {
      call = { id: '', name: '', arguments: '' };
      this.byIndex.set(d.index, call);
    }
    if (d.id) call.id = d.id;
    if (d.function?.name) call.name += d.function.name;
    if (d.function?.arguments) call.arguments += d.function.arguments;
  }

  done(): { id: string; name: string; arguments: string }[] {
    const calls = [...this.byIndex.entries()].sort(([a], [b]) => a - b).map(([, c]) => c);
    for (const [i, c] of calls.entries()) {
      if (!c.name) throw new BackendError(`tool call ${i} in the stream has no function name`);
      if (!c.id) c.id = `call_${i}`;
    }
    return calls;
  }
}

function toOpenAIMessage(m: ChatMessage): ChatCompletionMessageParam {
  switch (m.role) {
    case 'system':
    case 'user':
      return { role: m.role, content: m.content };
    case 'assistant':
      return {
        role: 'assistant',
        content: m.content,
        ...(m.toolCalls && m.toolCalls.length > 0
          ? {
              tool_calls: m.toolCalls.map((c) => ({
                id: c.id,
                type: 'function' as const,
                function: { name: c.name, arguments: c.arguments },
              })),
            }
          : {}),
      };
    case 'tool':
      return { role: 'tool', tool_call_id: m.toolCallId, content: m.content };
  }
}

function mapFinish(reason: string): FinishReason {
  if (reason === 'length') return 'length';
  if (reason === 'tool_calls' || reason === 'function_call') return 'tool_calls';
  return 'stop';
}

function wrapError(err: unknown, signal: AbortSignal | undefined): Error {
  if (signal?.aborted || err instanceof OpenAI.APIUserAbortError) return new AbortError('request aborted');
  if (err instanceof OpenAI.APIError) {
    return new BackendError(`chat endpoint returned ${err.status ?? 'an error'}: ${err.message}`, err.status, { cause: err });
  }
  if (err instanceof Error) return new BackendError(`chat endpoint failed: ${err.message}`, undefined, { cause: err });
  return new BackendError(`chat endpoint failed: ${String(err)}`);
}
