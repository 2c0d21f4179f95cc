import { createPublicKey, randomBytes, verify } from "node:crypto";

/** A fresh hello nonce: 32 bytes from the CSPRNG, base64url. */
export function newNonce(): string {
  return randomBytes(32).toString("base64url");
}

/** A connection id for `ConnectionRef.id`: 12 random bytes, base64url. */
export function newConnectionId(): string {
  return randomBytes(12).toString("base64url");
}

/**
 * True when `signature` (base64url) is the Ed25519 signature of `text` by the private half of
 * `publicKey` (raw, base64url). Ed25519 verification takes the same time for every wrong signature, and
 * the store holds only public keys, so nothing here is a secret.
 */
export function verifyProof(publicKey: string, text: string, signature: string): boolean {
  try {
    const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: publicKey }, format: "jwk" });
    return verify(null, Buffer.from(text), key, Buffer.from(signature, "base64url"));
  } catch {
    return false;
  }
}
