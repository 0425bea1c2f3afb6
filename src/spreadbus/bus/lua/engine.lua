#!lua name=spreadbus_engine
--[==[
The QuantEngine's results, written atomically (spreadbus.engine.writer.SnapshotWriter).

apply(KEYS, ARGV)
  One call stores everything one engine batch produced: the pairs' and symbols' snapshot
  fields, their chart samples, the alert states, the alerts, and last the stream cursor, so
  the cursor never runs ahead of or behind the results it describes (a function runs
  atomically and the AOF records its effects as one transaction).
  KEYS: every key the call writes (declared, as functions require).
  ARGV: 1 JSON; keys are given as indexes into KEYS:
          h: [[key, [field, value, ...]], ...]         HSET
          d: [[key, [field, ...]], ...]                HDEL
          m: [key, ts, value, key, ts, value, ...]     TS.MADD (chunked)
          p: [[channel, message], ...]                 PUBLISH
          l: [key, [message, ...], cap]                LPUSH + LTRIM
          f: [key, owner]  (optional) a share's lease: unless GET key == owner, nothing is
             written and the call fails with SPREADBUS_FENCED (an engine that lost its share
             while frozen must not store a batch the new owner also processes)
        Values arrive as text.
  Returns {refused commands or samples, first refusal}: as in a transaction, a command Redis
  refuses (a chart sample for a series someone deleted) does not stop the others.

Why JSON in one argument rather than MULTI: the batch travels as one value instead of ~50
commands and ~500 arguments, which redis-py spent about 5 ms encoding at every batch.
]==]

local CHUNK = 2400  -- arguments per call: well under Lua's unpack limit

local function apply(keys, args)
  local batch = cjson.decode(args[1])
  if batch.f and redis.call('GET', keys[batch.f[1]]) ~= batch.f[2] then
    return redis.error_reply('SPREADBUS_FENCED the lease ' .. keys[batch.f[1]] .. ' is not ours')
  end
  local refused, first = 0, ''
  local function note(reply)
    if type(reply) == 'table' then
      if reply.err then
        refused = refused + 1
        if first == '' then first = reply.err end
      else
        for _, item in ipairs(reply) do
          if type(item) == 'table' and item.err then
            refused = refused + 1
            if first == '' then first = item.err end
          end
        end
      end
    end
  end
  local function chunked(command, key, items)
    for i = 1, #items, CHUNK do
      local part = {}
      for j = i, math.min(i + CHUNK - 1, #items) do part[#part + 1] = items[j] end
      if key then note(redis.pcall(command, key, unpack(part)))
      else note(redis.pcall(command, unpack(part))) end
    end
  end
  for _, h in ipairs(batch.h or {}) do chunked('HSET', keys[h[1]], h[2]) end
  for _, d in ipairs(batch.d or {}) do chunked('HDEL', keys[d[1]], d[2]) end
  local m = batch.m or {}
  if #m > 0 then
    local samples = {}
    for i = 1, #m, 3 do
      samples[#samples + 1] = keys[m[i]]
      samples[#samples + 1] = m[i + 1]
      samples[#samples + 1] = m[i + 2]
    end
    chunked('TS.MADD', nil, samples)
  end
  for _, p in ipairs(batch.p or {}) do note(redis.pcall('PUBLISH', p[1], p[2])) end
  if batch.l then
    local key = keys[batch.l[1]]
    for _, message in ipairs(batch.l[2]) do note(redis.pcall('LPUSH', key, message)) end
    note(redis.pcall('LTRIM', key, 0, batch.l[3] - 1))
  end
  return {refused, first}
end

redis.register_function('spreadbus_engine_apply', apply)
