/**
 * Byte sources: where checkpoint bytes come from. The loader reads tensors lazily through this interface, so
 * the same code serves Node (positioned reads on a file handle), the browser (HTTP Range requests) and `File`/`Blob`.
 * A source never returns fewer bytes than asked for: a short read is a truncated file and throws FormatError.
 */
import { FormatError } from '../errors.js';

export interface ByteSource {
  /** A name for error messages (a path or URL). */
  readonly name: string;
  /** Total size in bytes. */
  size(): Promise<number>;
  /** Exactly `length` bytes starting at `offset`, in a fresh (aligned, unshared) buffer. */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** A `Blob` or `File` (browser file picker, or Node's Blob). */
export function blobSource(blob: Blob, name = (blob as File).name ?? 'blob'): ByteSource {
  return {
    name,
    size: async () => blob.size,
    async read(offset, length) {
      checkRange(name, offset, length, blob.size);
      const buf = new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
      if (buf.length !== length) throw new FormatError(`short read: wanted ${length} bytes at ${offset}, got ${buf.length}`, name);
      return buf;
    },
    close: async () => {},
  };
}

/** An in-memory buffer (tests, generated files). */
export function memorySource(bytes: Uint8Array, name = 'memory'): ByteSource {
  return {
    name,
    size: async () => bytes.length,
    async read(offset, length) {
      checkRange(name, offset, length, bytes.length);
      return bytes.slice(offset, offset + length);
    },
    close: async () => {},
  };
}

export function checkRange(name: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new FormatError(`read of ${length} bytes at offset ${offset} is outside the file (${size} bytes): truncated or corrupt`, name);
  }
}
