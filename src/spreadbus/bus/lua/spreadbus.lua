#!lua name=spreadbus
--[==[
Tick publishing, executed inside Redis so that one call per flush does the work of hundreds of
commands, and so that idempotency and exact candles are decided next to the data.

publish_ticks(KEYS, ARGV)
  One call publishes a whole flush: any number of symbols, seven keys each.
  KEYS, per symbol: 1 real stream, 2 ghost stream, 3 price series (LAST, feeds close),
        4 open source (FIRST), 5 high source (MAX), 6 low source (MIN), 7 volume source (SUM)
        -- all hash-tagged on the symbol. On Redis Cluster a call carries one symbol (one slot);
        on a single node it carries every symbol of the flush, so the fixed cost of a call
        (tens of microseconds) is paid once per flush instead of once per symbol.
  ARGV: 1 the nine field names, tab-separated (spreadbus.bus.codec.TICK_FIELDS order:
          symbol id price qty side T E recv src)
        then per symbol, in KEYS order: the number of real ticks R, the number of ghost ticks G,
        the trim id of the real stream and of the ghost stream ("" = no trim), then 9 x R
        values of the real ticks and 9 x G values of the ghost ticks (TICK_FIELDS order).
  Returns {real added, real duplicates, ghost added}, summed over the symbols.

Every value is an argument of its own: Redis's protocol parser hands them to Lua as strings
for a fraction of what matching text lines in Lua costs (measured: 4 us a tick), and the client
packs them in C.

Each real tick is XADDed with id "<trade time>-<trade id>". Redis refuses an id that is not above
the stream's last one, so a trade seen twice (a replay after a restart, the overlap of two
connections) is refused here and, crucially, never reaches the volume sum.

Only accepted ticks reach the TimeSeries, in two forms:
* the raw price series gets one sample per millisecond: its last trade (LAST policy). It is
  also the close source: a 'last' compaction of it is the candle close.
* the open/high/low/volume sources get one sample per minute per call: the call's first price
  of that minute (at that trade's millisecond), its highest and lowest price and its summed
  quantity (at the millisecond of its last trade of that minute). Per symbol, ticks arrive in
  trade order, so every series' timestamps still only grow; when a millisecond spans two calls,
  the duplicate policies (FIRST, MAX, MIN, SUM) merge it correctly. A compaction of first, max,
  min and sum over the minute then yields the exact candle whatever the call boundaries were,
  at a fraction of the cost of four more samples per millisecond.
Prices go to Redis as the exchange's decimal text; the volume sum as %.17g (Lua would print a
number with only 14 significant digits).
]==]

local MADD_CHUNK = 1000  -- samples per TS.MADD: 3 args each stays under Lua's unpack limit
local MINUTE = 60000

-- TS.MADD of {key, ms, value, key, ms, value, ...}, in chunks
local function madd(args)
  local n = #args
  for first = 1, n, 3 * MADD_CHUNK do
    redis.call('TS.MADD', unpack(args, first, math.min(n, first + 3 * MADD_CHUNK - 1)))
  end
end

