/**
 * Loading a checkpoint's tokenizer: tokenizer.json (byte-level natively, else through @huggingface/tokenizers),
 * else Kimi's tiktoken.model. Apart from tokenizer.ts so that the tokenizers import the shared pieces and this file
 * imports the tokenizers, never the other way round (no import cycle).
 */
import { FormatError } from '../errors.js';
import type { CheckpointFiles } from '../model/checkpoint.js';
import { asByteTokenizer, type Json, type Tokenizer } from './tokenizer.js';

export interface LoadTokenizerOptions {
  /** tokenizer.json already parsed (Checkpoint.tokenizerJson), to avoid reading it twice. */
  tokenizerJson?: unknown;
}

/**
 * The tokenizer of a checkpoint folder: tokenizer.json (byte-level natively, else HF), else Kimi's
 * tiktoken.model (+ tokenizer_config.json), else undefined (the checkpoint runs from token ids).
 */
export async function loadTokenizer(files: CheckpointFiles, opts: LoadTokenizerOptions = {}): Promise<Tokenizer | undefined> {
  const configText = await files.readText('tokenizer_config.json');
  const config = configText === undefined ? undefined : (parseJsonObject(configText, `${files.name}/tokenizer_config.json`) as Json);
  let json = opts.tokenizerJson;
  if (json === undefined) {
    const text = await files.readText('tokenizer.json');
    if (text !== undefined) json = parseJsonObject(text, `${files.name}/tokenizer.json`);
  }
  if (json !== undefined) return tokenizerFromJson(json, config, `${files.name}/tokenizer.json`);
  const tiktoken = await files.readText('tiktoken.model');
  if (tiktoken !== undefined) {
    const { TiktokenTokenizer } = await import('./tiktoken.js');
    return TiktokenTokenizer.fromFiles(tiktoken, config, { file: `${files.name}/tiktoken.model` });
  }
  return undefined;
}

/** A tokenizer from a parsed tokenizer.json (and tokenizer_config.json). */
export async function tokenizerFromJson(json: unknown, config: Json | undefined, file = 'tokenizer.json'): Promise<Tokenizer> {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new FormatError('tokenizer.json must be a JSON object', file);
  const byte = asByteTokenizer(json as Json, config, file);
  if (byte) return byte;
  const { HfTokenizer } = await import('./hf-tokenizer.js');
  return HfTokenizer.create(json as Json, config, file);
}

function parseJsonObject(text: string, file: string): unknown {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new FormatError(`not valid JSON (${(err as Error).message})`, file);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new FormatError('must be a JSON object', file);
  return v;
}
