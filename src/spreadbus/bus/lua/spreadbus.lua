#!lua name=spreadbus
--[==[
Tick publishing, executed inside Redis so that one call per symbol per flush does the work of
hundreds of commands, and so that idempotency and exact candles are decided next to the data.

publish_ticks(KEYS, ARGV)
  KEYS: 1 real stream, 2 ghost stream, 3 price series (LAST, feeds close),
        4 open source (FIRST), 5 high source (MAX), 6 low source (MIN), 7 volume source (SUM)
        -- all hash-tagged on one symbol, so the call is legal on Redis Cluster.
  ARGV[1]: JSON {"f": [field names], "t": [[values...], ...], "g": [[values...], ...],
                 "cut": "<min real id>", "gcut": "<min ghost id>"}
           rows hold every field as text, in the order of "f" (spreadbus.bus.codec.TICK_FIELDS).
  Returns {real added, real duplicates, ghost added}.

Each real tick is XADDed with id "<trade time>-<trade id>". Redis refuses an id that is not above
the stream's last one, so a trade seen twice (a replay after a restart, the overlap of two
connections) is refused here and, crucially, never reaches the volume sum. Accepted ticks are
pre-aggregated per millisecond (first/max/min/last price, summed quantity) and written with one
TS.MADD; the series' duplicate policies merge a millisecond that spans two calls, and the
compaction rules turn the sources into exact 1-minute candles.
]==]

local MADD_CHUNK = 400  -- samples per TS.MADD: 5 series x 3 args x 400 stays under Lua's stack

local function index_of(names, wanted)
  for i, name in ipairs(names) do
    if name == wanted then return i end
  end
  error('publish_ticks: field ' .. wanted .. ' missing')
end

local function xadd_all(key, id, names, row)
  local argv = {key, id}
  for i = 1, #names do
    argv[#argv + 1] = names[i]
    argv[#argv + 1] = row[i]
  end
  return redis.pcall('XADD', unpack(argv))
end

local function flush_samples(keys, samples)
  local args = {}
  local count = 0
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
      args = {}
      count = 0
    end
  end
  if count > 0 then redis.call('TS.MADD', unpack(args)) end
end

local function publish_ticks(keys, args)
  local batch = cjson.decode(args[1])
  local names = batch.f
  local i_t, i_id = index_of(names, 'T'), index_of(names, 'id')
  local i_price, i_qty = index_of(names, 'price'), index_of(names, 'qty')
  local added, dupes, ghosts = 0, 0, 0
  local samples, by_ms = {}, {}
  for _, row in ipairs(batch.t or {}) do
    local reply = xadd_all(keys[1], row[i_t] .. '-' .. row[i_id], names, row)
    if type(reply) == 'table' and reply.err then
      if string.find(reply.err, 'equal or smaller', 1, true) then
        dupes = dupes + 1
      else
        return redis.error_reply(reply.err)
      end
    else
      added = added + 1
      local ms, price, qty = row[i_t], tonumber(row[i_price]), tonumber(row[i_qty])
      local s = by_ms[ms]
      if s == nil then
        s = {ms, price, price, price, price, qty}  -- ms, first, max, min, last, volume
        by_ms[ms] = s
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
  for _, row in ipairs(batch.g or {}) do
    xadd_all(keys[2], '*', names, row)
    ghosts = ghosts + 1
  end
  if batch.cut then redis.call('XTRIM', keys[1], 'MINID', '~', batch.cut) end
  if batch.gcut then redis.call('XTRIM', keys[2], 'MINID', '~', batch.gcut) end
  return {added, dupes, ghosts}
end

redis.register_function('spreadbus_publish_ticks', publish_ticks)
