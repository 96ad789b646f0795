-- The server's generation, as the epochs of append.lua and resume.lua end
-- with it: the first eight digits of its replication id. A log reader asks
-- after reconnecting: a change means the server restarted or failed over,
-- and what this pod had not read yet may be lost.
--
-- KEYS: 1 a key on the server asked (a bucket's log)
return string.sub(string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)') or '00000000', 1, 8)
