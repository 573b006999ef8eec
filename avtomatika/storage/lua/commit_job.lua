-- KEYS: job, watch. ARGV: expected seq, new seq, doc, retention, watch_until, job id, prefix, ops JSON,
-- status, updated_at (the job's status is also a field of its hash, indexed in `by_status` zsets).
-- The ops are `avtomatika.ops` in wire form: {name, args...}. Phase 1 runs every check, phase 2 every
-- write: Redis does not roll back a script that stops halfway, so nothing may fail after the first write.
local current = redis.call('HGET', KEYS[1], 'seq')
if not current or tonumber(current) ~= tonumber(ARGV[1]) then return 'conflict' end
local p = ARGV[7]
local ops = {}
if ARGV[8] ~= '' then ops = cjson.decode(ARGV[8]) end

local function finite(text)
  local n = tonumber(text)
  return n ~= nil and n == n and n ~= math.huge and n ~= -math.huge
end

-- phase 1: checks
if tonumber(ARGV[4]) == nil or (ARGV[5] ~= '' and not finite(ARGV[5])) then return 'invalid' end
for _, op in ipairs(ops) do
  local name = op[1]
  if name == 'holds_lease' then
    if redis.call('HGET', K.lease(p, op[2]), 'worker_id') ~= op[3] then return 'lease' end
  elseif name == 'withdraw' then
    if op[4] and not redis.call('ZSCORE', K.queue(p, op[2]), op[3]) then return 'gone' end
  elseif name == 'enqueue' then
    if not finite(op[3]) then return 'invalid' end
  elseif name == 'grant_lease' then
    if not finite(op[5]) then return 'invalid' end
  elseif name == 'create_job' then
    if redis.call('EXISTS', K.job(p, op[2])) == 1 then return 'conflict' end
    if op[6] ~= '' and not finite(op[6]) then return 'invalid' end
  end
end

-- phase 2: writes
local old_status = redis.call('HGET', KEYS[1], 'status')
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'doc', ARGV[3], 'status', ARGV[9])
if old_status ~= ARGV[9] then
  if old_status then redis.call('ZREM', K.by_status(p, old_status), ARGV[6]) end
end
redis.call('ZADD', K.by_status(p, ARGV[9]), ARGV[10], ARGV[6])
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) else redis.call('PERSIST', KEYS[1]) end
if ARGV[5] == '' then redis.call('ZREM', KEYS[2], ARGV[6]) else redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6]) end
for _, op in ipairs(ops) do
  local name = op[1]
  if name == 'end_lease' then
    local task = op[2]
    local lease = K.lease(p, task)
    local holder = redis.call('HGET', lease, 'worker_id')
    if holder then
      redis.call('SREM', K.wtasks(p, holder), task)
      redis.call('SET', K.answer(p, task), holder .. '|' .. op[3], 'EX', 86400)
    end
    redis.call('DEL', lease)
    redis.call('ZREM', K.leases(p), task)
  elseif name == 'notify_cancel' then
    local worker, task, job = op[2], op[3], op[4]
    redis.call('SADD', K.cancel(p, worker), task)
    redis.call('EXPIRE', K.cancel(p, worker), 86400)
    -- `command` is the protocol's key; SDK 1.0b3 reads `type` (see tasks.cancel_command)
    local cmd = cjson.encode({command = 'cancel_task', type = 'cancel_task', task_id = task, job_id = job})
    redis.call('RPUSH', K.wscmd(p, worker), cmd)
    redis.call('EXPIRE', K.wscmd(p, worker), 3600)
  elseif name == 'withdraw' then
    redis.call('ZREM', K.queue(p, op[2]), op[3])
    if redis.call('ZCARD', K.queue(p, op[2])) == 0 then
      redis.call('HDEL', K.classes(p, string.match(op[2], '^([^#]*)')), op[2])
    end
  elseif name == 'enqueue' then
    -- {queue, score, member, task type, requirements JSON}
    redis.call('ZADD', K.queue(p, op[2]), op[3], op[4])
    redis.call('HSET', K.classes(p, op[5]), op[2], op[6])
    redis.call('SADD', K.queues(p), op[5])
  elseif name == 'grant_lease' then
    -- {task id, job id, worker id, deadline, task type}
    redis.call('HSET', K.lease(p, op[2]), 'job_id', op[3], 'worker_id', op[4], 'deadline', op[5], 'type', op[6])
    redis.call('ZADD', K.leases(p), op[5], op[2])
    redis.call('SADD', K.wtasks(p, op[4]), op[2])
  elseif name == 'create_job' then
    -- {job id, doc, status, created_at, watch_until, step list key, step message}
    redis.call('HSET', K.job(p, op[2]), 'seq', 0, 'doc', op[3], 'status', op[4])
    redis.call('ZADD', K.by_status(p, op[4]), op[5], op[2])
    if op[6] ~= '' then redis.call('ZADD', K.watch(p), op[6], op[2]) end
    if op[7] ~= '' then redis.call('LPUSH', op[7], op[8]) end
  elseif name == 'store_branches' then
    -- {job id, branch id, record JSON, branch id, record JSON, ...}
    local key = K.branches(p, op[2])
    for i = 3, #op, 2 do redis.call('HSET', key, op[i], op[i + 1]) end
  elseif name == 'queue_webhook' then
    redis.call('ZADD', K.webhooks(p), 'NX', op[3], op[2])
  elseif name == 'publish_step' then
    redis.call('LPUSH', op[2], op[3])
  elseif name == 'notify_end' then
    redis.call('RPUSH', K.ended(p, ARGV[6]), 1)
    redis.call('EXPIRE', K.ended(p, ARGV[6]), 5)
  end
end
return 'ok'
