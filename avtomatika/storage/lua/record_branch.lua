-- ARGV: prefix, job id, branch id, task id, worker id, answer, result JSON ('' = retry), new branch record JSON
-- ('' = final), then for a retry either an enqueue {queue, score, member, task type, requirements JSON} or
-- a native lease {task id, deadline, task type} ('' fields when absent), then the native retry's Celery
-- message {list key, message} ('' when absent), pushed with the lease: it exists if and only if the lease does.
-- A branch's outcome: checked (the worker holds the lease, the branch still runs this attempt), then the
-- lease ends and the result is recorded (or the next attempt queued). Returns {verdict, done, parked context}.
local p, job, branch, task, worker = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HGET', K.lease(p, task), 'worker_id') ~= worker then return {'lease', 0, ''} end
if redis.call('HEXISTS', K.branch_results(p, job), branch) == 1 then return {'stale', 0, ''} end
local record = redis.call('HGET', K.branches(p, job), branch)
if not record or cjson.decode(record).task_id ~= task then return {'stale', 0, ''} end
local function finite(text)
  local n = tonumber(text)
  return n ~= nil and n == n and n ~= math.huge and n ~= -math.huge
end
if ARGV[9] ~= '' and not finite(ARGV[9]) then return {'invalid', 0, ''} end
if ARGV[14] ~= '' and not finite(ARGV[15]) then return {'invalid', 0, ''} end

redis.call('SREM', K.wtasks(p, worker), task)
redis.call('SET', K.answer(p, task), worker .. '|' .. ARGV[6], 'EX', 86400)
redis.call('DEL', K.lease(p, task))
redis.call('ZREM', K.leases(p), task)
if ARGV[7] ~= '' then
  redis.call('HSET', K.branch_results(p, job), branch, ARGV[7])
else
  redis.call('HSET', K.branches(p, job), branch, ARGV[8])
  if ARGV[9] ~= '' then
    redis.call('ZADD', K.queue(p, ARGV[10]), ARGV[9], ARGV[11])
    redis.call('HSET', K.classes(p, ARGV[12]), ARGV[10], ARGV[13])
    redis.call('SADD', K.queues(p), ARGV[12])
  elseif ARGV[14] ~= '' then
    redis.call('HSET', K.lease(p, ARGV[14]), 'job_id', job, 'worker_id', 'celery', 'deadline', ARGV[15], 'type', ARGV[16])
    redis.call('ZADD', K.leases(p), ARGV[15], ARGV[14])
    redis.call('SADD', K.wtasks(p, 'celery'), ARGV[14])
    if ARGV[17] ~= '' then redis.call('LPUSH', ARGV[17], ARGV[18]) end
  end
end
-- the parked chord context goes to this caller, who completes the member (a crash before that leaves the
-- fan-in to the sweep, which runs it from the recorded outcomes)
local parked = ''
if ARGV[7] ~= '' then
  parked = redis.call('HGET', K.parked(p, job), branch) or ''
  if parked ~= '' then redis.call('HDEL', K.parked(p, job), branch) end
end
return {'ok', redis.call('HLEN', K.branch_results(p, job)), parked}
