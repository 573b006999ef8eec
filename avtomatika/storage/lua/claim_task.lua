-- ARGV: prefix, worker id, now, worker ttl, capabilities JSON, poll id ('' = none), poll until,
-- max leases (0 = no limit), task types...
-- Each task type has one queue per requirement class (hash `classes:<type>`: queue -> requirements JSON);
-- eligibility is checked once per class and only the head of each eligible class queue is compared.
local p, worker = ARGV[1], ARGV[2]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local caps = cjson.decode(ARGV[5])
local poll, poll_until = ARGV[6], ARGV[7]
local first_type = 9
local max_active = tonumber(ARGV[8])
if max_active > 0 and redis.call('SCARD', K.wtasks(p, worker)) >= max_active then
  -- the worker holds as many tasks as it said it can run: no claim, and no wake-ups for this poll
  if poll ~= '' then
    for i = first_type, #ARGV do redis.call('ZREM', K.pollers(p, ARGV[i]), poll) end
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
  local classes = redis.call('HGETALL', K.classes(p, ARGV[i]))
  for j = 1, #classes, 2 do
    local queue, req = classes[j], classes[j + 1]
    if eligible(req, ARGV[i]) then
      local head = redis.call('ZRANGE', K.queue(p, queue), 0, 0, 'WITHSCORES')
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
      redis.call('ZREM', K.pollers(p, ARGV[i]), poll)
    else
      redis.call('ZADD', K.pollers(p, ARGV[i]), poll_until, poll)
    end
  end
end
if not best_member then return false end
redis.call('ZREM', K.queue(p, best_queue), best_member)
local _, _, task, job, timeout = string.find(best_member, '^[^|]*|([^|]*)|([^|]*)|([^|]*)$')
local deadline = now + tonumber(timeout)
redis.call('HSET', K.lease(p, task), 'job_id', job, 'worker_id', worker, 'deadline', deadline, 'type', best_type)
redis.call('ZADD', K.leases(p), math.min(deadline, now + ttl), task)
redis.call('SADD', K.wtasks(p, worker), task)
local record = redis.call('HMGET', K.job(p, job), 'seq', 'doc')
local left = redis.call('ZCARD', K.queue(p, best_queue))
-- an empty requirement class is forgotten (it comes back with its next task), so claims never walk
-- classes that hold nothing
if left == 0 then redis.call('HDEL', K.classes(p, best_type), best_queue) end
if left > 0 and redis.call('HGET', K.classes(p, best_type), best_queue) == '' then
  -- More tasks anyone may run are waiting: wake one other open poll of this type right here
  -- (requirement classes are left to the dispatcher, which checks eligibility).
  local other = redis.call('ZRANGEBYSCORE', K.pollers(p, best_type), now, '+inf', 'LIMIT', 0, 1)
  if other[1] then
    redis.call('RPUSH', K.wake(p, other[1]), 1)
    redis.call('EXPIRE', K.wake(p, other[1]), 120)
  end
  left = 0
end
-- a fan-out branch's record comes along (its task id is `<branch id>~<attempt>`)
local branch = ''
local tilde = string.find(task, '~', 1, true)
if tilde then branch = redis.call('HGET', K.branches(p, job), string.sub(task, 1, tilde - 1)) or '' end
return {task, job, best_type, tostring(deadline), record[1] or '', record[2] or '', left, branch}
