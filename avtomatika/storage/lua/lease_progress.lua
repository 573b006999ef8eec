-- KEYS: lease. ARGV: worker id, progress JSON. Stores a progress event on the task's lease only while that
-- worker holds it (the lease's end deletes it together with its progress). Returns 1 if stored.
if redis.call('HGET', KEYS[1], 'worker_id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[2])
return 1
