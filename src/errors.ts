/**
 * The typed errors of webmoe. Every failure a user can cause (bad file, bad config, bad input, a device
 * that cannot do what is asked) is one of these, with structured fields and a message that says how to fix it.
 * The CLI prints `err.message` on one line; library code never calls process.exit.
 */

/** Base class: `code` is stable and machine-readable; `message` is for people. */
export class WebmoeError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** config.json is missing a field, has a wrong type, or an unsupported / inconsistent value. */
export class ConfigError extends WebmoeError {
  constructor(
    message: string,
    readonly field?: string,
    readonly value?: unknown,
    readonly file?: string,
  ) {
    super('CONFIG', file ? `${file}: ${message}` : message);
  }
}

/** A file is corrupt, truncated, or not in the format it claims (safetensors header, index, npy, tokenizer). */
export class FormatError extends WebmoeError {
  constructor(
    message: string,
    readonly file?: string,
    readonly tensor?: string,
  ) {
    super('FORMAT', [file, tensor ? `tensor '${tensor}'` : undefined, message].filter(Boolean).join(': '));
  }
}

/** A tensor's shape or dtype differs from what the config requires (or a kernel launch got wrong shapes). */
export class ShapeError extends WebmoeError {
  constructor(
    message: string,
    readonly tensor?: string,
    readonly expected?: unknown,
    readonly found?: unknown,
  ) {
    super('SHAPE', message);
  }
}

/** A tensor the weight table requires is absent from the checkpoint. */
export class MissingTensorError extends WebmoeError {
  constructor(
    readonly tensor: string,
    readonly file?: string,
  ) {
    super('MISSING_TENSOR', `${file ? file + ': ' : ''}missing tensor '${tensor}'`);
  }
}

/** No adapter, a limit the adapter cannot meet, a lost device, a validation error from WebGPU. */
export class DeviceError extends WebmoeError {
  constructor(
    message: string,
    readonly details: { limit?: string; value?: number; required?: number; reason?: string } = {},
  ) {
    super('DEVICE', message);
  }
}

/** A prompt (plus the tokens to generate) does not fit the context. */
export class ContextOverflowError extends WebmoeError {
  constructor(
    readonly tokens: number,
    readonly max: number,
    what = 'prompt',
  ) {
    super('CONTEXT_OVERFLOW', `${what} has ${tokens} tokens but the context holds ${max} (raise --ctx-size or shorten it)`);
  }
}

/** Bad user input: token id out of range, empty prompt, bad CLI value, malformed request. */
export class InputError extends WebmoeError {
  constructor(message: string, readonly field?: string) {
    super('INPUT', message);
  }
}

/** A checkpoint with no tokenizer was given text. */
export class TokenizerError extends WebmoeError {
  constructor(message: string) {
    super('TOKENIZER', message);
  }
}

/**
 * The engine computed numbers that are not finite: NaN or +Infinity in the logits (or no finite logit at all),
 * from weights that hold NaN/Inf or from an overflow. Sampling cannot pick a token from them.
 */
export class NumericError extends WebmoeError {
  constructor(message: string, readonly position?: number) {
    super('NUMERIC', message);
  }
}

/** Generation was cancelled through an AbortSignal. */
export class AbortError extends WebmoeError {
  constructor(message = 'generation aborted') {
    super('ABORTED', message);
  }
}

/** Every sequence of a batched engine is busy and its waiting queue is full (`serve` answers 503). */
export class BusyError extends WebmoeError {
  constructor(message: string) {
    super('BUSY', message);
  }
}

/** Turns anything thrown into a one-line message for the CLI. */
export function oneLineMessage(err: unknown): string {
  if (err instanceof Error) return `${err.name === 'Error' ? 'error' : err.name}: ${err.message}`.replace(/\s*\n\s*/g, ' ');
  return `error: ${String(err)}`.replace(/\s*\n\s*/g, ' ');
}
