-- ARGV: prefix, job id, now, lease seconds. Claim a due webhook delivery: its due time moves to now + lease
-- (so no other process delivers it meanwhile) and its attempt count grows. Returns the attempt or false.
local p, job = ARGV[1], ARGV[2]
local due = redis.call('ZSCORE', K.webhooks(p), job)
if not due or tonumber(due) > tonumber(ARGV[3]) then return false end
redis.call('ZADD', K.webhooks(p), 'XX', tonumber(ARGV[3]) + tonumber(ARGV[4]), job)
return redis.call('HINCRBY', K.webhook_attempts(p), job, 1)
