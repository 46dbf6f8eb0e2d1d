/**
 * ChatBackend over webmoe's own engine: render with the Kimi K2 template, generate, and parse tool calls
 * from the output by token id (docs/model.md §10).
 */
import type { ChatTokenizer } from '../text/chat-template.js';
import { KimiOutputParser, chatStopTokenIds, renderChat } from '../text/chat-template.js';
import type { GenerateOptions, GenerationEvent } from '../engine/types.js';
import { AbortError, ContextOverflowError, InputError } from '../errors.js';
import type { ChatBackend, ChatChunk, ChatRequest, FinishReason } from './backend.js';

/**
 * What the agent and server need from a loaded model. The GPU engine implements it; tests use a CPU toy.
 * `generate` streams token events and ends with one `done` event; it honours `opts.signal` (throwing
 * AbortError or finishing with finishReason 'abort'), `stopTokens`, `stopStrings` and `maxTokens`.
 */
export interface LocalTextModel {
  tokenizer: ChatTokenizer;
  contextSize: number;
  eosTokenIds: number[];
  generate(promptTokens: number[], opts: GenerateOptions): AsyncGenerator<GenerationEvent>;
  /** n generations from one prompt sharing its prefill (batching engines only; choice i uses seed + i). */
  generateChoices?(promptTokens: number[], n: number, opts: GenerateOptions): AsyncGenerator<GenerationEvent>[];
  /** Generations that may run at once, their decode steps batched (default 1: callers must not overlap them). */
  concurrency?: number;
  /** One line about the batched engine's state for logs (steps, mean rows per step, queue), when it batches. */
  batchSummary?(): string;
  /** With expert offloading: hits, misses, stalls and bytes streamed so far (for logs). */
  offloadSummary?(): string | undefined;
}

export interface LocalBackendOptions {
  /** Used when a request gives no maxTokens (default: whatever fits the context). */
  defaultMaxTokens?: number;
  /** Sampling defaults for fields a request leaves out. */
  topK?: number;
  topP?: number;
  seed?: number;
}

export class LocalBackend implements ChatBackend {
  constructor(
    readonly model: LocalTextModel,
    private readonly opts: LocalBackendOptions = {},
  ) {}

  get contextSize(): number {
    return this.model.contextSize;
  }

  async *chat(req: ChatRequest): AsyncGenerator<ChatChunk> {
    yield* this.chatChoices(req, 1)[0]!;
  }

  /**
   * n replies to one request: the prompt is rendered once and, for n > 1, prefilled once (the model's
   * generateChoices); consume the replies concurrently. n > 1 needs a batching model (an InputError otherwise).
   */
  chatChoices(req: ChatRequest, n: number): AsyncGenerator<ChatChunk>[] {
    const { model } = this;
    if (n > 1 && !model.generateChoices) throw new InputError(`n = ${n} choices need a batching engine (webmoe serve --max-sequences > 1, webgpu backend)`, 'n');
    const prompt = renderChat(model.tokenizer, req.messages, { tools: req.tools });
    const room = model.contextSize - prompt.tokens.length;
    if (room <= 0) throw new ContextOverflowError(prompt.tokens.length, model.contextSize);
    const maxTokens = Math.min(room, req.maxTokens ?? this.opts.defaultMaxTokens ?? room);
    const genOpts: GenerateOptions = {
      maxTokens,
      temperature: req.temperature,
      topK: this.opts.topK,
      topP: req.topP ?? this.opts.topP,
      seed: req.seed ?? this.opts.seed,
      stopTokens: [...chatStopTokenIds(model.tokenizer), ...model.eosTokenIds],
      stopStrings: req.stop,
      signal: req.signal,
    };
    const streams = n === 1 ? [model.generate(prompt.tokens, genOpts)] : model.generateChoices!(prompt.tokens, n, genOpts);
    return streams.map((events) => this.reply(events, prompt.tokens.length, req.signal));
  }

  /** The chat chunks of one generation: text and tool calls parsed by token id, usage, the finish reason. */
  private async *reply(events: AsyncGenerator<GenerationEvent>, promptTokens: number, signal?: AbortSignal): AsyncGenerator<ChatChunk> {
    const { model } = this;
    const parser = new KimiOutputParser(model.tokenizer, { endTokenIds: model.eosTokenIds });
    let completionTokens = 0;
    let engineFinish: 'stop' | 'length' | 'abort' | undefined;
    // Leaving this loop early (parser saw the end marker) calls the engine generator's return(), which is
    // how a generator is cancelled; the engine's own `finally` releases what it holds.
    for await (const ev of events) {
      if (ev.type === 'done') {
        completionTokens = ev.stats.generatedTokens;
        engineFinish = ev.stats.finishReason;
        break;
      }
      completionTokens++;
      yield* parsedChunks(parser.push(ev.token, ev.text));
      if (parser.ended) break;
    }
    if (engineFinish === 'abort' || signal?.aborted) throw new AbortError();
    yield* parsedChunks(parser.finish());
    yield { type: 'usage', promptTokens, completionTokens };
    const reason: FinishReason = parser.callCount > 0 ? 'tool_calls' : engineFinish === 'length' ? 'length' : 'stop';
    yield { type: 'finish', reason };
  }
}

function* parsedChunks(parsed: ReturnType<KimiOutputParser['push']>): Generator<ChatChunk> {
  for (const p of parsed) {
    if (p.type === 'text') yield { type: 'text', text: p.text };
    else if (p.type === 'tool_call') yield { type: 'tool_call', call: p.call };
  }
}
