-- ARGV: prefix, then pairs (worker id, reputation as JSON). Sets the reputation of live workers only (an
-- expired record is not brought back) and leaves their TTL alone.
local p = ARGV[1]
for i = 2, #ARGV, 2 do
  local key = K.worker(p, ARGV[i])
  if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'f:reputation', ARGV[i + 1]) end
end
return true
