-- KEYS: pollers zset. ARGV: now, size, start fraction. Up to `size` open polls from a random offset.
local n = redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf')
if n == 0 then return {} end
local size = tonumber(ARGV[2])
local offset = math.floor(tonumber(ARGV[3]) * n)
local found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'LIMIT', offset, size)
if #found < size and offset > 0 then
  local more = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'LIMIT', 0, math.min(size - #found, offset))
  for _, poll in ipairs(more) do found[#found + 1] = poll end
end
return found
