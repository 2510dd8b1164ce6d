-- Token lease: take up to ARGV[1] units of every quota at once (GCRA, all quotas or none),
-- after giving back ARGV[2] units left unused from this instance's previous lease.
-- KEYS[i]: the TAT (us since the epoch) of quota i, all under one {hash tag}.
-- ARGV[2i+1], ARGV[2i+2]: emission interval and tolerance of quota i (us).
-- Returns {units taken (0: refused), then per quota the time its TAT is ahead of now}.
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local want = tonumber(ARGV[1])
local back = tonumber(ARGV[2])
local n = #KEYS
local tats, k = {}, want
for i = 1, n do
  local em = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i])) or 0
  -- Unused units come back: the TAT moves back by as many emission intervals (a TAT in
  -- the past is a full bucket, so nothing is ever credited twice).
  if back > 0 and tat > 0 then tat = tat - back * em end
  tats[i] = tat
  local ahead = tat - now
  if ahead < 0 then ahead = 0 end
  local avail = math.floor((tonumber(ARGV[2 * i + 2]) - ahead) / em)
  if avail < k then k = avail end
end
if k < 0 then k = 0 end
local out = {k}
for i = 1, n do
  local tat = tats[i]
  if k > 0 then
    if tat < now then tat = now end
    tat = tat + k * tonumber(ARGV[2 * i + 1])
  end
  if k > 0 or back > 0 then
    if tat > now then
      redis.call('SET', KEYS[i], string.format('%d', tat), 'PX',
        string.format('%d', (tat - now) / 1000 + 1001))
    else
      redis.call('DEL', KEYS[i])
    end
  end
  if tat < now then tat = now end
  out[i + 1] = tat - now
end
return out
