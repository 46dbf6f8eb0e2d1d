/**
 * The one interface the agent talks to: a chat model that streams text deltas, whole tool calls and usage.
 * Implemented by LocalBackend (webmoe's engine with the Kimi template) and OpenAIBackend (any
 * OpenAI-compatible server: webmoe serve, vLLM, SGLang).
 */
import type { ChatMessage, ChatToolCall, ToolDefinition } from '../text/chat-template.js';
import { WebmoeError } from '../errors.js';

export type { ChatMessage, ChatToolCall, ToolDefinition } from '../text/chat-template.js';

export interface ChatRequest {
  messages: ChatMessage[];
  tools?: ToolDefinition[];
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  /** Strings that end the reply (not included in it). */
  stop?: string[];
  signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls';

export type ChatChunk =
  | { type: 'text'; text: string }
  /** A complete tool call (backends assemble streamed fragments before yielding it). */
  | { type: 'tool_call'; call: ChatToolCall }
  | { type: 'usage'; promptTokens: number; completionTokens: number }
  /** Last chunk of a reply. */
  | { type: 'finish'; reason: FinishReason };

export interface ChatBackend {
  chat(req: ChatRequest): AsyncGenerator<ChatChunk>;
  /** The model's context length in tokens, when known (the agent sizes its summarisation trigger from it). */
  readonly contextSize?: number;
}

/** A backend failed (HTTP error from a remote server, a malformed stream). */
export class BackendError extends WebmoeError {
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super('BACKEND', message, options);
  }
}

/** A whole reply, collected from a chunk stream. */
export interface ChatReply {
  text: string;
  toolCalls: ChatToolCall[];
  finishReason: FinishReason;
  usage?: { promptTokens: number; completionTokens: number };
}

/** Drains a chunk stream into one reply (for callers that do not stream). */
export async function collectReply(chunks: AsyncIterable<ChatChunk>): Promise<ChatReply> {
  const reply: ChatReply = { text: '', toolCalls: [], finishReason: 'stop' };
  for await (const c of chunks) {
    if (c.type === 'text') reply.text += c.text;
    else if (c.type === 'tool_call') reply.toolCalls.push(c.call);
    else if (c.type === 'usage') reply.usage = { promptTokens: c.promptTokens, completionTokens: c.completionTokens };
    else reply.finishReason = c.reason;
  }
  return reply;
}
