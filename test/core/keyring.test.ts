import { describe, expect, it } from "vitest";
import { KeyRing } from "../../src/core/keyring.js";

describe("KeyRing", () => {
  const secret = Buffer.from("channel secret bytes");

  it("seals and unseals, never showing the plaintext", () => {
    const ring = new KeyRing([{ id: "k1", key: KeyRing.generateKey() }]);
    const sealed = ring.seal(secret, "ctx");
    expect(sealed).not.toContain(secret.toString("base64url"));
    expect(ring.unseal(sealed, "ctx")).toEqual(secret);
    expect(ring.seal(secret, "ctx")).not.toBe(sealed);
  });

  it("opens values sealed with an older key after rotation", () => {
    const old = { id: "old", key: KeyRing.generateKey() };
    const sealed = new KeyRing([old]).seal(secret);
    const rotated = new KeyRing([{ id: "new", key: KeyRing.generateKey() }, old]);
    expect(rotated.unseal(sealed)).toEqual(secret);
    expect(rotated.seal(secret).startsWith("new.")).toBe(true);
    expect(new KeyRing([{ id: "new", key: KeyRing.generateKey() }]).unseal(sealed)).toBeNull();
  });

  it("refuses tampering, a wrong context and junk", () => {
    const ring = new KeyRing([{ id: "k", key: KeyRing.generateKey() }]);
    const sealed = ring.seal(secret, "a");
    const parts = sealed.split(".");
    const body = Buffer.from(parts[2]!, "base64url");
    body[0] = (body[0] ?? 0) ^ 1;
    parts[2] = body.toString("base64url");
    expect(ring.unseal(parts.join("."), "a")).toBeNull();
    expect(ring.unseal(sealed, "b")).toBeNull();
    expect(ring.unseal(`${sealed.split(".").slice(0, 3).join(".")}.AAAA`, "a")).toBeNull();
    expect(ring.unseal("junk", "a")).toBeNull();
  });

  it("refuses bad configuration with CONFIG_INVALID", () => {
    expect(() => new KeyRing([])).toThrowError(expect.objectContaining({ code: "CONFIG_INVALID" }));
    expect(() => new KeyRing([{ id: "k", key: "short" }])).toThrowError(/32 bytes/);
    expect(() => new KeyRing([{ id: "bad id!", key: KeyRing.generateKey() }])).toThrowError(/key id/);
  });
});
