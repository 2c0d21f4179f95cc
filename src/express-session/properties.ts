// A session's properties as stored, and what changed since. A stored object property is put on the
// session as a lazy accessor: it is parsed (a copy the application may change) when first read, and a
// property nobody read is known unchanged without being parsed or serialised. Only properties that were
// read or set are serialised at the end, to compare with what was stored.

/** One property as it was stored or last saved: its value when that is a primitive or a value no one changes, and its JSON text. */
export class Stored {
  #text: string | undefined;

  constructor(
    /** The value, when it is a primitive or an object nobody changes (a store's lent value); undefined: text only. */
    readonly value: unknown,
    text?: string,
  ) {
    this.#text = text;
  }

  /** The JSON text, written on first use. */
  get text(): string {
    this.#text ??= JSON.stringify(this.value);
    return this.#text;
  }
}

/** What a session's properties are compared with: each property as stored, by name. */
export type Snapshot = Map<string, Stored>;

/** The stored properties an object's lazy accessors read, by name. */
const LAZY = Symbol("stowage.lazy");

interface Lazy {
  [LAZY]?: Map<string, Stored>;
}

interface Accessor {
  get(this: Lazy): unknown;
  set(this: Lazy, value: unknown): void;
}

// One accessor pair per property name, shared by every session (a property's stored value is found
// through the object's LAZY map): loading a session then builds no functions. Bounded, as property
// names come from application code but need not be few.
const accessors = new Map<string, Accessor>();
const MAX_ACCESSORS = 4096;

function accessorFor(key: string): Accessor {
  let accessor = accessors.get(key);
  if (accessor !== undefined) return accessor;
  accessor = {
    get(this: Lazy): unknown {
      const value: unknown = JSON.parse(this[LAZY]!.get(key)!.text);
      plain(this, key, value);
      return value;
    },
    set(this: Lazy, value: unknown): void {
      plain(this, key, value);
    },
  };
  if (accessors.size < MAX_ACCESSORS) accessors.set(key, accessor);
  return accessor;
}

/** Puts `stored` on `target` as property `key`: as it is for a primitive, as a lazy accessor for an object. */
export function defineStored(target: object, key: string, stored: Stored): void {
  const value = stored.value;
  if (value !== undefined && (value === null || typeof value !== "object")) {
    (target as Record<string, unknown>)[key] = value;
    return;
  }
  const holder = target as Lazy;
  let lazy = holder[LAZY];
  if (lazy === undefined) {
    lazy = new Map();
    Object.defineProperty(holder, LAZY, { value: lazy });
  }
  lazy.set(key, stored);
  const { get, set } = accessorFor(key);
  Object.defineProperty(target, key, { get, set, enumerable: true, configurable: true });
}

function plain(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/** Copies property `key` of `source` onto `target`, keeping a lazy one lazy. */
export function copyProperty(target: object, source: object, key: string): void {
  const stored = unread(source, key);
  if (stored !== undefined) defineStored(target, key, stored);
  else (target as Record<string, unknown>)[key] = (source as Record<string, unknown>)[key];
}

/** The stored property a still-unread lazy property of `target` stands for; undefined for any other. */
function unread(target: object, key: string): Stored | undefined {
  const stored = (target as Lazy)[LAZY]?.get(key);
  if (stored === undefined) return undefined;
  const get = Object.getOwnPropertyDescriptor(target, key)?.get;
  return get !== undefined && get === accessors.get(key)?.get ? stored : undefined;
}

/** What `diff` found: the properties to write and to remove, and the snapshot they lead to. */
export interface Changes {
  /** Properties whose text differs from the snapshot's, or that it lacks. */
  set: Map<string, Stored>;
  /** Properties of the snapshot the session no longer has. */
  unset: string[];
  /** The session's properties as they are now: the next snapshot once these changes are stored. */
  now: Snapshot;
}

/**
 * Property `key` of `session` as it is now, against `before` (its stored form, if any): `before` itself
 * when unchanged, a new `Stored` when changed, undefined when JSON would leave it out. Unread lazy
 * properties are unchanged at no cost; a primitive equal to the stored one is unchanged without
 * serialising it; a new `Stored` is built only for a change.
 */
function current(session: object, key: string, before: Stored | undefined): Stored | undefined {
  const lazy = unread(session, key);
  if (lazy !== undefined) return before === lazy || before?.text === lazy.text ? before : lazy;
  const value = (session as Record<string, unknown>)[key];
  const primitive = value === null || typeof value !== "object";
  if (before !== undefined && primitive && value === before.value) return before;
  const text = JSON.stringify(value);
  if (text === undefined) return undefined;
  if (before !== undefined && before.text === text) return before;
  return new Stored(primitive ? value : undefined, text);
}

/** What changed in `session`'s properties (`skip` left out) since `base`. */
export function diff(session: object, base: Snapshot, skip?: string): Changes {
  const set = new Map<string, Stored>();
  const now: Snapshot = new Map();
  for (const key of Object.keys(session)) {
    if (key === skip) continue;
    const before = base.get(key);
    const stored = current(session, key, before);
    if (stored === undefined) continue;
    now.set(key, stored);
    if (stored !== before) set.set(key, stored);
  }
  const unset: string[] = [];
  for (const key of base.keys()) if (key !== skip && !now.has(key)) unset.push(key);
  return { set, unset, now };
}

/** True when `diff` would find any change; stops at the first, and builds nothing while none is found. */
export function differs(session: object, base: Snapshot | undefined, skip?: string): boolean {
  if (base === undefined) return true;
  let seen = 0;
  for (const key of Object.keys(session)) {
    if (key === skip) continue;
    const before = base.get(key);
    const stored = current(session, key, before);
    if (stored === undefined) continue;
    if (stored !== before) return true;
    seen++;
  }
  // Every property matched one of the base; any base property left over was removed.
  return seen !== (skip !== undefined && base.has(skip) ? base.size - 1 : base.size);
}

/** The session's properties now, as a snapshot (for a session that was not read from a stowage store). */
export function snapshotOf(session: object, skip?: string): Snapshot {
  return diff(session, new Map(), skip).now;
}
