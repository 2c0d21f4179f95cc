// Length-prefixed frames for stream transports (stowage/tcp): a 4-byte big-endian body length, then the
// body. The length is checked before a byte of the body is kept, so a prefix of 4 GiB costs nothing.

/** Bytes of the length prefix in front of every frame body. */
export const HEADER_BYTES = 4;

/** The 4-byte prefix of a body of `length` bytes. */
export function frameHeader(length: number): Buffer {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt32BE(length, 0);
  return header;
}

/** The UTF-8 of `text` with its length prefix, written once into one buffer. */
export function encodeText(text: string): Buffer {
  const length = Buffer.byteLength(text);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  frame.writeUInt32BE(length, 0);
  frame.write(text, HEADER_BYTES);
  return frame;
}

/** The frames of several texts, one after another in one buffer. */
export function encodeTexts(texts: readonly string[]): Buffer {
  if (texts.length === 1) return encodeText(texts[0]!);
  const lengths = texts.map((text) => Buffer.byteLength(text));
  let total = 0;
  for (const length of lengths) total += HEADER_BYTES + length;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < texts.length; i++) {
    out.writeUInt32BE(lengths[i]!, at);
    at += HEADER_BYTES;
    at += out.write(texts[i]!, at);
  }
  return out;
}

/** A body with its length prefix, as one buffer. */
export function encodeFrame(body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame.set(body, HEADER_BYTES);
  return frame;
}

/**
 * Cuts a byte stream into frame bodies. Chunks of a frame that spans several reads are kept as they came
 * and joined once, when the last one arrives (no copy per read); a chunk holding many whole frames is
 * cut into views of itself.
 */
export class FrameDecoder {
  readonly #maxBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Body length of the frame being read, once its prefix is in; -1 before. */
  #need = -1;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** True while part of a frame is held (a prefix, or a body not yet complete). */
  get partial(): boolean {
    return this.#buffered > 0;
  }

  /**
   * The frame bodies `chunk` completes, in order; `undefined` when a prefix announces more than the
   * maximum (the stream is then useless: nothing after it can be framed).
   */
  push(chunk: Buffer): Buffer[] | undefined {
    const bodies: Buffer[] = [];
    let data = chunk;
    if (this.#buffered > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#need === -1 && this.#buffered >= HEADER_BYTES) {
        const joined = Buffer.concat(this.#chunks, this.#buffered);
        this.#chunks = [joined];
        this.#need = joined.readUInt32BE(0);
        if (this.#need > this.#maxBytes) return undefined;
      }
      if (this.#need === -1 || this.#buffered < HEADER_BYTES + this.#need) return bodies;
      data = Buffer.concat(this.#chunks, this.#buffered);
      this.#chunks = [];
      this.#buffered = 0;
      this.#need = -1;
    }
    let at = 0;
    while (data.length - at >= HEADER_BYTES) {
      const length = data.readUInt32BE(at);
      if (length > this.#maxBytes) return undefined;
      if (data.length - at - HEADER_BYTES < length) break;
      bodies.push(data.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length));
      at += HEADER_BYTES + length;
    }
    if (at < data.length) {
      const rest = data.subarray(at);
      this.#chunks = [rest];
      this.#buffered = rest.length;
      this.#need = rest.length >= HEADER_BYTES ? rest.readUInt32BE(0) : -1;
    }
    return bodies;
  }
}
