-- KEYS: job, idempotency ('' = none), watch, quota ('' = none). ARGV: job id, doc, idempotency ttl,
-- watch_until ('' = none), step list key ('' = none), step message, status, created_at, prefix,
-- quota limit, quota expiry (epoch seconds).
-- Returns the job id (the first job's for a repeated idempotency key), or nil when the quota is used up.
if KEYS[2] ~= '' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return existing end
end
if KEYS[4] ~= '' then
  local used = tonumber(redis.call('GET', KEYS[4]) or '0')
  if used >= tonumber(ARGV[10]) then return false end
end
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3]) end
if KEYS[4] ~= '' then
  redis.call('INCR', KEYS[4])
  redis.call('EXPIREAT', KEYS[4], ARGV[11])
end
redis.call('HSET', KEYS[1], 'seq', 0, 'doc', ARGV[2], 'status', ARGV[7])
redis.call('ZADD', K.by_status(ARGV[9], ARGV[7]), ARGV[8], ARGV[1])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1]) end
-- the first step's Celery message, pushed as kombu's Redis transport does (LPUSH, consumers BRPOP)
if ARGV[5] ~= '' then redis.call('LPUSH', ARGV[5], ARGV[6]) end
return ARGV[1]
