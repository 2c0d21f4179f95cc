import { createHash } from "node:crypto";
import type { Cluster, Redis } from "ioredis";

/** A Lua script run by its SHA1 (EVALSHA), so Redis parses it once per node. */
export interface LuaScript {
  /** Full Lua source, helpers included. */
  readonly lua: string;
  /** SHA1 of `lua`, as EVALSHA wants it. */
  readonly sha: string;
}

/**
 * Helpers shared by the scripts. Every script touches the keys of one session only (`{id}` hash tag),
 * so it runs on one Cluster slot. ARGV is unpacked in chunks because Lua's C stack holds ~8000 values.
 */
const PRELUDE = `
local function hsetFrom(key, from, to)
  local i = from
  while i <= to do
    local j = math.min(i + 999, to)
    redis.call('HSET', key, unpack(ARGV, i, j))
    i = j + 1
  end
end
local function hdelFrom(key, from, to)
  local i = from
  while i <= to do
    local j = math.min(i + 999, to)
    redis.call('HDEL', key, unpack(ARGV, i, j))
    i = j + 1
  end
end
local function expireAt(key, exp, idle)
  local e, i = tonumber(exp), tonumber(idle)
  if i and (not e or i < e) then e = i end
  if e then redis.call('PEXPIREAT', key, string.format('%d', math.ceil(e))) end
end
local function expireAtMin(key)
  local t = redis.call('HMGET', key, 'exp', 'idle')
  expireAt(key, t[1], t[2])
end
local function renaming(key, now)
  local m = redis.call('HMGET', key, 'ren', 'renu')
  return m[1] and tonumber(m[2]) > tonumber(now)
end
local function tagged(value)
  if value then return '=' .. value end
  return ''
end
`;

function script(body: string, prelude = true): LuaScript {
  const lua = prelude ? `${PRELUDE}\n${body}` : body;
  return { lua, sha: createHash("sha1").update(lua).digest("hex") };
}

/**
 * KEYS: hash, outbox list, outbox head. ARGV: pexpireat, field, value, ... Returns 1, or 0 when the key
 * (record or alias) exists. An outbox left by a record of the same id that expired goes first.
 */
