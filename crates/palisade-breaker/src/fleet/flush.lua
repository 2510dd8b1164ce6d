-- One flush of one instance of a fleet circuit breaker (palisade-breaker, src/fleet/redis.rs).
-- Both keys share the hash tag {<name>}, so the script touches one Redis Cluster slot.
--
-- KEYS[1] <prefix>{<name>}:window  hash: c f s (running totals), lo (oldest second held),
--                                   <sec>c <sec>f <sec>s (the counts of one second)
-- KEYS[2] <prefix>{<name>}:state   hash: state (0 closed, 1 open, 2 half-open), epoch, until
--                                   (end of OPEN, ms), opens (consecutive), since (start of
--                                   HALF_OPEN, ms), and per instance in HALF_OPEN: h:<id>
--                                   (leased probes not finished), rc:<id> rf:<id> rs:<id>
--                                   (its probe outcomes), ts:<id> (its last report, ms)
--
-- ARGV: 1 id, 2 window (s), 3-5 calls failed slow since the last flush, 6 minimum calls,
-- 7 failure threshold (%), 8 slow threshold (%), 9 wait in open (ms), 10 wait multiplier,
-- 11 max wait in open (ms), 12 permitted in half-open, 13 max wait in half-open (ms, 0 none),
-- 14 the epoch the instance is in (-1 none), 15 its held leases, 16-18 its probe outcomes
-- (calls failed slow, absolute), 19 leases wanted, 20 lease lifetime (ms), 21 state TTL (ms)
--
-- Returns {state, epoch, ms left of OPEN, leases granted, window c f s, probes c f s}.
-- Redis's TIME is the only clock. Every transition bumps the epoch (a fencing token): probe
-- reports and leases of an older epoch are ignored, and the state is only ever changed here,
-- atomically, from the state just read.

local W, S = KEYS[1], KEYS[2]
local id = ARGV[1]
local n = tonumber(ARGV[2])
local dc, df, ds = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local min_calls = tonumber(ARGV[6])
local fthr, sthr = tonumber(ARGV[7]), tonumber(ARGV[8])
local wait, mult, max_wait = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local permitted = tonumber(ARGV[12])
local max_half = tonumber(ARGV[13])
local seen = tonumber(ARGV[14])
local held, rc, rf, rs = tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])
local want = tonumber(ARGV[19])
local lease_ttl = tonumber(ARGV[20])
local state_ttl = tonumber(ARGV[21])

local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec * 1000 + math.floor(tonumber(t[2]) / 1000)

-- 1. The window: drop the seconds that left it, add this instance's counts to this second.
local first = sec - n + 1
local lo = tonumber(redis.call('HGET', W, 'lo'))
if lo == nil or first - lo >= n then
  redis.call('DEL', W)
  redis.call('HSET', W, 'lo', first)
elseif lo < first then
  local c, f, s = 0, 0, 0
  for x = lo, first - 1 do
    local v = redis.call('HMGET', W, x .. 'c', x .. 'f', x .. 's')
    c = c + (tonumber(v[1]) or 0)
    f = f + (tonumber(v[2]) or 0)
    s = s + (tonumber(v[3]) or 0)
    redis.call('HDEL', W, x .. 'c', x .. 'f', x .. 's')
  end
  if c ~= 0 then redis.call('HINCRBY', W, 'c', -c) end
  if f ~= 0 then redis.call('HINCRBY', W, 'f', -f) end
  if s ~= 0 then redis.call('HINCRBY', W, 's', -s) end
  redis.call('HSET', W, 'lo', first)
end
if dc > 0 then
  redis.call('HINCRBY', W, sec .. 'c', dc)
  redis.call('HINCRBY', W, 'c', dc)
  if df > 0 then
    redis.call('HINCRBY', W, sec .. 'f', df)
    redis.call('HINCRBY', W, 'f', df)
  end
  if ds > 0 then
    redis.call('HINCRBY', W, sec .. 's', ds)
    redis.call('HINCRBY', W, 's', ds)
  end
end
redis.call('PEXPIRE', W, n * 1000 + 1000)
local tot = redis.call('HMGET', W, 'c', 'f', 's')
local c, f, s = tonumber(tot[1]) or 0, tonumber(tot[2]) or 0, tonumber(tot[3]) or 0

local function trips(calls, failed, slow)
  return calls > 0 and (failed * 100 >= fthr * calls or slow * 100 >= sthr * calls)
end

-- 2. The shared state.
local st = redis.call('HMGET', S, 'state', 'epoch', 'until', 'opens', 'since')
local state = tonumber(st[1]) or 0
local epoch = tonumber(st[2]) or 0
local open_until = tonumber(st[3]) or 0
local opens = tonumber(st[4]) or 0
local since = tonumber(st[5]) or 0

local function enter(to)
  epoch = epoch + 1
  state = to
  redis.call('DEL', S)
  if to == 1 then
    opens = opens + 1
    local w = wait * mult ^ math.min(opens - 1, 64)
    open_until = now + math.floor(math.min(w, math.max(max_wait, wait)))
  elseif to == 2 then
    since = now
  else
    -- CLOSED starts with fresh metrics.
    opens = 0
    redis.call('DEL', W)
    c, f, s = 0, 0, 0
  end
  redis.call('HSET', S, 'state', state, 'epoch', epoch, 'until', open_until, 'opens', opens, 'since', since)
end

if state == 0 then
  if c >= min_calls and trips(c, f, s) then enter(1) end
elseif state == 1 and now >= open_until then
  enter(2)
end

local grant, pc, pf, ps = 0, 0, 0, 0
if state == 2 then
  if seen == epoch then
    redis.call('HSET', S, 'h:' .. id, held, 'rc:' .. id, rc, 'rf:' .. id, rf, 'rs:' .. id, rs, 'ts:' .. id, now)
  else
    -- Leases granted in a reply this instance never read.
    redis.call('HDEL', S, 'h:' .. id, 'ts:' .. id)
  end
  local all = redis.call('HGETALL', S)
  local hs, ts = {}, {}
  for i = 1, #all, 2 do
    local kind, who = string.match(all[i], '^(%a+):(.+)$')
    local v = tonumber(all[i + 1]) or 0
    if kind == 'rc' then pc = pc + v
    elseif kind == 'rf' then pf = pf + v
    elseif kind == 'rs' then ps = ps + v
    elseif kind == 'h' then hs[who] = v
    elseif kind == 'ts' then ts[who] = v
    end
  end
  -- Leases of an instance that stopped reporting are free again.
  local live = 0
  for who, h in pairs(hs) do
    if (ts[who] or 0) + lease_ttl >= now then live = live + h end
  end
  if pc >= permitted then
    if trips(pc, pf, ps) then enter(1) else enter(0) end
  elseif max_half > 0 and now >= since + max_half then
    enter(1)
  elseif want > 0 then
    grant = math.min(want, math.max(0, permitted - pc - live))
    if grant > 0 then
      local mine = 0
      if seen == epoch then mine = held end
      redis.call('HSET', S, 'h:' .. id, mine + grant, 'ts:' .. id, now)
    end
  end
end
redis.call('PEXPIRE', S, state_ttl)

local left = 0
if state == 1 then left = math.max(0, open_until - now) end
if state ~= 2 then pc, pf, ps = 0, 0, 0 end
return {state, epoch, left, grant, c, f, s, pc, pf, ps}
