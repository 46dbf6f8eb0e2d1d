/**
 * The typed errors of webmoe. Every failure a user can cause (bad file, bad config, bad input, a device
 * that cannot do what is asked) is one of these, with structured fields and a message that says how to fix it.
 * The CLI prints `err.message` on one line; library code never calls process.exit.
 */

/** Base class: `code` is stable and machine-readable; `message` is for people. */
export class WebmoeError extends Error {
  /**
   * The class's name as a literal, which `err.name` (and so every one-line message) takes: a minifier renames
   * classes (`new.target.name` reads "w" in the built page), a string survives. Every subclass declares its own
   * (test/errors-names.test.ts checks it equals the class name, also after minification); a subclass
   * elsewhere should declare one too.
   */
  static readonly errorName: string = 'WebmoeError';
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    // a subclass outside this file that declares no errorName keeps its (unminified) class name
    const cls = new.target as typeof WebmoeError;
    this.name = Object.prototype.hasOwnProperty.call(cls, 'errorName') ? cls.errorName : cls.name;
    this.code = code;
  }
}

/** config.json is missing a field, has a wrong type, or an unsupported / inconsistent value. */
export class ConfigError extends WebmoeError {
  static override readonly errorName = 'ConfigError';
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
  static override readonly errorName = 'FormatError';
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
  static override readonly errorName = 'ShapeError';
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
  static override readonly errorName = 'MissingTensorError';
  constructor(
    readonly tensor: string,
    readonly file?: string,
  ) {
    super('MISSING_TENSOR', `${file ? file + ': ' : ''}missing tensor '${tensor}'`);
  }
}

/** No adapter, a limit the adapter cannot meet, a lost device, a validation error from WebGPU. */
export class DeviceError extends WebmoeError {
  static override readonly errorName = 'DeviceError';
  constructor(
    message: string,
    readonly details: { limit?: string; value?: number; required?: number; reason?: string } = {},
  ) {
    super('DEVICE', message);
  }
}

/** A prompt (plus the tokens to generate) does not fit the context. */
export class ContextOverflowError extends WebmoeError {
  static override readonly errorName = 'ContextOverflowError';
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
  static override readonly errorName = 'InputError';
  constructor(message: string, readonly field?: string) {
    super('INPUT', message);
  }
}

/** A checkpoint with no tokenizer was given text. */
export class TokenizerError extends WebmoeError {
  static override readonly errorName = 'TokenizerError';
  constructor(message: string) {
    super('TOKENIZER', message);
  }
}

/**
 * The engine computed numbers that are not finite: NaN or +Infinity in the logits (or no finite logit at all),
 * from weights that hold NaN/Inf or from an overflow. Sampling cannot pick a token from them.
 */
export class NumericError extends WebmoeError {
  static override readonly errorName = 'NumericError';
  constructor(message: string, readonly position?: number) {
    super('NUMERIC', message);
  }
}

/** Generation was cancelled through an AbortSignal. */
export class AbortError extends WebmoeError {
  static override readonly errorName = 'AbortError';
  constructor(message = 'generation aborted') {
    super('ABORTED', message);
  }
}

/** Every sequence of a batched engine is busy and its waiting queue is full (`serve` answers 503). */
export class BusyError extends WebmoeError {
  static override readonly errorName = 'BusyError';
  constructor(message: string) {
    super('BUSY', message);
  }
}

/**
 * A server took too long: no response headers within the connect timeout, or no byte of the body for the idle
 * timeout (a server that accepts and never answers, or trickles). Names the URL and the limit.
 */
export class HttpTimeoutError extends WebmoeError {
  static override readonly errorName = 'HttpTimeoutError';
  constructor(
    readonly url: string,
    readonly timeoutMs: number,
    readonly phase: 'connect' | 'idle',
  ) {
    const secs = `${timeoutMs / 1000} s`;
    super(
      'HTTP_TIMEOUT',
      phase === 'connect'
        ? `${url}: no response within ${secs} (connect timeout; check the server, or raise it with --connect-timeout SECONDS / the page's connect-timeout parameter)`
        : `${url}: no data for ${secs} while downloading (idle timeout; check the server, or raise it with --idle-timeout SECONDS / the page's idle-timeout parameter)`,
    );
  }
}

/**
 * A file behind a URL is not the version that was being read: its ETag, Last-Modified or size differs from the
 * ones recorded when reading (or caching) started. Ranges of two versions are never combined; start over.
 */
export class SourceChangedError extends WebmoeError {
  static override readonly errorName = 'SourceChangedError';
  constructor(
    readonly url: string,
    readonly detail: string,
  ) {
    super('SOURCE_CHANGED', `${url}: the file changed on the server while it was being read (${detail}); load it again`);
  }
}

/** Turns anything thrown into a one-line message for the CLI. */
export function oneLineMessage(err: unknown): string {
  if (err instanceof Error) return `${err.name === 'Error' ? 'error' : err.name}: ${err.message}`.replace(/\s*\n\s*/g, ' ');
  return `error: ${String(err)}`.replace(/\s*\n\s*/g, ' ');
}

/** A kernel launcher's arguments disagree with the kernel's WGSL (a missing, extra or mistyped binding or param). */
export class KernelContractError extends WebmoeError {
  static override readonly errorName = 'KernelContractError';
  constructor(readonly kernel: string, message: string, readonly field?: string) {
    super('KERNEL', `kernel '${kernel}': ${message}`);
  }
}

/** The browser's storage (OPFS) refused a write: the quota is too small for what the page keeps there. */
export class StorageQuotaError extends WebmoeError {
  static override readonly errorName = 'StorageQuotaError';
  constructor(
    message: string,
    readonly neededBytes: number,
    readonly freeBytes?: number,
  ) {
    super('STORAGE_QUOTA', message);
  }
}
