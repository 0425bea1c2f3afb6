#!lua name=spreadbus
--[==[
Tick publishing, executed inside Redis so that one call per flush does the work of hundreds of
commands, and so that idempotency and exact candles are decided next to the data.

publish_ticks(KEYS, ARGV)
  One call publishes a whole flush: any number of symbols, twelve keys each.
  KEYS, per symbol: 1 real stream, 2 ghost stream, 3 price series (LAST, feeds close),
        4 open source (FIRST), 5 high source (MAX), 6 low source (MIN), 7 volume source (SUM),
        8..12 the close, open, high, low and volume candle series (only checked: the
        compaction rules of 3..7 write them)
        -- all hash-tagged on the symbol. On Redis Cluster a call carries one symbol (one slot);
        on a single node it carries every symbol of the flush, so the fixed cost of a call
        (tens of microseconds) is paid once per flush instead of once per symbol.
  ARGV: 1 the name of the entry's one field (spreadbus.bus.tickschema.FIELD, "t")
        then per symbol, in KEYS order: the number of real ticks R, the number of ghost ticks G,
        the trim id of the real stream and of the ghost stream ("" = no trim), then 5 x R
        values for the real ticks (trade ms, trade id, price, qty, entry value) and G entry
        values for the ghost ticks (spreadbus.bus.tickschema: real_args, ghost_args).
  Returns {real added, real duplicates, ghost added, samples refused}, summed over the symbols.

All or nothing, in effect. Redis does not roll a function back when one of its commands fails,
so the call checks everything a write depends on before it writes anything: the argument
counts, the twelve keys' types (the ten series must exist: TS.MADD into a missing series only
refuses that sample, it raises nothing, and a deleted candle series takes its compaction rule
with it) of every symbol of the call. A failed check answers
"SPREADBUS_MISSING_SERIES <key>" or "SPREADBUS_WRONG_TYPE <key>" and leaves Redis untouched,
so the caller can repair (spreadbus.bus.ticks.repair_symbol) and retry the very same batch.
What can still be refused after the checks (a sample older than a series' retention) is not
cured by a retry: the samples refused are counted in the reply instead of hidden.

refill_sources(KEYS, ARGV)
  KEYS: the twelve keys of one symbol, as above. ARGV: 1 the field name, 2 from_ms,
  3 five flags ("1"/"0") naming which of KEYS 3..7 to refill.
  Re-derives the samples of the stream's entries from from_ms on (the same samples
  publish_ticks made of them; entries of the older nine-field layout too) into the flagged
  series only: a series recreated after it was
  deleted gets back the minute its candle is still being built from. Returns the entries read.

Every value is an argument of its own: Redis's protocol parser hands them to Lua as strings
for a fraction of what matching text lines in Lua costs (measured: 4 us a tick), and the client
packs them in C.

Each real tick is XADDed with id "<trade time>-<trade id>" and one field, the tick's value
(price qty side E recv src, space-separated: the key and the id carry the rest); a ghost tick
with id "*" and a value that adds its trade time and id. Redis refuses an id that is not above
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
local KEYS_PER_SYMBOL = 12
local SOURCE_KEYS = {3, 4, 5, 6, 7}
local SERIES_KEYS = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

-- TS.MADD of {key, ms, value, key, ms, value, ...}, in chunks; returns the samples refused
local function madd(args)
  local n, refused = #args, 0
  for first = 1, n, 3 * MADD_CHUNK do
    local last = math.min(n, first + 3 * MADD_CHUNK - 1)
    local reply = redis.pcall('TS.MADD', unpack(args, first, last))
    if type(reply) == 'table' and reply.err then
      refused = refused + (last - first + 1) / 3
    else
      for _, sample in ipairs(reply) do
        if type(sample) == 'table' and sample.err then refused = refused + 1 end
      end
    end
  end
  return refused
end

-- The samples of a run of accepted ticks, in trade order: one per millisecond for the price
-- series, one per minute for the open/high/low/volume sources.
local function new_samples()
  return {per_ms = {}, minutes = {}, last_ms = nil, minute = nil}
end

local function add_tick(acc, ms, price_text, qty_text)
  local per_ms = acc.per_ms
  if ms == acc.last_ms then
    per_ms[#per_ms][2] = price_text
  else
    per_ms[#per_ms + 1] = {ms, price_text}
    acc.last_ms = ms
  end
  local price, qty = tonumber(price_text), tonumber(qty_text)
  local bucket = math.floor(tonumber(ms) / MINUTE)
  local minute = acc.minute
  if minute == nil or minute.bucket ~= bucket then
    -- {first ms, open, last ms, high, low, volume, high#, low#}
    minute = {ms, price_text, ms, price_text, price_text, qty, price, price, bucket = bucket}
    acc.minutes[#acc.minutes + 1] = minute
    acc.minute = minute
  else
    minute[3] = ms
    if price > minute[7] then minute[7] = price; minute[4] = price_text end
    if price < minute[8] then minute[8] = price; minute[5] = price_text end
    minute[6] = minute[6] + qty
  end
end

-- The samples for the series KEYS[k + 3 .. k + 7] whose flag in ``only`` is true (nil: all),
-- appended to ``args`` as TS.MADD arguments (key, ms, value, ...)
local function put(args, only, key, slot, ms, value)
  if only == nil or only[slot] then
    local n = #args
    args[n + 1] = key; args[n + 2] = ms; args[n + 3] = value
  end
end

local function sample_args(keys, k, acc, only, args)
  local price = keys[k + 3]
  for _, s in ipairs(acc.per_ms) do put(args, only, price, 3, s[1], s[2]) end
  for _, m in ipairs(acc.minutes) do
    put(args, only, keys[k + 4], 4, m[1], m[2])
    put(args, only, keys[k + 5], 5, m[3], m[4])
    put(args, only, keys[k + 6], 6, m[3], m[5])
    put(args, only, keys[k + 7], 7, m[3], string.format('%.17g', m[6]))
  end
  return args
end

-- Nothing is written unless every key the call writes can take its part: the streams it adds
-- to must be streams (or not exist yet), and for a symbol with real ticks all ten series must
-- exist. A redis.call from Lua costs far more than the command itself (twelve TYPE calls a
-- symbol were most of a small flush's time), so every stream the call writes is checked by
-- one XREAD (all_streams: it refuses a key of another type and passes a missing one), and the
-- series of every symbol of the call by one EXISTS (all_exist); only when a check fails does
-- the slow path name the key. A series key of the wrong type (another program wrote there) is
-- not caught here: TS.MADD refuses its samples, which the reply counts.
local CHUNK = 1000  -- keys per XREAD or EXISTS: under Lua's unpack limit

local function all_streams(streams)
  for first = 1, #streams, CHUNK do
    local last = math.min(#streams, first + CHUNK - 1)
    local args = {'COUNT', 1, 'STREAMS'}
    for i = first, last do args[#args + 1] = streams[i] end
    for _ = first, last do args[#args + 1] = '$' end
    local reply = redis.pcall('XREAD', unpack(args))
    if type(reply) == 'table' and reply.err then
      for i = first, last do
        local kind = redis.call('TYPE', streams[i])['ok']
        if kind ~= 'stream' and kind ~= 'none' then return 'SPREADBUS_WRONG_TYPE ' .. streams[i] end
      end
      return 'SPREADBUS_WRONG_TYPE (' .. reply.err .. ')'  -- not a type the slow path knows
    end
  end
  return nil
end

local function all_exist(series)
  local found = 0
  for first = 1, #series, CHUNK do
    found = found + redis.call('EXISTS', unpack(series, first, math.min(#series, first + CHUNK - 1)))
  end
  if found == #series then return nil end
  for _, key in ipairs(series) do
    local kind = redis.call('TYPE', key)['ok']
    if kind == 'none' then return 'SPREADBUS_MISSING_SERIES ' .. key end
    if kind ~= 'TSDB-TYPE' then return 'SPREADBUS_WRONG_TYPE ' .. key end
  end
  return nil  -- a key listed twice: counted once by EXISTS, and every one is there
end

-- XADD the R real ticks at args[p .. p + 5R - 1] to the stream KEYS[k + 1], their samples
-- appended to ``samples``; returns added, duplicates
local function add_real(keys, k, name, args, p, count, samples)
  local added, dupes = 0, 0
  local acc = new_samples()
  local stream = keys[k + 1]
  for i = p, p + 5 * (count - 1), 5 do
    local ms = args[i]
    local reply = redis.pcall('XADD', stream, ms .. '-' .. args[i + 1], name, args[i + 4])
    if type(reply) == 'table' and reply.err then
      -- the keys were checked, so the only refusal left is an id at or below the last one
      dupes = dupes + 1
    else
      added = added + 1
      add_tick(acc, ms, args[i + 2], args[i + 3])
    end
  end
  if added > 0 then sample_args(keys, k, acc, nil, samples) end
  return added, dupes
end

local function add_ghosts(stream, name, args, p, count)
  for i = p, p + count - 1 do
    redis.call('XADD', stream, '*', name, args[i])
  end
end

local REAL_ARGS, GHOST_ARGS = 5, 1

local function publish_ticks(keys, args)
  local name = args[1]
  if name == nil or name == '' then return redis.error_reply('publish_ticks: expected the field name') end
  if #keys % KEYS_PER_SYMBOL ~= 0 then
    return redis.error_reply('publish_ticks: expected 12 keys a symbol')
  end
  -- first pass: counts and keys of every symbol, before anything is written
  local p = 2
  local streams, series = {}, {}
  for k = 0, #keys - 1, KEYS_PER_SYMBOL do
    local real, ghosts = tonumber(args[p]), tonumber(args[p + 1])
    if real == nil or ghosts == nil or p + 3 + REAL_ARGS * real + GHOST_ARGS * ghosts > #args then
      return redis.error_reply('publish_ticks: arguments do not match the tick counts')
    end
    if real > 0 then
      streams[#streams + 1] = keys[k + 1]
      for _, slot in ipairs(SERIES_KEYS) do series[#series + 1] = keys[k + slot] end
    end
    if ghosts > 0 then streams[#streams + 1] = keys[k + 2] end
    p = p + 4 + REAL_ARGS * real + GHOST_ARGS * ghosts
  end
  if p ~= #args + 1 then
    return redis.error_reply('publish_ticks: arguments do not match the tick counts')
  end
  local problem = all_streams(streams) or all_exist(series)
  if problem ~= nil then return redis.error_reply(problem) end
  local total = {0, 0, 0, 0}
  local samples = {}  -- every symbol's, for one TS.MADD at the end
  p = 2
  for k = 0, #keys - 1, KEYS_PER_SYMBOL do
    local real, ghosts = tonumber(args[p]), tonumber(args[p + 1])
    local cut, ghost_cut = args[p + 2], args[p + 3]
    p = p + 4
    if real > 0 then
      local added, dupes = add_real(keys, k, name, args, p, real, samples)
      total[1], total[2] = total[1] + added, total[2] + dupes
      p = p + REAL_ARGS * real
    end
    if ghosts > 0 then
      add_ghosts(keys[k + 2], name, args, p, ghosts)
      total[3] = total[3] + ghosts
      p = p + GHOST_ARGS * ghosts
    end
    if cut ~= '' then redis.call('XTRIM', keys[k + 1], 'MINID', '~', cut) end
    if ghost_cut ~= '' then redis.call('XTRIM', keys[k + 2], 'MINID', '~', ghost_cut) end
  end
  if #samples > 0 then total[4] = madd(samples) end
  return total
end

-- trade ms, price text, qty text of a stream entry in either layout (nil: not a tick)
local function entry_sample(name, entry)
  local fields = entry[2]
  if #fields == 2 and fields[1] == name then
    local price, qty = string.match(fields[2], '^(%S+) (%S+) ')
    return string.match(entry[1], '^(%d+)'), price, qty
  end
  local values = {}
  for j = 1, #fields, 2 do values[fields[j]] = fields[j + 1] end
  return values['T'], values['price'], values['qty']  -- the nine-field layout
end

local function refill_sources(keys, args)
  local name = args[1]
  if name == nil or #keys ~= KEYS_PER_SYMBOL or #args ~= 3 or #args[3] ~= 5 then
    return redis.error_reply('refill_sources: expected 12 keys, field name, from_ms, 5 flags')
  end
  local only = {}
  for i, slot in ipairs(SOURCE_KEYS) do only[slot] = string.sub(args[3], i, i) == '1' end
  local acc = new_samples()
  local entries = redis.call('XRANGE', keys[1], args[2], '+')
  for _, entry in ipairs(entries) do
    local ms, price, qty = entry_sample(name, entry)
    if ms ~= nil and price ~= nil and qty ~= nil then add_tick(acc, ms, price, qty) end
  end
  local samples = sample_args(keys, 0, acc, only, {})
  if #samples > 0 then madd(samples) end
  return #entries
end

redis.register_function('spreadbus_publish_ticks', publish_ticks)
redis.register_function('spreadbus_refill_sources', refill_sources)
