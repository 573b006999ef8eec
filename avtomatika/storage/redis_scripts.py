"""The Lua scripts of the Redis backend: each check-and-change is one of these, run atomically by Redis."""

CREATE_JOB = """
if KEYS[2] ~= '' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return existing end
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
end
redis.call('HSET', KEYS[1], 'seq', 0, 'doc', ARGV[2])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1]) end
-- the first step's Celery message, pushed as kombu's Redis transport does (LPUSH, consumers BRPOP)
if ARGV[5] ~= '' then redis.call('LPUSH', ARGV[5], ARGV[6]) end
return ARGV[1]
"""

# KEYS: job, watch. ARGV: expected seq, new seq, doc, retention, watch_until, job id, prefix, changes JSON.
COMMIT_JOB = """
local current = redis.call('HGET', KEYS[1], 'seq')
if not current or tonumber(current) ~= tonumber(ARGV[1]) then return 'conflict' end
local p = ARGV[7]
local ch = nil
if ARGV[8] ~= '' then ch = cjson.decode(ARGV[8]) end
if ch and ch.lease_check then
  local holder = redis.call('HGET', p .. ':lease:' .. ch.lease_check[1], 'worker_id')
  if holder ~= ch.lease_check[2] then return 'lease' end
end
if ch and ch.withdraw then
  local removed = redis.call('ZREM', p .. ':queue:' .. ch.withdraw[1], ch.withdraw[2])
  if removed == 0 and ch.require_withdraw then return 'gone' end
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'doc', ARGV[3])
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) else redis.call('PERSIST', KEYS[1]) end
if ARGV[5] == '' then redis.call('ZREM', KEYS[2], ARGV[6]) else redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6]) end
if not ch then return 'ok' end
if ch.end_lease then
  local task = ch.end_lease[1]
  local lease = p .. ':lease:' .. task
  local holder = redis.call('HGET', lease, 'worker_id')
  if holder then
    redis.call('SREM', p .. ':wtasks:' .. holder, task)
    redis.call('SET', p .. ':answer:' .. task, holder .. '|' .. ch.end_lease[2], 'EX', 86400)
  end
  redis.call('DEL', lease)
  redis.call('ZREM', p .. ':leases', task)
end
if ch.cancel_notice then
  local worker, task, job = ch.cancel_notice[1], ch.cancel_notice[2], ch.cancel_notice[3]
  redis.call('SADD', p .. ':cancel:' .. worker, task)
  redis.call('EXPIRE', p .. ':cancel:' .. worker, 86400)
  -- `command` is the protocol's key; SDK 1.0b3 reads `type` (see tasks.cancel_command)
  local cmd = cjson.encode({command = 'cancel_task', type = 'cancel_task', task_id = task, job_id = job})
  redis.call('RPUSH', p .. ':wscmd:' .. worker, cmd)
  redis.call('EXPIRE', p .. ':wscmd:' .. worker, 3600)
end
if ch.enqueue then
  -- [queue, score, member, task type, requirements JSON]
  redis.call('ZADD', p .. ':queue:' .. ch.enqueue[1], ch.enqueue[2], ch.enqueue[3])
  redis.call('HSET', p .. ':classes:' .. ch.enqueue[4], ch.enqueue[1], ch.enqueue[5])
  redis.call('SADD', p .. ':queues', ch.enqueue[4])
end
if ch.publish then redis.call('LPUSH', ch.publish[1], ch.publish[2]) end
if ch.notify_end then
  redis.call('RPUSH', p .. ':ended:' .. ARGV[6], 1)
  redis.call('EXPIRE', p .. ':ended:' .. ARGV[6], 5)
end
if ch.native_lease then
  local l = ch.native_lease
  redis.call('HSET', p .. ':lease:' .. l[1], 'job_id', l[2], 'worker_id', l[3], 'deadline', l[4], 'type', l[5])
  redis.call('ZADD', p .. ':leases', l[4], l[1])
  redis.call('SADD', p .. ':wtasks:' .. l[3], l[1])
end
return 'ok'
"""

