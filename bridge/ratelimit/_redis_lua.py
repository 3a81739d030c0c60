"""The Lua scripts RedisStore runs: one atomic round trip per check.

The rate-limit script mirrors ``_algorithms.py`` line for line (same
arithmetic on IEEE doubles, same order), on Redis's own clock (``TIME``), so
app servers with skewed clocks still agree. Redis truncates Lua numbers to
integers in replies, so durations go back as whole microseconds; a GCRA
state is its two numbers in ``%.17g`` (which reads back exactly), window
states are integers joined by spaces (about 6 us of Redis CPU per check with
one rate, of which TIME, GET and SET are 3).

KEYS: one key per rate (they share a hash tag, hence one cluster slot).
ARGV: algorithm, cost, a clock override (``""`` in production: Redis ``TIME``),
then ``count, period, burst`` for each rate.
Reply: ``{allowed, then per rate: allowed, remaining, reset_us, retry_after_us, then now}``
(``now`` in ``%.17g``, which reads back exactly: a reservation's settle gives it back).

The settle script (``CHARGE_SCRIPT``) mirrors the ``*_charge`` functions: a
reservation made at ``at`` is settled ``delta`` units apart on every rate.
KEYS: as for the check. ARGV: algorithm, delta, at, a clock override, then the
rates. Reply: ``{per rate: remaining, reset_us}``.
"""

from __future__ import annotations

from typing import Final

__all__ = ("ACQUIRE_SCRIPT", "CHARGE_SCRIPT", "CHECK_SCRIPT")

#: Lua helpers both scripts use: numbers from ARGV, microseconds (rounded up: a wait of
#: 60 ns is still a wait, and the headers round up to whole seconds), a state's fields.
_HELPERS: Final = r"""
local function num(s) return tonumber(s) end
local function us(x) return math.ceil(x * 1000000 - 1e-6) end
local function trunc(x) if x < 0 then return math.ceil(x) end return math.floor(x) end

local function split(value)
  if not value then return {} end
  if not string.find(value, ' ', 1, true) then return {num(value)} end
  local out = {}
  for part in string.gmatch(value, '%S+') do out[#out + 1] = num(part) end
  return out
end
"""

CHECK_SCRIPT: Final = (
    r"""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local EPS = 1e-6
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])  -- tests only: compare with the Python functions on a fake clock
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local algorithm = ARGV[1]
local cost = tonumber(ARGV[2])

"""
    + _HELPERS
    + r"""

local function gcra(s, cost, count, period, burst)
  local interval = period / count
  local capacity = burst + 1
  local level = 0
  if s[2] then level = math.max(0, s[2] - math.max(0, now - s[1]) / interval) end
  local new_level = level + cost
  if new_level <= capacity + EPS then
    local reset = new_level * interval
    local state = string.format('%.17g %.17g', now, new_level)
    return true, state, trunc(capacity - new_level + EPS), reset, 0, now + reset
  end
  local retry = (new_level - capacity) * interval
  if cost > capacity then retry = math.max(1, math.ceil(capacity * interval - 1e-9)) end
  local reset = level * interval
  return false, nil, math.max(0, trunc(capacity - level + EPS)), reset, retry, now + reset
end

local function fixed_window(s, cost, count, period)
  local start = math.floor(now / period) * period
  local finish = start + period
  local used = 0
  if s[1] == start then used = s[2] end
  local function reset() if used > 0 then return finish - now end return 0 end
  if used + cost <= count then
    used = used + cost
    return true, start .. ' ' .. used, trunc(count - used), reset(), 0, finish
  end
  local retry = finish - now
  if cost > count then retry = period end
  return false, nil, trunc(count - used), reset(), retry, finish
end

local function sliding_window(s, cost, count, period)
  local start = math.floor(now / period) * period
  local used, prev = 0, 0
  if s[1] == start then used, prev = s[2], s[3]
  elseif s[1] == start - period then prev = s[2] end
  local weighted = prev * (1 - (now - start) / period) + used
  local function reset()
    if used > 0 then return start + 2 * period - now end
    if prev > 0 then return start + period - now end
    return 0
  end
  if weighted + cost <= count + EPS then
    used = used + cost
    local remaining = math.max(0, trunc(count - weighted - cost + EPS))
    local state = start .. ' ' .. used .. ' ' .. prev
    return true, state, remaining, reset(), 0, start + 2 * period
  end
  local room = count - used - cost
  local wait
  if cost > count then wait = period
  elseif room >= 0 and prev > 0 then
    wait = math.max(0, start + period * (1 - room / prev) - now)
  else
    local fade = 0
    if used > 0 then fade = period * (1 - (count - cost) / used) end
    wait = math.max(0, start + period + fade - now)
  end
  return false, nil, math.max(0, trunc(count - weighted + EPS)), reset(), wait, start + 2 * period
end

local algorithms = {gcra = gcra, fixed_window = fixed_window, sliding_window = sliding_window}
local decide = algorithms[algorithm]
local states, rates, results = {}, {}, {}
local allowed = true
for i, key in ipairs(KEYS) do
  local base = 3 + (i - 1) * 3
  states[i] = split(redis.call('GET', key))
  rates[i] = {num(ARGV[base + 1]), num(ARGV[base + 2]), num(ARGV[base + 3])}
  results[i] = {decide(states[i], cost, rates[i][1], rates[i][2], rates[i][3])}
  if not results[i][1] then allowed = false end
end
local reply = {allowed and 1 or 0}
for i, key in ipairs(KEYS) do
  local r = results[i]
  if allowed then
    -- At least a second: a state read after it drained means what no state means, and
    -- a fake clock in the tests stands still while Redis's expiry clock does not.
    redis.call('SET', key, r[2], 'PX', math.max(1000, math.ceil((r[6] - now) * 1000)))
  elseif r[1] then
    -- Denied by another rate: nothing is consumed, so report this one's state as is.
    r = {decide(states[i], 0, rates[i][1], rates[i][2], rates[i][3])}
  end
  reply[#reply + 1] = r[1] and 1 or 0
  reply[#reply + 1] = r[3]
  reply[#reply + 1] = us(r[4])
  reply[#reply + 1] = us(r[5])
end
reply[#reply + 1] = string.format('%.17g', now)
return reply
"""
)