export const INSERT = script(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
hsetFrom(KEYS[1], 2, #ARGV)
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
`);

/**
 * KEYS: hash. ARGV: ifVersion or '', now, field, value, ..., then, only when fields are deleted, '' (never
 * a field name) and the fields to delete. Returns the new version when neither `exp` nor `user` changed;
 * when one did, {version, old user, new user, new exp} ('=' marks a user) for the user index. Returns -1
 * when the record is missing (or an alias), -2 on a version conflict or while a rename holds the record.
 * A rename mark past its deadline is void: the commit clears it, which makes that rename fail.
 * The hottest write, so it is lean on both sides: the meta fields that matter (`exp`, `idle`, `user`) are
 * found among the pairs rather than sent twice, one HMGET reads what the checks, the TTL and the reply
 * need, the version goes in the same HSET as the changed fields, and the TTL moves only when `exp` or
 * `idle` changed: a one-key commit with an idle refresh makes three redis.call (HMGET, HSET, PEXPIREAT).
 */
export const COMMIT = script(`
local key, n = KEYS[1], #ARGV
local last = n
local exp, idle, user, expiry, index = nil, nil, nil, false, false
for j = 3, n, 2 do
  local f = ARGV[j]
  if f == '' then
    last = j - 1
    break
  end
  if f == 'idle' then idle = ARGV[j + 1]; expiry = true
  elseif f == 'exp' then exp = ARGV[j + 1]; expiry = true; index = true
  elseif f == 'user' then user = ARGV[j + 1]; index = true end
end
for j = last + 2, n do
  local f = ARGV[j]
  if f == 'idle' then idle = false; expiry = true
  elseif f == 'exp' then exp = false; expiry = true; index = true
  elseif f == 'user' then user = false; index = true end
end
local m
if index then m = redis.call('HMGET', key, 'v', 'ren', 'exp', 'idle', 'user')
else m = redis.call('HMGET', key, 'v', 'ren', 'exp', 'idle') end
local v = m[1]
if not v then return -1 end
if m[2] then
  if tonumber(redis.call('HGET', key, 'renu')) > tonumber(ARGV[2]) then return -2 end
end
if ARGV[1] ~= '' and ARGV[1] ~= v then return -2 end
if m[2] then redis.call('HDEL', key, 'ren', 'renu') end
local version = tonumber(v) + 1
redis.call('HSET', key, 'v', string.format('%d', version), unpack(ARGV, 3, math.min(last, 1000)))
hsetFrom(key, 1001, last)
hdelFrom(key, last + 2, n)
if exp == nil then exp = m[3] end
if expiry then
  if idle == nil then idle = m[4] end
  expireAt(key, exp, idle)
end
if not index then return version end
if user == nil then user = m[5] end
return {version, tagged(m[5]), tagged(user), exp or ''}
`);

/**
 * The common commit, without COMMIT's helpers and argument scan: attributes set, the idle expiry moved,
 * no field deleted, neither `exp` nor `user` changed (those update the user index). KEYS: hash. ARGV:
 * ifVersion or '', the new `idle` or '', field, value, ... (few enough to unpack in one call). Returns
 * the new version; -1 when the record is missing (or an alias), -2 on a version conflict, -3 when a rename
 * mark is there (COMMIT decides whether it still holds). Redis runs a script's whole chunk on every call,
 * so each helper COMMIT defines and each redis.call costs here: three calls, one HMGET, no closures.
 */
export const COMMIT_PLAIN = script(
  `
local key = KEYS[1]
local m = redis.call('HMGET', key, 'v', 'ren', 'exp')
local v = m[1]
if not v then return -1 end
if m[2] then return -3 end
if ARGV[1] ~= '' and ARGV[1] ~= v then return -2 end
local version = tonumber(v) + 1
redis.call('HSET', key, 'v', string.format('%d', version), unpack(ARGV, 3))
if ARGV[2] ~= '' then
  local e, i = tonumber(m[3]), tonumber(ARGV[2])
  if i < e then e = i end
  redis.call('PEXPIREAT', key, string.format('%d', math.ceil(e)))
end
return version
`,
  false,
);

/** KEYS: hash. ARGV: idleExpiresAt. Moves the idle expiry and the native TTL; no version bump. */
export const TOUCH = script(`
if redis.call('HEXISTS', KEYS[1], 'v') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'idle', ARGV[1])
expireAtMin(KEYS[1])
return 1
`);

/**
 * Rename, step 1, on the old key. KEYS: old hash. ARGV: ifVersion or '', now, token, deadline.
 * Returns {0, version, verifier, user} and marks the record as being renamed until `deadline`;
 * {1} when missing (or an alias); {2} on a version conflict or another live rename.
 */
export const RENAME_BEGIN = script(`
local key = KEYS[1]
local h = redis.call('HMGET', key, 'v', 'verifier', 'user')
if not h[1] then return {1} end
if renaming(key, ARGV[2]) then return {2} end
if ARGV[1] ~= '' and ARGV[1] ~= h[1] then return {2} end
redis.call('HSET', key, 'ren', ARGV[3], 'renu', ARGV[4])
return {0, h[1], h[2], tagged(h[3])}
`);

/**
 * Rename, step 3 (the commit point), on the old key. KEYS: old hash, its outbox list and head. ARGV: token, new id, alias until
 * (0: no alias). Returns 0 when the old key became an alias (or vanished as asked); 1 when the record is
 * gone (deleted meanwhile); 2 when our mark was voided and the record lives on.
 */
export const RENAME_FINISH = script(`
local key = KEYS[1]
local h = redis.call('HMGET', key, 'ren', 'verifier', 'v')
if h[1] ~= ARGV[1] then
  if h[3] then return 2 end
  return 1
end
redis.call('DEL', key, KEYS[2], KEYS[3])
local untilMs = tonumber(ARGV[3])
if untilMs > 0 then
  redis.call('HSET', key, 'alias', ARGV[2], 'verifier', h[2], 'until', ARGV[3])
  redis.call('PEXPIREAT', key, ARGV[3])
end
return 0
`);

/** KEYS: old hash. ARGV: token. Lifts our rename mark after a failed rename. */
export const RENAME_ABORT = script(`
if redis.call('HGET', KEYS[1], 'ren') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'ren', 'renu')
return 1
`);

/**
 * KEYS: hash, outbox list, outbox head. ARGV: version read, now. Returns 1 when deleted, 0 when the version moved (read again),
 * -1 when there is nothing to consume (missing, an alias, or a rename holds it: the id is on its way out).
 */
export const CONSUME = script(`
local v = redis.call('HGET', KEYS[1], 'v')
if not v or renaming(KEYS[1], ARGV[2]) then return -1 end
if v ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
`);

/**
 * KEYS: hash, outbox list, outbox head. Deletes a record (with its outbox) or alias; returns {1, user}
 * for a record, {0, ''} otherwise.
 */
export const DELETE = script(`
local h = redis.call('HMGET', KEYS[1], 'v', 'user')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if not h[1] then return {0, ''} end
return {1, tagged(h[2])}
`);

/** KEYS: hash, outbox list, outbox head. ARGV: user. Deletes the record only if it still belongs to that user. */
export const DELETE_IF_USER = script(`
local h = redis.call('HMGET', KEYS[1], 'v', 'user')
if not h[1] or h[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
`);

/**
 * KEYS: user index. ARGV: expiresAt, id. Scores an entry by the record's absolute expiry (an upper bound
 * of its effective expiry, so pruning by score never drops a live record; GT keeps the highest bound when
 * commits race) and lets the index key expire with its last entry.
 */
export const INDEX_ADD = script(`
redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[2])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], string.format('%d', math.ceil(tonumber(top[2]))))
return 1
`);

/** KEYS: user index. ARGV: now. Drops entries whose absolute expiry passed, returns the rest. */
export const USER_LIST = script(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
`);

