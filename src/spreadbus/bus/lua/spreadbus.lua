#!lua name=spreadbus
--[==[
Tick publishing, executed inside Redis so that one call per symbol per flush does the work of
hundreds of commands, and so that idempotency and exact candles are decided next to the data.

publish_ticks(KEYS, ARGV)
  KEYS: 1 real stream, 2 ghost stream, 3 price series (LAST, feeds close),
        4 open source (FIRST), 5 high source (MAX), 6 low source (MIN), 7 volume source (SUM)
        -- all hash-tagged on one symbol, so the call is legal on Redis Cluster.
  ARGV: 1 the nine field names, tab-separated (spreadbus.bus.codec.TICK_FIELDS order:
          symbol id price qty side T E recv src)
        2 real ticks: one line per tick, the nine values tab-separated
        3 ghost ticks: likewise
        4 trim real entries below this id ("" = no trim)
        5 trim ghost entries below this id ("" = no trim)
  Returns {real added, real duplicates, ghost added}.

Plain text instead of JSON: splitting lines with string.gmatch costs a fraction of cjson, and
the values (validated symbols, decimals, integers) never hold a tab or a newline.

Each real tick is XADDed with id "<trade time>-<trade id>". Redis refuses an id that is not above
the stream's last one, so a trade seen twice (a replay after a restart, the overlap of two
connections) is refused here and, crucially, never reaches the volume sum. Accepted ticks are
pre-aggregated per millisecond (first/max/min/last price, summed quantity) and written with one
TS.MADD per chunk; the series' duplicate policies merge a millisecond that spans two calls, and
the compaction rules turn the sources into exact 1-minute candles.
]==]

local MADD_CHUNK = 400  -- samples per TS.MADD: 5 series x 3 args x 400 stays under Lua's stack
local LINE = '([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t'
  .. '([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)'

local function flush_samples(keys, samples)
  local args, count = {}, 0
  for _, s in ipairs(samples) do
    local ms = s[1]
    args[#args + 1] = keys[3]; args[#args + 1] = ms; args[#args + 1] = s[5]
    args[#args + 1] = keys[4]; args[#args + 1] = ms; args[#args + 1] = s[2]
    args[#args + 1] = keys[5]; args[#args + 1] = ms; args[#args + 1] = s[3]
    args[#args + 1] = keys[6]; args[#args + 1] = ms; args[#args + 1] = s[4]
    args[#args + 1] = keys[7]; args[#args + 1] = ms; args[#args + 1] = s[6]
    count = count + 1
    if count == MADD_CHUNK then
      redis.call('TS.MADD', unpack(args))
      args, count = {}, 0
    end
  end
  if count > 0 then redis.call('TS.MADD', unpack(args)) end
end

local function publish_ticks(keys, args)
  local n1, n2, n3, n4, n5, n6, n7, n8, n9 = string.match(args[1], LINE)
  if n9 == nil then return redis.error_reply('publish_ticks: expected nine field names') end
  local added, dupes, ghosts = 0, 0, 0
  local samples, by_ms = {}, {}
  for v1, v2, v3, v4, v5, v6, v7, v8, v9 in string.gmatch(args[2], LINE) do
    local reply = redis.pcall('XADD', keys[1], v6 .. '-' .. v2,
      n1, v1, n2, v2, n3, v3, n4, v4, n5, v5, n6, v6, n7, v7, n8, v8, n9, v9)
    if type(reply) == 'table' and reply.err then
      if string.find(reply.err, 'equal or smaller', 1, true) then
        dupes = dupes + 1
      else
        return redis.error_reply(reply.err)
      end
    else
      added = added + 1
      local price, qty = tonumber(v3), tonumber(v4)
      local s = by_ms[v6]
      if s == nil then
        s = {v6, price, price, price, price, qty}  -- ms, first, max, min, last, volume
        by_ms[v6] = s
        samples[#samples + 1] = s
      else
        if price > s[3] then s[3] = price end
        if price < s[4] then s[4] = price end
        s[5] = price
        s[6] = s[6] + qty
      end
    end
  end
  if #samples > 0 then flush_samples(keys, samples) end
  for v1, v2, v3, v4, v5, v6, v7, v8, v9 in string.gmatch(args[3], LINE) do
    redis.call('XADD', keys[2], '*',
      n1, v1, n2, v2, n3, v3, n4, v4, n5, v5, n6, v6, n7, v7, n8, v8, n9, v9)
    ghosts = ghosts + 1
  end
  if args[4] ~= '' then redis.call('XTRIM', keys[1], 'MINID', '~', args[4]) end
  if args[5] ~= '' then redis.call('XTRIM', keys[2], 'MINID', '~', args[5]) end
  return {added, dupes, ghosts}
end

redis.register_function('spreadbus_publish_ticks', publish_ticks)
