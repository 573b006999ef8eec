-- ARGV: prefix, worker id, now, ttl, status, load ('' = unchanged), then pairs (field, JSON value) of other
-- fields the heartbeat changes (stored as 'f:<field>', read over the registration document).
local p, worker = ARGV[1], ARGV[2]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local key = K.worker(p, worker)
if redis.call('EXISTS', key) == 0 then return false end
if ARGV[5] ~= '' then redis.call('HSET', key, 'status', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', key, 'load', ARGV[6]) end
for i = 7, #ARGV, 2 do redis.call('HSET', key, 'f:' .. ARGV[i], ARGV[i + 1]) end
redis.call('HSET', key, 'last_seen', ARGV[3])
redis.call('EXPIRE', key, math.ceil(ttl))
redis.call('ZADD', K.workers(p), now + ttl, worker)
for _, task in ipairs(redis.call('SMEMBERS', K.wtasks(p, worker))) do
  local deadline = redis.call('HGET', K.lease(p, task), 'deadline')
  if deadline then
    redis.call('ZADD', K.leases(p), math.min(tonumber(deadline), now + ttl), task)
  else
    redis.call('SREM', K.wtasks(p, worker), task)
  end
end
local cancels = redis.call('SMEMBERS', K.cancel(p, worker))
redis.call('DEL', K.cancel(p, worker))
return {redis.call('HGETALL', key), cancels}