# ARGV: prefix, worker id, now, worker ttl, capabilities JSON, poll id ('' = none), poll until,
# max leases (0 = no limit), task types...
# Each task type has one queue per requirement class (hash `classes:<type>`: queue -> requirements JSON);
# eligibility is checked once per class and only the head of each eligible class queue is compared.
CLAIM_TASK = """
local p, worker = ARGV[1], ARGV[2]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local caps = cjson.decode(ARGV[5])
local poll, poll_until = ARGV[6], ARGV[7]
local first_type = 9
local max_active = tonumber(ARGV[8])
if max_active > 0 and redis.call('SCARD', p .. ':wtasks:' .. worker) >= max_active then
  -- the worker holds as many tasks as it said it can run: no claim, and no wake-ups for this poll
  if poll ~= '' then
    for i = first_type, #ARGV do redis.call('ZREM', p .. ':pollers:' .. ARGV[i], poll) end
  end
  return false
end
local function eligible(req, task_type)
  if req == nil or req == '' then return true end
  local r = cjson.decode(req)
  if r.gpu_model and not string.find(string.lower(caps.gpu_model), string.lower(r.gpu_model), 1, true) then
    return false
  end
  if r.vram_gb and caps.vram_gb < r.vram_gb then return false end
  if r.models then
    for _, name in ipairs(r.models) do
      local found = false
      for _, have in ipairs(caps.models) do if have == name then found = true break end end
      if not found then return false end
    end
  end
  if r.max_cost then
    local cost = caps.cost
    if type(caps.costs) == 'table' and caps.costs[task_type] then cost = caps.costs[task_type] end
    if cost > r.max_cost then return false end
  end
  return true
end
local best_type, best_queue, best_member, best_score
for i = first_type, #ARGV do
  local classes = redis.call('HGETALL', p .. ':classes:' .. ARGV[i])
  for j = 1, #classes, 2 do
    local queue, req = classes[j], classes[j + 1]
    if eligible(req, ARGV[i]) then
      local head = redis.call('ZRANGE', p .. ':queue:' .. queue, 0, 0, 'WITHSCORES')
      if head[1] then
        local member, score = head[1], tonumber(head[2])
        if not best_score or score < best_score or (score == best_score and member < best_member) then
          best_type, best_queue, best_member, best_score = ARGV[i], queue, member, score
        end
      end
    end
  end
end
if poll ~= '' then
  for i = first_type, #ARGV do
    if best_member then
      redis.call('ZREM', p .. ':pollers:' .. ARGV[i], poll)
    else
      redis.call('ZADD', p .. ':pollers:' .. ARGV[i], poll_until, poll)
    end
  end
end
if not best_member then return false end
redis.call('ZREM', p .. ':queue:' .. best_queue, best_member)
local _, _, task, job, timeout = string.find(best_member, '^[^|]*|([^|]*)|([^|]*)|([^|]*)$')
local deadline = now + tonumber(timeout)
redis.call('HSET', p .. ':lease:' .. task, 'job_id', job, 'worker_id', worker, 'deadline', deadline, 'type', best_type)
redis.call('ZADD', p .. ':leases', math.min(deadline, now + ttl), task)
redis.call('SADD', p .. ':wtasks:' .. worker, task)
local record = redis.call('HMGET', p .. ':job:{' .. job .. '}', 'seq', 'doc')
local left = redis.call('ZCARD', p .. ':queue:' .. best_queue)
if left > 0 and redis.call('HGET', p .. ':classes:' .. best_type, best_queue) == '' then
  -- More tasks anyone may run are waiting: wake one other open poll of this type right here
  -- (requirement classes are left to the dispatcher, which checks eligibility).
  local other = redis.call('ZRANGEBYSCORE', p .. ':pollers:' .. best_type, now, '+inf', 'LIMIT', 0, 1)
  if other[1] then
    redis.call('RPUSH', p .. ':wake:' .. other[1], 1)
    redis.call('EXPIRE', p .. ':wake:' .. other[1], 120)
  end
  left = 0
end
return {task, job, best_type, tostring(deadline), record[1] or '', record[2] or '', left}
"""

# ARGV: prefix, worker id, now, ttl, status, load ('' = unchanged), then pairs (field, JSON value) of other
# fields the heartbeat changes (stored as 'f:<field>', read over the registration document).
HEARTBEAT = """
local p, worker = ARGV[1], ARGV[2]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local key = p .. ':worker:' .. worker
if redis.call('EXISTS', key) == 0 then return false end
if ARGV[5] ~= '' then redis.call('HSET', key, 'status', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', key, 'load', ARGV[6]) end
for i = 7, #ARGV, 2 do redis.call('HSET', key, 'f:' .. ARGV[i], ARGV[i + 1]) end
redis.call('HSET', key, 'last_seen', ARGV[3])
redis.call('EXPIRE', key, math.ceil(ttl))
redis.call('ZADD', p .. ':workers', now + ttl, worker)
for _, task in ipairs(redis.call('SMEMBERS', p .. ':wtasks:' .. worker)) do
  local deadline = redis.call('HGET', p .. ':lease:' .. task, 'deadline')
  if deadline then
    redis.call('ZADD', p .. ':leases', math.min(tonumber(deadline), now + ttl), task)
  else
    redis.call('SREM', p .. ':wtasks:' .. worker, task)
  end
end
local cancels = redis.call('SMEMBERS', p .. ':cancel:' .. worker)
redis.call('DEL', p .. ':cancel:' .. worker)
return {redis.call('HGETALL', key), cancels}
"""

# KEYS: pollers zset. ARGV: now, size, start fraction. Up to `size` open polls from a random offset.
SAMPLE_POLLERS = """
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
"""

RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

REPLACE_HASH = """
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""
