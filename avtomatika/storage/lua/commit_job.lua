-- KEYS: job, watch. ARGV: expected seq, new seq, doc, retention, watch_until, job id, prefix, changes JSON.
local current = redis.call('HGET', KEYS[1], 'seq')
if not current or tonumber(current) ~= tonumber(ARGV[1]) then return 'conflict' end
local p = ARGV[7]
local ch = nil
if ARGV[8] ~= '' then ch = cjson.decode(ARGV[8]) end
-- Every check that can fail runs before the first write: Redis does not roll back a script that stops
-- halfway, so a bad number must never leave the job written but its task in no queue.
local function finite(text)
  local n = tonumber(text)
  return n ~= nil and n == n and n ~= math.huge and n ~= -math.huge
end
if ch and ch.enqueue and not finite(ch.enqueue[2]) then return 'invalid' end
if ch and ch.native_lease and not finite(ch.native_lease[4]) then return 'invalid' end
if tonumber(ARGV[4]) == nil or (ARGV[5] ~= '' and not finite(ARGV[5])) then return 'invalid' end
if ch and ch.lease_check then
  local holder = redis.call('HGET', K.lease(p, ch.lease_check[1]), 'worker_id')
  if holder ~= ch.lease_check[2] then return 'lease' end
end
if ch and ch.withdraw then
  local removed = redis.call('ZREM', K.queue(p, ch.withdraw[1]), ch.withdraw[2])
  if removed == 0 and ch.require_withdraw then return 'gone' end
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'doc', ARGV[3])
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) else redis.call('PERSIST', KEYS[1]) end
if ARGV[5] == '' then redis.call('ZREM', KEYS[2], ARGV[6]) else redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6]) end
if not ch then return 'ok' end
if ch.end_lease then
  local task = ch.end_lease[1]
  local lease = K.lease(p, task)
  local holder = redis.call('HGET', lease, 'worker_id')
  if holder then
    redis.call('SREM', K.wtasks(p, holder), task)
    redis.call('SET', K.answer(p, task), holder .. '|' .. ch.end_lease[2], 'EX', 86400)
  end
  redis.call('DEL', lease)
  redis.call('ZREM', K.leases(p), task)
end
if ch.cancel_notice then
  local worker, task, job = ch.cancel_notice[1], ch.cancel_notice[2], ch.cancel_notice[3]
  redis.call('SADD', K.cancel(p, worker), task)
  redis.call('EXPIRE', K.cancel(p, worker), 86400)
  -- `command` is the protocol's key; SDK 1.0b3 reads `type` (see tasks.cancel_command)
  local cmd = cjson.encode({command = 'cancel_task', type = 'cancel_task', task_id = task, job_id = job})
  redis.call('RPUSH', K.wscmd(p, worker), cmd)
  redis.call('EXPIRE', K.wscmd(p, worker), 3600)
end
if ch.enqueue then
  -- [queue, score, member, task type, requirements JSON]
  redis.call('ZADD', K.queue(p, ch.enqueue[1]), ch.enqueue[2], ch.enqueue[3])
  redis.call('HSET', K.classes(p, ch.enqueue[4]), ch.enqueue[1], ch.enqueue[5])
  redis.call('SADD', K.queues(p), ch.enqueue[4])
end
if ch.publish then redis.call('LPUSH', ch.publish[1], ch.publish[2]) end
if ch.notify_end then
  redis.call('RPUSH', K.ended(p, ARGV[6]), 1)
  redis.call('EXPIRE', K.ended(p, ARGV[6]), 5)
end
if ch.native_lease then
  local l = ch.native_lease
  redis.call('HSET', K.lease(p, l[1]), 'job_id', l[2], 'worker_id', l[3], 'deadline', l[4], 'type', l[5])
  redis.call('ZADD', K.leases(p), l[4], l[1])
  redis.call('SADD', K.wtasks(p, l[3]), l[1])
end
return 'ok'
