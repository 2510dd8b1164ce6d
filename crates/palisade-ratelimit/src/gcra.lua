-- GCRA over several quotas, check-then-commit, one round trip, Redis's clock.
-- KEYS[i]: the TAT (microseconds since the epoch) of quota i for one key; all KEYS share
-- one {hash tag} so they live in one Redis Cluster slot.
-- ARGV[1]: longest acceptable wait in microseconds, or -1 to refuse anything that does
-- not conform now. ARGV[2]: one character per quota, '1' for a shadow quota (empty: none).
-- ARGV[2i+1], ARGV[2i+2]: emission interval and tolerance of quota i (us).
-- Returns {allowed + 2 * (bit i-1 set when shadow quota i would refuse), then per quota
-- the time its TAT is ahead of now (us)}; the client derives remaining units and waits
-- from those (it knows each quota's interval and tolerance). With one quota (the usual
-- case) the same as one integer, ahead * 32 + head (< 2^53: ahead is at most 31 days),
-- computed without any table: building and returning tables costs the server several
-- microseconds (allocation, garbage collection, reply conversion). Kept to TIME, one GET
-- per quota and one SET per committed quota: each redis.call costs a microsecond or more.
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local max_wait = tonumber(ARGV[1])
local flags = ARGV[2]
local n = #KEYS
if n == 1 then
  local em = tonumber(ARGV[3])
  local tat = tonumber(redis.call('GET', KEYS[1])) or 0
  local w = tat
  if w < now then w = now end
  w = w + em - tonumber(ARGV[4]) - now
  if w < 0 then w = 0 end
  local wait, skip = w, 0
  -- A shadow quota never makes the request wait; it is skipped if it would refuse.
  if flags == '1' then
    wait = 0
    if w > 0 then skip = 2 end
  end
  local allowed = 0
  if wait == 0 or (max_wait >= 0 and wait <= max_wait) then allowed = 1 end
  if allowed == 1 and skip == 0 then
    if tat < now + wait then tat = now + wait end
    tat = tat + em
    redis.call('SET', KEYS[1], string.format('%d', tat), 'PX',
      string.format('%d', (tat - now) / 1000 + 1001))
  end
  if tat < now then tat = now end
  return (tat - now) * 32 + allowed + skip
end
local tats, waits, wait = {}, {}, 0
for i = 1, n do
  local tat = tonumber(redis.call('GET', KEYS[i])) or 0
  tats[i] = tat
  if tat < now then tat = now end
  local w = tat + tonumber(ARGV[2 * i + 1]) - tonumber(ARGV[2 * i + 2]) - now
  if w < 0 then w = 0 end
  waits[i] = w
  if w > wait and string.byte(flags, i) ~= 49 then wait = w end
end
local allowed = 0
if wait == 0 or (max_wait >= 0 and wait <= max_wait) then allowed = 1 end
local out = {allowed}
local mask, bit = 0, 2
for i = 1, n do
  local tat = tats[i]
  local skip = string.byte(flags, i) == 49 and waits[i] > wait
  if skip then mask = mask + bit end
  bit = bit * 2
  if allowed == 1 and not skip then
    if tat < now + wait then tat = now + wait end
    tat = tat + tonumber(ARGV[2 * i + 1])
    -- The key expires once the quota is full again: then it equals a missing key.
    redis.call('SET', KEYS[i], string.format('%d', tat), 'PX',
      string.format('%d', (tat - now) / 1000 + 1001))
  end
  if tat < now then tat = now end
  out[i + 1] = tat - now
end
out[1] = allowed + mask
return out
