import { WebmoeError } from '../errors.js';

/** A tool refused or failed; its message is what the model reads. */
export class ToolError extends WebmoeError {
  constructor(message: string) {
    super('TOOL', message);
  }
}