local function add_samples(keys, per_ms, minutes)
  local args = {}
  for _, s in ipairs(per_ms) do  -- {ms, last price text}
    args[#args + 1] = keys[3]; args[#args + 1] = s[1]; args[#args + 1] = s[2]
  end
  for _, m in ipairs(minutes) do  -- {first ms, open, last ms, high, low, volume, high#, low#}
    args[#args + 1] = keys[4]; args[#args + 1] = m[1]; args[#args + 1] = m[2]
    args[#args + 1] = keys[5]; args[#args + 1] = m[3]; args[#args + 1] = m[4]
    args[#args + 1] = keys[6]; args[#args + 1] = m[3]; args[#args + 1] = m[5]
    args[#args + 1] = keys[7]; args[#args + 1] = m[3]
    args[#args + 1] = string.format('%.17g', m[6])
  end
  madd(args)
end

-- XADD the R real ticks at args[p .. p + 9R - 1]; returns added, duplicates or nil, error
local function add_real(keys, names, args, p, count)
  local n1, n2, n3, n4, n5, n6, n7, n8, n9 = unpack(names)
  local added, dupes = 0, 0
  local per_ms, minutes = {}, {}
  local last_ms, minute = nil, nil
  for i = p, p + 9 * (count - 1), 9 do
    local id, price_text, qty_text, ms = args[i + 1], args[i + 2], args[i + 3], args[i + 5]
    local reply = redis.pcall('XADD', keys[1], ms .. '-' .. id,
      n1, args[i], n2, id, n3, price_text, n4, qty_text, n5, args[i + 4], n6, ms,
      n7, args[i + 6], n8, args[i + 7], n9, args[i + 8])
    if type(reply) == 'table' and reply.err then
      if not string.find(reply.err, 'equal or smaller', 1, true) then return nil, reply.err end
      dupes = dupes + 1
    else
      added = added + 1
      if ms == last_ms then
        per_ms[#per_ms][2] = price_text
      else
        per_ms[#per_ms + 1] = {ms, price_text}
        last_ms = ms
      end
      local price, qty = tonumber(price_text), tonumber(qty_text)
      local bucket = math.floor(tonumber(ms) / MINUTE)
      if minute == nil or minute.bucket ~= bucket then
        minute = {ms, price_text, ms, price_text, price_text, qty, price, price, bucket = bucket}
        minutes[#minutes + 1] = minute
      else
        minute[3] = ms
        if price > minute[7] then minute[7] = price; minute[4] = price_text end
        if price < minute[8] then minute[8] = price; minute[5] = price_text end
        minute[6] = minute[6] + qty
      end
    end
  end
  if added > 0 then add_samples(keys, per_ms, minutes) end
  return added, dupes
end

local function add_ghosts(keys, names, args, p, count)
  local n1, n2, n3, n4, n5, n6, n7, n8, n9 = unpack(names)
  for i = p, p + 9 * (count - 1), 9 do
    redis.call('XADD', keys[2], '*', n1, args[i], n2, args[i + 1], n3, args[i + 2],
      n4, args[i + 3], n5, args[i + 4], n6, args[i + 5], n7, args[i + 6], n8, args[i + 7],
      n9, args[i + 8])
  end
end

local function publish_ticks(keys, args)
  local names = {string.match(args[1],
    '^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)$')}
  if #names ~= 9 then return redis.error_reply('publish_ticks: expected nine field names') end
  if #keys % 7 ~= 0 then return redis.error_reply('publish_ticks: expected 7 keys a symbol') end
  local total = {0, 0, 0}
  local p = 2
  for k = 0, #keys - 1, 7 do
    local real, ghosts = tonumber(args[p]), tonumber(args[p + 1])
    local cut, ghost_cut = args[p + 2], args[p + 3]
    if real == nil or ghosts == nil or p + 3 + 9 * (real + ghosts) > #args then
      return redis.error_reply('publish_ticks: arguments do not match the tick counts')
    end
    local symbol_keys = {keys[k + 1], keys[k + 2], keys[k + 3], keys[k + 4], keys[k + 5],
      keys[k + 6], keys[k + 7]}
    p = p + 4
    if real > 0 then
      local added, dupes = add_real(symbol_keys, names, args, p, real)
      if added == nil then return redis.error_reply(dupes) end
      total[1], total[2] = total[1] + added, total[2] + dupes
      p = p + 9 * real
    end
    if ghosts > 0 then
      add_ghosts(symbol_keys, names, args, p, ghosts)
      total[3] = total[3] + ghosts
      p = p + 9 * ghosts
    end
    if cut ~= '' then redis.call('XTRIM', keys[k + 1], 'MINID', '~', cut) end
    if ghost_cut ~= '' then redis.call('XTRIM', keys[k + 2], 'MINID', '~', ghost_cut) end
  end
  if p ~= #args + 1 then
    return redis.error_reply('publish_ticks: arguments do not match the tick counts')
  end
  return total
end

redis.register_function('spreadbus_publish_ticks', publish_ticks)
