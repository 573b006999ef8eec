-- ARGV: prefix, job id, branch id, context JSON. A chord member parks its request context, unless the branch
-- already has its outcome: then that outcome is returned and the member returns it to Celery instead.
local p, job, branch = ARGV[1], ARGV[2], ARGV[3]
local result = redis.call('HGET', K.branch_results(p, job), branch)
if result then return result end
redis.call('HSET', K.parked(p, job), branch, ARGV[4])
return false
