/**
 * Validation of OpenAI-style request bodies into typed requests. Every problem is an HttpError naming the
 * offending field (`param`), which the server sends as `{"error": {message, type, param, code}}`.
 */
import type { ChatMessage, ChatToolCall, ToolDefinition } from '../text/chat-template.js';
import { WebmoeError } from '../errors.js';

/** An error with an HTTP status and the OpenAI error object's fields. */
export class HttpError extends WebmoeError {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly errorCode: string | null = null,
    readonly errorType = status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super('HTTP', message);
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null): HttpError =>
  new HttpError(400, message, param, code);

export interface SamplingFields {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  stop?: string[];
  stream: boolean;
  includeUsage: boolean;
}

export interface ParsedChatRequest extends SamplingFields {
  messages: ChatMessage[];
  tools?: ToolDefinition[];
  /** Choices to generate from the one prompt (`n`, default 1; more than 1 needs a batching engine). */
  n: number;
}

/** Most choices one chat request may ask for. */
export const MAX_CHOICES = 64;

export interface ParsedCompletionRequest extends SamplingFields {
  prompt: string | number[];
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function requireObject(body: unknown): Obj {
  if (!isObj(body)) throw badRequest('the request body must be a JSON object');
  return body;
}

/** The model field may be left out; when given it must name the served model. */
function checkModel(body: Obj, modelId: string): void {
  const model = body['model'];
  if (model === undefined) return;
  if (typeof model !== 'string') throw badRequest("'model' must be a string", 'model');
  if (model !== modelId) throw new HttpError(404, `The model '${model}' does not exist; this server serves '${modelId}'`, 'model', 'model_not_found');
}

function optNumber(body: Obj, key: string, min: number, max: number, integer = false): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    throw badRequest(`'${key}' must be ${integer ? 'an integer' : 'a number'} between ${min} and ${max}`, key);
  }
  return v;
}

function samplingFields(body: Obj): SamplingFields {
  // log-probabilities are not computed (sampling happens on the GPU and reads back one token id): refused, not
  // silently answered with `logprobs: null`
  const lp = body['logprobs'];
  if (lp !== undefined && lp !== null && lp !== false) throw badRequest("'logprobs' is not supported by this server", 'logprobs');
  const tlp = body['top_logprobs'];
  if (tlp !== undefined && tlp !== null) throw badRequest("'top_logprobs' is not supported by this server", 'top_logprobs');
  const stream = body['stream'] ?? false;
  if (typeof stream !== 'boolean') throw badRequest("'stream' must be a boolean", 'stream');
  const so = body['stream_options'];
  if (so !== undefined && so !== null && !isObj(so)) throw badRequest("'stream_options' must be an object", 'stream_options');
  const includeUsage = isObj(so) && so['include_usage'] === true;
  let stop: string[] | undefined;
  const s = body['stop'];
  if (typeof s === 'string') stop = [s];
  else if (Array.isArray(s)) {
    if (s.length > 4 || !s.every((x): x is string => typeof x === 'string' && x.length > 0)) {
      throw badRequest("'stop' must be a string or up to 4 non-empty strings", 'stop');
    }
    stop = s;
  } else if (s !== undefined && s !== null) throw badRequest("'stop' must be a string or an array of strings", 'stop');
  const maxKey = body['max_completion_tokens'] !== undefined ? 'max_completion_tokens' : 'max_tokens';
  return {
    maxTokens: optNumber(body, maxKey, 1, Number.MAX_SAFE_INTEGER, true),
    temperature: optNumber(body, 'temperature', 0, 2),
    topP: optNumber(body, 'top_p', Number.MIN_VALUE, 1),
    seed: optNumber(body, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true),
    stop: stop && stop.length > 0 ? stop : undefined,
    stream,
    includeUsage,
  };
}

/** A message's content: a string, null, or text parts (joined). */
function textContent(v: unknown, param: string, allowNull: boolean): string | null {
  if (typeof v === 'string') return v;
  if ((v === null || v === undefined) && allowNull) return null;
  if (Array.isArray(v)) {
    return v
      .map((part, i) => {
        if (!isObj(part) || part['type'] !== 'text' || typeof part['text'] !== 'string') {
          throw badRequest('only text content parts ({"type": "text", "text": ...}) are supported', `${param}[${i}]`);
        }
        return part['text'];
      })
      .join('');
  }
  throw badRequest(`'${param}' must be a string or an array of text parts`, param);
}

function parseToolCalls(v: unknown, param: string): ChatToolCall[] {
  if (!Array.isArray(v)) throw badRequest(`'${param}' must be an array`, param);
  return v.map((tc, i) => {
    const p = `${param}[${i}]`;
    const fn = isObj(tc) ? tc['function'] : undefined;
    if (!isObj(tc) || typeof tc['id'] !== 'string' || !isObj(fn) || typeof fn['name'] !== 'string' || typeof fn['arguments'] !== 'string') {
      throw badRequest(`'${p}' must be {"id": string, "type": "function", "function": {"name": string, "arguments": string}}`, p);
    }
    return { id: tc['id'], name: fn['name'], arguments: fn['arguments'] };
  });
}

function parseMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw badRequest("'messages' must be a non-empty array", 'messages');
  const callNames = new Map<string, string>();
  return v.map((m, i): ChatMessage => {
    const p = `messages[${i}]`;
    if (!isObj(m)) throw badRequest(`'${p}' must be an object`, p);
    const role = m['role'];
    switch (role) {
      case 'system':
      case 'developer':
        return { role: 'system', content: textContent(m['content'], `${p}.content`, false) ?? '' };
      case 'user':
        return { role: 'user', content: textContent(m['content'], `${p}.content`, false) ?? '' };
      case 'assistant': {
        const content = textContent(m['content'], `${p}.content`, true);
        const raw = m['tool_calls'];
        const toolCalls = raw === undefined || raw === null ? [] : parseToolCalls(raw, `${p}.tool_calls`);
        for (const c of toolCalls) callNames.set(c.id, c.name);
        return toolCalls.length > 0 ? { role: 'assistant', content, toolCalls } : { role: 'assistant', content };
      }
      case 'tool': {
        const id = m['tool_call_id'];
        if (typeof id !== 'string') throw badRequest(`'${p}.tool_call_id' must be a string`, `${p}.tool_call_id`);
        const name = typeof m['name'] === 'string' ? m['name'] : callNames.get(id);
        const content = textContent(m['content'], `${p}.content`, false) ?? '';
        return name === undefined ? { role: 'tool', toolCallId: id, content } : { role: 'tool', toolCallId: id, name, content };
      }
      default:
        throw badRequest(`'${p}.role' must be one of system, developer, user, assistant, tool`, `${p}.role`);
    }
  });
}

function parseTools(body: Obj): ToolDefinition[] | undefined {
  const choice = body['tool_choice'];
  if (choice !== undefined && choice !== null && choice !== 'auto' && choice !== 'none') {
    throw badRequest("only tool_choice 'auto' and 'none' are supported", 'tool_choice');
  }
  const v = body['tools'];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw badRequest("'tools' must be an array", 'tools');
  const tools = v.map((t, i): ToolDefinition => {
    const p = `tools[${i}]`;
    const fn = isObj(t) ? t['function'] : undefined;
    if (!isObj(t) || t['type'] !== 'function' || !isObj(fn) || typeof fn['name'] !== 'string' || !fn['name']) {
      throw badRequest(`'${p}' must be {"type": "function", "function": {"name": string, ...}}`, p);
    }
    if (fn['parameters'] !== undefined && !isObj(fn['parameters'])) throw badRequest(`'${p}.function.parameters' must be an object`, `${p}.function.parameters`);
    if (fn['description'] !== undefined && typeof fn['description'] !== 'string') {
      throw badRequest(`'${p}.function.description' must be a string`, `${p}.function.description`);
    }
    return { type: 'function', function: fn as ToolDefinition['function'] };
  });
  return choice === 'none' || tools.length === 0 ? undefined : tools;
}

export function parseChatRequest(raw: unknown, modelId: string): ParsedChatRequest {
  const body = requireObject(raw);
  checkModel(body, modelId);
  const rf = body['response_format'];
  if (isObj(rf) && rf['type'] !== 'text') throw badRequest("only response_format {type: 'text'} is supported", 'response_format');
  const n = optNumber(body, 'n', 1, MAX_CHOICES, true) ?? 1;
  return { messages: parseMessages(body['messages']), tools: parseTools(body), n, ...samplingFields(body) };
}

export function parseCompletionRequest(raw: unknown, modelId: string): ParsedCompletionRequest {
  const body = requireObject(raw);
  checkModel(body, modelId);
  if (body['echo'] === true) throw badRequest("'echo' is not supported", 'echo');
  if (body['n'] !== undefined && body['n'] !== null && body['n'] !== 1) throw badRequest("only 'n' = 1 is supported by /v1/completions (chat completions take n > 1)", 'n');
  let prompt = body['prompt'];
  // A batch of one is accepted; a real batch is not (one generation at a time).
  if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === 'string' || Array.isArray(prompt[0]))) prompt = prompt[0];
  if (typeof prompt === 'string') {
    if (!prompt) throw badRequest("'prompt' must not be empty", 'prompt');
    return { prompt, ...samplingFields(body) };
  }
  if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((t) => Number.isInteger(t) && (t as number) >= 0)) {
    return { prompt: prompt as number[], ...samplingFields(body) };
  }
  throw badRequest("'prompt' must be a non-empty string or a non-empty array of token ids (one prompt per request)", 'prompt');
}