/**
 * KEYS: lock, fence counter. ARGV: token, leaseMs, now, counter ttl. Returns the fence, or 0 when held.
 * The fence is max(last + 1, now): strictly increasing while the counter lives, and still higher than
 * any earlier fence after the counter expired (it expires only after a day without a lock, and fences
 * run ahead of the clock only by the number of acquisitions faster than one per ms).
 */
export const LOCK = script(`
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local fence = (tonumber(redis.call('GET', KEYS[2])) or 0) + 1
local now = tonumber(ARGV[3])
if now > fence then fence = now end
redis.call('SET', KEYS[2], string.format('%d', fence), 'PX', ARGV[4])
return fence
`);

/** KEYS: lock. ARGV: token. Compare-and-delete: frees the lease only for its holder. */
export const UNLOCK = script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`);

/**
 * Runs a script by SHA1 and loads it with EVAL on NOSCRIPT (first use on a node, a restart, a failover).
 * `argv` holds the `numKeys` keys, then the arguments. On Cluster, ioredis routes EVALSHA by its first key.
 */
export function evalScript(
  client: Redis | Cluster,
  lua: LuaScript,
  numKeys: number,
  argv: string[],
): Promise<unknown> {
  return client.evalsha(lua.sha, numKeys, argv).catch((error: unknown) => {
    if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
    return client.eval(lua.lua, numKeys, argv);
  });
}

/** `evalScript` with keys and arguments apart (numbers are sent as their decimal string). */
export function runScript(
  client: Redis | Cluster,
  lua: LuaScript,
  keys: string[],
  args: (string | number)[],
): Promise<unknown> {
  const argv = keys.slice();
  for (const arg of args) argv.push(String(arg));
  return evalScript(client, lua, keys.length, argv);
}

/**
 * KEYS: hash, outbox list, outbox head. ARGV: maxMessages, maxBytes, message, ... Appends to the list
 * (a message's sequence number is its place: the head holds the last number, so the first kept is
 * last - LLEN + 1), drops the oldest past the bounds, and lets both outbox keys expire with the record's
 * absolute expiry. Returns the last number, or -1 when there is no record.
 */
export const OUTBOX_APPEND = script(`
local m = redis.call('HMGET', KEYS[1], 'v', 'exp')
if not m[1] then return -1 end
local h = redis.call('HMGET', KEYS[3], 'last', 'dropped', 'bytes')
local last, dropped, bytes = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0
for i = 3, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  bytes = bytes + #ARGV[i]
end
last = last + #ARGV - 2
local count = redis.call('LLEN', KEYS[2])
local maxMessages, maxBytes = tonumber(ARGV[1]), tonumber(ARGV[2])
while count > 0 and (count > maxMessages or bytes > maxBytes) do
  dropped = last - count + 1
  bytes = bytes - #redis.call('LPOP', KEYS[2])
  count = count - 1
end
redis.call('HSET', KEYS[3], 'last', last, 'dropped', dropped, 'bytes', bytes)
local at = string.format('%d', math.ceil(tonumber(m[2])))
redis.call('PEXPIREAT', KEYS[3], at)
if count > 0 then redis.call('PEXPIREAT', KEYS[2], at) end
return last
`);

/**
 * KEYS: hash, outbox list, outbox head. ARGV: after, limit. Returns {last, dropped, first seq, message, ...};
 * {0, 0, 0} when there is no record.
 */
export const OUTBOX_READ = script(`
if redis.call('HEXISTS', KEYS[1], 'v') == 0 then return {0, 0, 0} end
local h = redis.call('HMGET', KEYS[3], 'last', 'dropped')
local last, dropped = tonumber(h[1]) or 0, tonumber(h[2]) or 0
local count = redis.call('LLEN', KEYS[2])
local first = last - count + 1
local from = math.max(0, math.floor(tonumber(ARGV[1])) + 1 - first)
local to = math.min(count - 1, from + tonumber(ARGV[2]) - 1)
local out = {last, dropped, first + from}
if from <= to then
  local items = redis.call('LRANGE', KEYS[2], from, to)
  for i = 1, #items do out[i + 3] = items[i] end
end
return out
`);

/** KEYS: outbox list, outbox head. ARGV: through. Drops the kept messages numbered up to `through`. */
export const OUTBOX_TRIM = script(`
local h = redis.call('HMGET', KEYS[2], 'last', 'bytes')
if not h[1] then return 0 end
local last, bytes = tonumber(h[1]), tonumber(h[2])
local count = redis.call('LLEN', KEYS[1])
local n = math.min(count, math.floor(tonumber(ARGV[1])) - (last - count))
if n <= 0 then return 0 end
for i = 1, n do bytes = bytes - #redis.call('LPOP', KEYS[1]) end
redis.call('HSET', KEYS[2], 'bytes', bytes)
return n
`);
