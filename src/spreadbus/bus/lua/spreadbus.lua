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
  ARGV: 1 the name of the entry's one field (spreadbus.bus.tickschema.FIELD, "t");
        then per symbol, in KEYS order, four values: the number of real ticks R, the number of
        ghost ticks G, the trim id of the real stream and of the ghost stream ("" = no trim);
        then the real ticks of every symbol, in KEYS order, 5 values each (trade ms, trade id,
        price, qty, entry value); then the ghost ticks of every symbol, in KEYS order, one
        entry value each (spreadbus.bus.tickschema: real_args, ghost_args). Ticks in blocks,
        not within each symbol's part: the client formats all of a call's ticks in one pass.
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
Prices go to Redis as the exchange's decimal text; a minute's volume as its one trade's
quantity text, or the sum as %.17g (Lua would print a number with only 14 significant digits).

Cost: the machinery of a redis.call from Lua costs more than an XADD itself (about 7 k
instructions against 5 k), and in a flush at 10k ticks/s (one or two ticks a symbol) the Lua
around the calls was half of the rest. So the samples are built in locals, not in a table per
tick and per minute, key lists are filled by plain loops, and the ticks come in blocks (ARGV
above). Measured by valgrind's instruction count inside FCALL, 44 symbols with a tick and a
ghost each: 6.5 M instructions a call before, 5.0 M after (bench luacost counts them against
plain XADDs of the same ticks).
]==]

local MADD_CHUNK = 1000  -- samples per TS.MADD: 3 args each stays under Lua's unpack limit
local MINUTE = 60000
local KEYS_PER_SYMBOL = 12
local REAL_ARGS, GHOST_ARGS = 5, 1  -- arguments per real and per ghost tick
local SOURCE_KEYS = {3, 4, 5, 6, 7}

-- TS.MADD of args[1 .. n] = key, ms, value, key, ms, value, ..., in chunks; returns the
-- samples refused
local function madd(args, n)
  local refused = 0
  for first = 1, n, 3 * MADD_CHUNK do
    local last = math.min(n, first + 3 * MADD_CHUNK - 1)
    local reply = redis.pcall('TS.MADD', unpack(args, first, last))
    if type(reply) == 'table' and reply.err then
      refused = refused + (last - first + 1) / 3
    else
      for j = 1, #reply do
        if type(reply[j]) == 'table' then refused = refused + 1 end  -- an error; a sample is its ms
      end
    end
  end
  return refused
end

