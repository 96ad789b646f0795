-- Appends entries to one channel, in order: to its history stream and to
-- its bucket's log, the history bounded by count, bytes and age, its keys
-- set to expire when idle. Atomic: a pod reading the log and a subscriber
-- resuming from the history see the same entries in the same order.
--
-- KEYS: 1 the channel's stream, 2 its metadata hash, 3 its bucket's log
-- ARGV: 1 channel name, 2 kind ('r' resumable, 'p' pod-bound),
--       3 history length, 4 history age (ms), 5 history bytes,
--       6 idle expiry (ms), 7 the log's length, 8 an epoch for a new channel,
--       then for each entry: event name, data, flag ('' an event, 'g' a gap
--       marker, 'f' the final event: the channel is closed after it)
-- Returns {epoch, then per entry: its id and 'ok', or the final event's id
-- and 'closed' (nothing appended: the channel was closed before)}.
--
-- The epoch is the channel's own (drawn when its keys are created)
-- followed by the first eight digits of this server's replication id,
-- which changes whenever the server restarts or a replica is promoted: an
-- id from before either is never taken as a position in what the server
-- holds now (see ids.rs).
local stream, meta, log = KEYS[1], KEYS[2], KEYS[3]
local channel, kind = ARGV[1], ARGV[2]
local max_len, max_age, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local expire, log_len = tonumber(ARGV[6]), tonumber(ARGV[7])

local own = redis.call('HGET', meta, 'epoch')
if not own then
  own = ARGV[8]
  redis.call('HSET', meta, 'epoch', own, 'bytes', 0)
end
local replid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)') or '00000000'
local epoch = own .. string.sub(replid, 1, 8)
redis.call('HSET', meta, 'kind', kind)

-- What an entry weighs against the bytes bound: its event and data, and a
-- fixed share for its id and field names.
local function weight(e, d) return #e + #d + 32 end

local now = redis.call('TIME')
local oldest_allowed = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - max_age

local reply = {epoch}
local added = 0
for at = 9, #ARGV, 3 do
  local event, data, flag = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local closed = redis.call('HGET', meta, 'closed')
  if closed then
    table.insert(reply, closed)
    table.insert(reply, 'closed')
  else
    local fields = {'e', event, 'd', data}
    if flag ~= '' then
      table.insert(fields, 'x')
      table.insert(fields, flag)
    end
    local id = redis.call('XADD', stream, '*', unpack(fields))
    redis.call('HINCRBY', meta, 'bytes', weight(event, data))
    if flag == 'f' then
      -- Kept beside the history, which may trim it: a late subscriber
      -- still gets the final event.
      redis.call('HSET', meta, 'closed', id, 'fe', event, 'fd', data)
    end
    table.insert(fields, 'c')
    table.insert(fields, channel)
    table.insert(fields, 'p')
    table.insert(fields, epoch)
    table.insert(fields, 'i')
    table.insert(fields, id)
    redis.call('XADD', log, 'MAXLEN', '~', log_len, '*', unpack(fields))
    table.insert(reply, id)
    table.insert(reply, 'ok')
    added = added + 1
  end
end

if added > 0 then
  -- Trim from the oldest: over the count, over the bytes, or too old. A
  -- resume from a trimmed id then finds it gone and is told `gap`.
  local bytes = tonumber(redis.call('HGET', meta, 'bytes'))
  local len = redis.call('XLEN', stream)
  for _ = 1, 10000 do
    local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
    if not first then break end
    local first_ms = tonumber(string.match(first[1], '^(%d+)'))
    if not (len > max_len or bytes > max_bytes or first_ms < oldest_allowed) then break end
    local fields, e, d = first[2], '', ''
    for i = 1, #fields, 2 do
      if fields[i] == 'e' then e = fields[i + 1] elseif fields[i] == 'd' then d = fields[i + 1] end
    end
    redis.call('XDEL', stream, first[1])
    bytes = redis.call('HINCRBY', meta, 'bytes', -weight(e, d))
    len = len - 1
  end
end
redis.call('PEXPIRE', stream, expire)
redis.call('PEXPIRE', meta, expire)
return reply
