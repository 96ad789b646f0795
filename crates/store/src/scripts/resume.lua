-- What a subscriber arriving with a Last-Event-ID gets from a channel's
-- history, in one step.
--
-- KEYS: 1 the channel's stream, 2 its metadata hash
-- ARGV: 1 the client's epoch ('' when it gave no id), 2 the client's entry
--       id (ms-seq, '' when none), 3 the most entries to return
-- Returns {epoch ('' for an unknown channel; see append.lua), status,
-- entries, the final event's id ('' while open), its event name, its data,
-- the channel's kind}: status 'all' (no id: the whole history), 'after'
-- (the id is in the history: the entries after it), or 'gap' (it is not:
-- another epoch, trimmed, or lost; the whole history, after a gap event).
local stream, meta = KEYS[1], KEYS[2]
local count = tonumber(ARGV[3])
local own = redis.call('HGET', meta, 'epoch')
local epoch = ''
if own then
  local replid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)') or '00000000'
  epoch = own .. string.sub(replid, 1, 8)
end
local final = redis.call('HMGET', meta, 'closed', 'fe', 'fd', 'kind')
local closed, fe, fd, kind = final[1] or '', final[2] or '', final[3] or '', final[4] or ''
local status, entries
if ARGV[2] == '' then
  status, entries = 'all', redis.call('XRANGE', stream, '-', '+', 'COUNT', count)
elseif epoch ~= '' and epoch == ARGV[1] and #redis.call('XRANGE', stream, ARGV[2], ARGV[2]) == 1 then
  status, entries = 'after', redis.call('XRANGE', stream, '(' .. ARGV[2], '+', 'COUNT', count)
elseif epoch ~= '' and epoch == ARGV[1] and ARGV[2] == closed then
  -- The final event's id, trimmed from the history since: nothing missed.
  status, entries = 'after', {}
else
  status, entries = 'gap', redis.call('XRANGE', stream, '-', '+', 'COUNT', count)
end
return {epoch, status, entries, closed, fe, fd, kind}
