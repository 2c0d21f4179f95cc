import type { Attributes } from "stowage";

/**
 * The 1 KB session every store benchmark uses: four attributes, about 1 KB of JSON together, shaped like
 * what a web app keeps (a user profile, a cart, preferences, a counter).
 */
export function oneKbAttributes(): Attributes {
  return {
    user: {
      id: "u_8f14e45fceea167a5a36dedd4bea2543",
      name: "Ada Lovelace",
      email: "ada.lovelace@example.com",
      roles: ["reader", "writer", "reviewer"],
      locale: "en-GB",
    },
    cart: Array.from({ length: 8 }, (_, i) => ({
      sku: `SKU-${100_000 + i * 7919}`,
      title: `Item number ${i} with a descriptive title`,
      qty: (i % 3) + 1,
      price: 1999 + i * 250,
    })),
    prefs: {
      theme: "dark",
      timezone: "Europe/London",
      currency: "GBP",
      newsletter: true,
      density: "compact",
    },
    counter: 0,
  };
}

/** The small session of the HTTP bench's small-session pairs: three short attributes. */
export function smallSession(): Attributes {
  return { theme: "dark", lang: "en", plan: "free" };
}

/** Three small attributes, for the million-session memory figure. */
export function smallAttributes(i: number): Attributes {
  return { userId: `u${i}`, theme: "dark", visits: i % 100 };
}

/** Bytes of the JSON of an attribute bag, to show the fixture is the size it claims. */
export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value));
}
