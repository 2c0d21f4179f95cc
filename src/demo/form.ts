import type { IncomingMessage } from "node:http";

/** Largest form body the demo accepts; its forms carry a name and a CSRF token at most. */
export const MAX_FORM_BYTES = 8 * 1024;

/** Why a form body was refused, with the HTTP status to answer. */
export class FormError extends Error {
  constructor(
    readonly status: 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

/** Reads an application/x-www-form-urlencoded body of at most MAX_FORM_BYTES. */
export function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/x-www-form-urlencoded") {
    req.resume();
    return Promise.reject(new FormError(415, "Forms must be sent as application/x-www-form-urlencoded."));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      // Keep draining past the limit instead of destroying the stream, so the 413 page still gets sent.
      if (size > MAX_FORM_BYTES) reject(new FormError(413, "The form is too large."));
      else chunks.push(chunk);
    });
    req.on("end", () => resolve(new URLSearchParams(Buffer.concat(chunks).toString("utf8"))));
    req.on("error", reject);
  });
}