-- A minute's open, high, low and volume samples (KEYS[k + 4 .. k + 7]), appended to ``out``
-- after its n-th value; returns the new n. ``only`` (nil: all) flags by key slot which series
-- get theirs (the refill's case). One trade's volume is its own quantity text; a sum is
-- printed with %.17g (Lua's own tostring keeps only 14 significant digits).
local function put_minute(out, n, keys, k, only, first_ms, open, close_ms, high, low, volume,
                          trades)
  if trades > 1 then volume = string.format('%.17g', volume) end
  if only == nil then
    out[n + 1] = keys[k + 4]; out[n + 2] = first_ms; out[n + 3] = open
    out[n + 4] = keys[k + 5]; out[n + 5] = close_ms; out[n + 6] = high
    out[n + 7] = keys[k + 6]; out[n + 8] = close_ms; out[n + 9] = low
    out[n + 10] = keys[k + 7]; out[n + 11] = close_ms; out[n + 12] = volume
    return n + 12
  end
  local samples = {[4] = {first_ms, open}, [5] = {close_ms, high}, [6] = {close_ms, low},
                   [7] = {close_ms, volume}}
  for slot = 4, 7 do
    if only[slot] then
      out[n + 1] = keys[k + slot]; out[n + 2] = samples[slot][1]; out[n + 3] = samples[slot][2]
      n = n + 3
    end
  end
  return n
end

-- The samples of ``count`` accepted ticks of the symbol at KEYS[k + 1 ..], in trade order,
-- appended to ``out`` after its n-th value as TS.MADD arguments (key, ms, value, ...); returns
-- the new n. The ticks are at src[i], src[i + 2], src[i + 3] (trade ms, price text, qty text)
-- for i = first, first + REAL_ARGS, ... (publish_ticks's argument layout), less those in
-- ``refused`` (nil: none). The price series (KEYS[k + 3]) gets one sample per millisecond,
-- its last trade; the open/high/low/volume sources one per minute (put_minute). ``only`` (nil:
-- all) flags by key slot which series get samples.
-- Everything lives in locals: a table per tick or per minute made a flush's garbage (and Lua's
-- collector time) grow with its ticks, and a minute of one trade (the common case in a flush)
-- converts no text to a number but its time.
local function append_samples(out, n, keys, k, only, src, first, count, refused)
  local price_key = keys[k + 3]
  local with_price = only == nil or only[3]
  local last_ms, bucket, first_ms, open, close_ms, high, low, volume, trades
  local high_value, low_value  -- numbers, once a minute has a second trade
  for i = first, first + REAL_ARGS * (count - 1), REAL_ARGS do
    if refused == nil or not refused[i] then
      local ms, price, qty = src[i], src[i + 2], src[i + 3]
      local minute = bucket
      if ms ~= last_ms then minute = math.floor(tonumber(ms) / MINUTE) end
      if minute ~= bucket then
        if bucket ~= nil then
          n = put_minute(out, n, keys, k, only, first_ms, open, close_ms, high, low, volume, trades)
        end
        bucket, first_ms, open, close_ms = minute, ms, price, ms
        high, low, volume, trades, high_value = price, price, qty, 1, nil
      else
        if high_value == nil then
          high_value = tonumber(high); low_value = high_value; volume = tonumber(volume)
        end
        local value = tonumber(price)
        if value > high_value then high_value = value; high = price end
        if value < low_value then low_value = value; low = price end
        close_ms, volume, trades = ms, volume + tonumber(qty), trades + 1
      end
      -- after the minute's samples: a millisecond's later trade replaces its price in place
      if with_price then
        if ms == last_ms then
          out[n] = price
        else
          out[n + 1] = price_key; out[n + 2] = ms; out[n + 3] = price
          n = n + 3
        end
      end
      last_ms = ms
    end
  end
  if bucket ~= nil then
    n = put_minute(out, n, keys, k, only, first_ms, open, close_ms, high, low, volume, trades)
  end
  return n
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

-- ``real``: the KEYS offsets of the symbols with real ticks, whose ten series must exist
local function all_exist(keys, real)
  local series, n = {}, 0
  for _, k in ipairs(real) do
    for slot = 3, 12 do n = n + 1; series[n] = keys[k + slot] end
  end
  local found = 0
  for first = 1, n, CHUNK do
    found = found + redis.call('EXISTS', unpack(series, first, math.min(n, first + CHUNK - 1)))
  end
  if found == n then return nil end
  for _, key in ipairs(series) do
    local kind = redis.call('TYPE', key)['ok']
    if kind == 'none' then return 'SPREADBUS_MISSING_SERIES ' .. key end
    if kind ~= 'TSDB-TYPE' then return 'SPREADBUS_WRONG_TYPE ' .. key end
  end
  return nil
end

-- XADD the R real ticks at args[p .. p + 5R - 1] to the stream KEYS[k + 1], the samples of
-- those it takes appended to ``samples`` after its n-th value; returns added, duplicates, n
local function add_real(keys, k, name, args, p, count, samples, n)
  local added, dupes, refused = 0, 0, nil
  local stream = keys[k + 1]
  for i = p, p + REAL_ARGS * (count - 1), REAL_ARGS do
    local reply = redis.pcall('XADD', stream, args[i] .. '-' .. args[i + 1], name, args[i + 4])
    if type(reply) == 'table' then
      -- the keys were checked, so the only refusal left is an id at or below the last one
      dupes = dupes + 1
      refused = refused or {}
      refused[i] = true
    else
      added = added + 1
    end
  end
  if added > 0 then n = append_samples(samples, n, keys, k, nil, args, p, count, refused) end
  return added, dupes, n
end

local function add_ghosts(stream, name, args, p, count)
  for i = p, p + count - 1 do
    redis.call('XADD', stream, '*', name, args[i])
  end
end

local function publish_ticks(keys, args)
  local name = args[1]
  if name == nil or name == '' then return redis.error_reply('publish_ticks: expected the field name') end
  if #keys % KEYS_PER_SYMBOL ~= 0 then
    return redis.error_reply('publish_ticks: expected 12 keys a symbol')
  end
  -- first pass: counts and keys of every symbol, before anything is written
  local symbols = #keys / KEYS_PER_SYMBOL
  local counts, all_real, all_ghosts = {}, 0, 0
  local streams, real_at = {}, {}
  for s = 0, symbols - 1 do
    local k, p = KEYS_PER_SYMBOL * s, 2 + 4 * s
    local real, ghosts = tonumber(args[p]), tonumber(args[p + 1])
    if real == nil or ghosts == nil or real < 0 or ghosts < 0 then
      return redis.error_reply('publish_ticks: arguments do not match the tick counts')
    end
    counts[2 * s + 1], counts[2 * s + 2] = real, ghosts
    all_real, all_ghosts = all_real + real, all_ghosts + ghosts
    if real > 0 then
      streams[#streams + 1] = keys[k + 1]
      real_at[#real_at + 1] = k
    end
    if ghosts > 0 then streams[#streams + 1] = keys[k + 2] end
  end
  local rp = 2 + 4 * symbols  -- the first real tick's arguments
  local gp = rp + REAL_ARGS * all_real  -- the first ghost's
  if gp + GHOST_ARGS * all_ghosts ~= #args + 1 then
    return redis.error_reply('publish_ticks: arguments do not match the tick counts')
  end
  local problem = all_streams(streams) or all_exist(keys, real_at)
  if problem ~= nil then return redis.error_reply(problem) end
  local total = {0, 0, 0, 0}
  local samples, n = {}, 0  -- every symbol's, for one TS.MADD at the end
  for s = 0, symbols - 1 do
    local k, p = KEYS_PER_SYMBOL * s, 2 + 4 * s
    local real, ghosts = counts[2 * s + 1], counts[2 * s + 2]
    local cut, ghost_cut = args[p + 2], args[p + 3]
    if real > 0 then
      local added, dupes
      added, dupes, n = add_real(keys, k, name, args, rp, real, samples, n)
      total[1], total[2] = total[1] + added, total[2] + dupes
      rp = rp + REAL_ARGS * real
    end
    if ghosts > 0 then
      add_ghosts(keys[k + 2], name, args, gp, ghosts)
      total[3] = total[3] + ghosts
      gp = gp + GHOST_ARGS * ghosts
    end
    if cut ~= '' then redis.call('XTRIM', keys[k + 1], 'MINID', '~', cut) end
    if ghost_cut ~= '' then redis.call('XTRIM', keys[k + 2], 'MINID', '~', ghost_cut) end
  end
  if n > 0 then total[4] = madd(samples, n) end
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
  local ticks, count = {}, 0  -- in publish_ticks's argument layout, for append_samples
  local entries = redis.call('XRANGE', keys[1], args[2], '+')
  for _, entry in ipairs(entries) do
    local ms, price, qty = entry_sample(name, entry)
    if ms ~= nil and price ~= nil and qty ~= nil then
      local i = REAL_ARGS * count
      ticks[i + 1], ticks[i + 2], ticks[i + 3], ticks[i + 4], ticks[i + 5] = ms, '', price, qty, ''
      count = count + 1
    end
  end
  local samples = {}
  local n = append_samples(samples, 0, keys, 0, only, ticks, 1, count, nil)
  if n > 0 then madd(samples, n) end
  return #entries
end

redis.register_function('spreadbus_publish_ticks', publish_ticks)
redis.register_function('spreadbus_refill_sources', refill_sources)