CHARGE_SCRIPT: Final = (
    r"""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local EPS = 1e-6
local now
if ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local algorithm = ARGV[1]
local delta = tonumber(ARGV[2])
local at = tonumber(ARGV[3])

"""
    + _HELPERS
    + r"""

local function gcra(s, count, period, burst)
  local interval = period / count
  local capacity = burst + 1
  local level = 0
  if s[2] then level = math.max(0, s[2] - math.max(0, now - s[1]) / interval) end
  local new_level = math.max(0, level + delta)
  local reset = new_level * interval
  local state = string.format('%.17g %.17g', now, new_level)
  return state, math.max(0, trunc(capacity - new_level + EPS)), reset, now + reset
end

local function fixed_window(s, count, period)
  local start = math.floor(now / period) * period
  local used = 0
  if s[1] == start then used = s[2] end
  local d = delta
  if d < 0 and math.floor(at / period) * period ~= start then d = 0 end
  used = math.max(0, used + d)
  local reset = 0
  if used > 0 then reset = start + period - now end
  return start .. ' ' .. used, math.max(0, trunc(count - used)), reset, start + period
end

local function sliding_window(s, count, period)
  local start = math.floor(now / period) * period
  local used, prev = 0, 0
  if s[1] == start then used, prev = s[2], s[3]
  elseif s[1] == start - period then prev = s[2] end
  if delta >= 0 then
    used = used + delta
  else
    local reserved_in = math.floor(at / period) * period
    if reserved_in == start then used = math.max(0, used + delta)
    elseif reserved_in == start - period then prev = math.max(0, prev + delta) end
  end
  local weighted = prev * (1 - (now - start) / period) + used
  local reset = 0
  if used > 0 then reset = start + 2 * period - now
  elseif prev > 0 then reset = start + period - now end
  local state = start .. ' ' .. used .. ' ' .. prev
  return state, math.max(0, trunc(count - weighted + EPS)), reset, start + 2 * period
end

local algorithms = {gcra = gcra, fixed_window = fixed_window, sliding_window = sliding_window}
local settle = algorithms[algorithm]
local reply = {}
for i, key in ipairs(KEYS) do
  local base = 4 + (i - 1) * 3
  local rate = {num(ARGV[base + 1]), num(ARGV[base + 2]), num(ARGV[base + 3])}
  local s = split(redis.call('GET', key))
  local state, remaining, reset, expires = settle(s, rate[1], rate[2], rate[3])
  redis.call('SET', key, state, 'PX', math.max(1000, math.ceil((expires - now) * 1000)))
  reply[#reply + 1] = remaining
  reply[#reply + 1] = us(reset)
end
return reply
"""
)

#: KEYS[1]: the key's in-flight set. ARGV: limit, token, lease seconds.
#: Members are tokens scored by their lease's end on Redis's clock, so a worker
#: that died holding a slot gives it back when the lease runs out.
ACQUIRE_SCRIPT: Final = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000))
return 1
"""
