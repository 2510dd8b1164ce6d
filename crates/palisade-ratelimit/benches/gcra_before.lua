-- GCRA over several quotas, check-then-commit, one round trip, Redis's clock.
-- KEYS[i]: the TAT (microseconds since the epoch) of quota i for one key; all KEYS share
-- one {hash tag} so they live in one Redis Cluster slot.
-- ARGV[1]: longest acceptable wait in microseconds, or -1 to refuse anything that does
-- not conform now. ARGV[2i], ARGV[2i+1]: emission interval and tolerance of quota i (us).
-- Returns {allowed, wait, then per quota: remaining, reset_us, wait_us}.
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max_wait = tonumber(ARGV[1])
local n = #KEYS
local tats, waits, wait = {}, {}, 0
for i = 1, n do
  local em = tonumber(ARGV[2 * i])
  local tol = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0) or 0
  tats[i] = tat
  local w = math.max(tat, now) + em - tol - now
  if w < 0 then w = 0 end
  waits[i] = w
  if w > wait then wait = w end
end
local allowed = 0
if wait == 0 or (max_wait >= 0 and wait <= max_wait) then allowed = 1 end
local out = {allowed, wait}
for i = 1, n do
  local em = tonumber(ARGV[2 * i])
  local tol = tonumber(ARGV[2 * i + 1])
  local tat = tats[i]
  if allowed == 1 then
    tat = math.max(tat, now + wait) + em
    -- The key expires once the quota is full again: then it equals a missing key.
    redis.call('SET', KEYS[i], string.format('%d', tat), 'PX',
      string.format('%d', math.ceil((tat - now) / 1000) + 1000))
  end
  local ahead = math.max(tat - now, 0)
  out[#out + 1] = math.floor(math.max(tol - ahead, 0) / em)
  out[#out + 1] = ahead
  if allowed == 1 then out[#out + 1] = 0 else out[#out + 1] = waits[i] end
end
return out
