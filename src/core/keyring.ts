import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { StowageError } from "./errors.js";

/** One sealing key: a short id that is written beside the ciphertext, and 32 key bytes. */
export interface SealingKey {
  /** Key id, 1 to 16 characters of [A-Za-z0-9_-]. */
  id: string;
  /** 32 bytes (a Buffer, or base64url / base64 text). */
  key: Uint8Array | string;
}

const KEY_ID_RE = /^[A-Za-z0-9_-]{1,16}$/;

/**
 * AES-256-GCM sealing with rotating keys: the first key seals, every key unseals, so a new key can be
 * put first while values sealed with the old one still open.
 */
export class KeyRing {
  readonly #keys: Map<string, Buffer>;
  readonly #primary: string;

  constructor(keys: readonly SealingKey[]) {
    if (keys.length === 0) throw new StowageError("CONFIG_INVALID", "keys: at least one key is required");
    this.#keys = new Map();
    for (const { id, key } of keys) {
      if (!KEY_ID_RE.test(id))
        throw new StowageError("CONFIG_INVALID", "keys: a key id must be 1-16 of [A-Za-z0-9_-]");
      const bytes = typeof key === "string" ? Buffer.from(key, "base64url") : Buffer.from(key);
      if (bytes.length !== 32) throw new StowageError("CONFIG_INVALID", `keys: key "${id}" must be 32 bytes`);
      if (this.#keys.has(id)) throw new StowageError("CONFIG_INVALID", `keys: duplicate key id "${id}"`);
      this.#keys.set(id, bytes);
    }
    this.#primary = keys[0]!.id;
  }

  /** A random 32-byte key, base64url: what to put in `keys`. */
  static generateKey(): string {
    return randomBytes(32).toString("base64url");
  }

  /** Seals bytes as `keyId.iv.ciphertext.tag` (base64url parts); `context` is bound as associated data. */
  seal(plain: Uint8Array, context = ""): string {
    const key = this.#keys.get(this.#primary)!;
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return `${this.#primary}.${iv.toString("base64url")}.${body.toString("base64url")}.${cipher.getAuthTag().toString("base64url")}`;
  }

  /**
   * What opening `sealed` would find: `current` (sealed with the first key), `old` (with another key of
   * the ring: open it and seal it again), `missing` (its key is gone from the ring, or it is not sealed text).
   */
  keyOf(sealed: string): "current" | "old" | "missing" {
    const keyId = sealed.slice(0, sealed.indexOf("."));
    if (keyId === this.#primary) return "current";
    return keyId.length > 0 && this.#keys.has(keyId) ? "old" : "missing";
  }

  /** Opens a sealed value; null when it was tampered with, sealed for another context, or its key is gone. */
  unseal(sealed: string, context = ""): Buffer | null {
    const parts = sealed.split(".");
    if (parts.length !== 4) return null;
    const [keyId, iv, body, tag] = parts as [string, string, string, string];
    const key = this.#keys.get(keyId);
    if (!key) return null;
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"), {
        authTagLength: 16,
      });
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(Buffer.from(tag, "base64url"));
      return Buffer.concat([decipher.update(Buffer.from(body, "base64url")), decipher.final()]);
    } catch {
      return null;
    }
  }
}
