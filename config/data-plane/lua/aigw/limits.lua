-- Per-team limits, counted in the shared store (ElastiCache Valkey) so that
-- they hold across every task: requests per sliding minute, requests in
-- flight, and a token budget per day or month. Keyed on the team the
-- validated token's client id maps to (identity.lua), never on anything else
-- a request carries.
--
-- One script per request before it is sent on (admit: check, then count) and
-- one after it ends (settle: its tokens, its slot freed), each atomic in the
-- store. Every key of a team shares the hash tag {<team>}, so a script's keys
-- live in one slot of the serverless (cluster-mode) cache.
--
-- The store failing never refuses a request: limits fail open, and each
-- request let through for want of the store is logged ("limits: store
-- unavailable") and counted (rule "limits-unavailable" in the access line,
-- aigw.limits.unavailable in the metrics). After a failure, a worker leaves
-- the store alone for a few seconds instead of adding a timeout to every
-- request.
local refusal = require "aigw.refusal"
local shared_store = require "aigw.store"

local type, tonumber, tostring, floor, ceil, format, byte, concat =
    type, tonumber, tostring, math.floor, math.ceil, string.format, string.byte, table.concat
local ngx = ngx

local _M = {}

local MINUTE_MS = 60000

-- KEYS: rate (this minute), rate (last minute), in flight, budget total.
-- ARGV: now ms, ms into this minute, rate limit, in-flight limit, how long an
-- in-flight entry may live (ms), request id, budget (0: none), 1 when the budget refuses.
-- Returns { verdict, this minute's count, last minute's count, budget total }:
-- verdict 0 admitted, 1 over the rate, 2 over the in-flight limit, 3 over the budget.
local ADMIT = [[
local now, into, rate, inflight = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local stale, id, budget, refuses = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), ARGV[8] == '1'
local used = 0
if budget > 0 then used = tonumber(redis.call('GET', KEYS[4]) or '0') end
if refuses and used >= budget then return {3, 0, 0, used} end
local current, last = 0, 0
if rate > 0 then
  current = tonumber(redis.call('GET', KEYS[1]) or '0')
  last = tonumber(redis.call('GET', KEYS[2]) or '0')
  if last * (60000 - into) / 60000 + current + 1 > rate then return {1, current, last, used} end
end
if inflight > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - stale)
  if redis.call('ZCARD', KEYS[3]) >= inflight then return {2, current, last, used} end
end
if rate > 0 then
  redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], 120000)
end
if inflight > 0 then
  redis.call('ZADD', KEYS[3], now, id)
  redis.call('PEXPIRE', KEYS[3], stale)
end
return {0, current, last, used}
]]

-- KEYS: in flight, budget total. ARGV: request id ('' if not counted), the
-- score that holds its slot a while longer ('' frees it now), tokens (0:
-- none), seconds the total lives. Returns the budget total after.
local SETTLE = [[
if ARGV[1] ~= '' then
  if ARGV[2] ~= '' then
    redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[2]), ARGV[1])
  else
    redis.call('ZREM', KEYS[1], ARGV[1])
  end
end
local tokens = tonumber(ARGV[3])
if tokens > 0 then
  local total = redis.call('INCRBY', KEYS[2], tokens)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
  return total
end
return 0
]]

local function hex(bytes)
    local out = {}
    for i = 1, #bytes do out[i] = format("%02x", byte(bytes, i)) end
    return concat(out)
end

local SCRIPTS = { admit = { text = ADMIT, sha = hex(ngx.sha1_bin(ADMIT)) },
                  settle = { text = SETTLE, sha = hex(ngx.sha1_bin(SETTLE)) } }

-- Per worker: failures in a row, and when the store may be tried again after
-- BREAKER_FAILURES of them.
local failures, down_until = 0, 0
local BREAKER_FAILURES = 3

-- The store's keys of a team for a request at `now` (seconds).
function _M.keys(team, now, period)
    local minute = floor(now / 60)
    local prefix = "aigw:{" .. team .. "}:"
    local day = os.date("!%Y%m%d", floor(now))
    return {
        rate = prefix .. "rpm:" .. minute,
        last_rate = prefix .. "rpm:" .. (minute - 1),
        inflight = prefix .. "inflight",
        budget = prefix .. "tokens:" .. (period == "month" and day:sub(1, 6) or day),
    }
end

-- Seconds until the budget's period ends (UTC), for Retry-After and the key's life.
function _M.period_left(now, period)
    local t = os.date("!*t", floor(now))
    local next_start
    if period == "month" then
        local year, month = t.year, t.month + 1
        if month == 13 then year, month = year + 1, 1 end
        next_start = { year = year, month = month, day = 1, hour = 0, min = 0, sec = 0 }
    else
        next_start = { year = t.year, month = t.month, day = t.day + 1, hour = 0, min = 0, sec = 0 }
    end
    -- os.time reads a table as local time: the offset of local time from UTC cancels out.
    local utc_now = os.time(t)
    return os.difftime(os.time(next_start), utc_now)
end

-- Seconds until a sliding-minute estimate of last * (1 - into/60s) + current
-- leaves room for one more request under `rate`.
function _M.rate_retry_after(rate, current, last, into_ms)
    if current + 1 > rate then return ceil((MINUTE_MS - into_ms) / 1000) end
    if last <= 0 then return 1 end
    local wait_ms = (MINUTE_MS - into_ms) - (rate - current - 1) * MINUTE_MS / last
    return ceil(wait_ms / 1000) < 1 and 1 or ceil(wait_ms / 1000)
end

local function run(red, script, keys, args)
    -- One list: in a call, only the last unpack() expands to all its values.
    local arguments = { #keys }
    for i = 1, #keys do arguments[#arguments + 1] = keys[i] end
    for i = 1, #args do arguments[#arguments + 1] = args[i] end
    local res, err = red:evalsha(script.sha, unpack(arguments))
    if not res and err and err:find("NOSCRIPT", 1, true) then
        res, err = red:eval(script.text, unpack(arguments))
    end
    return res, err
end

-- Runs `script` in the store: its result, or nil and why.
local function call(store, script, keys, args)
    local red, err = shared_store.connect(store)
    local res
    if red then
        res, err = run(red, script, keys, args)
        if res then
            red:set_keepalive(store.idle_ms, store.pool_size)
        else
            red:close()
        end
    end
    if not res then return nil, tostring(err) end
    return res
end

-- An admission: skipped while the breaker is open; BREAKER_FAILURES failures
-- in a row open it for store.breaker_seconds.
local function call_guarded(store, script, keys, args, now)
    if now < down_until then return nil, "store skipped after recent failures" end
    local res, err = call(store, script, keys, args)
    if res then
        failures = 0
        return res
    end
    failures = failures + 1
    if failures >= BREAKER_FAILURES then
        failures, down_until = 0, now + store.breaker_seconds
    end
    return nil, err
end

local function over(status, rule, message, retry_after)
    local decision = refusal.new(status, rule, message)
    decision.retry_after = retry_after
    return decision
end

-- Whether a request of `team` (its limits: `limits`) may go on now. Returns
--   nil: admitted (or the store unavailable: then state.unavailable is set);
--   a refusal (429 with retry_after) when over a limit.
-- `state` (the request's) records what settle() must undo, and a shadow refusal.
function _M.admit(store, team, limits, request_id, now, state)
    local budget = limits.budget
    local keys = _M.keys(team, now, budget and budget.period)
    local now_ms = floor(now * 1000)
    local into = now_ms % MINUTE_MS
    local refuses = budget and budget.mode == "enforce"
    local res, err = call_guarded(store, SCRIPTS.admit,
        { keys.rate, keys.last_rate, keys.inflight, keys.budget },
        { now_ms, into, limits.requests_per_minute or 0, limits.max_concurrent_requests or 0,
          store.inflight_stale_seconds * 1000, request_id, budget and budget.tokens or 0, refuses and "1" or "0" },
        now)
    if not res then
        state.unavailable = err
        return nil
    end
    local verdict, current, last, used = tonumber(res[1]), tonumber(res[2]), tonumber(res[3]), tonumber(res[4])
    state.budget_used = used
    if verdict == 1 then
        return over(429, "rate-limit", "team " .. team .. " is over its limit of " .. limits.requests_per_minute
            .. " requests per minute", _M.rate_retry_after(limits.requests_per_minute, current, last, into))
    elseif verdict == 2 then
        return over(429, "concurrency-limit", "team " .. team .. " has " .. limits.max_concurrent_requests
            .. " requests in flight, its limit", 1)
    elseif verdict == 3 then
        return over(429, "budget", "team " .. team .. " has used its budget of " .. budget.tokens
            .. " tokens this " .. budget.period, ceil(_M.period_left(now, budget.period)))
    end
    state.inflight_id = limits.max_concurrent_requests and request_id or nil
    if budget and budget.mode == "shadow" and used >= budget.tokens then
        state.shadow = "budget"
    end
    return nil
end

-- What a request counts against the budget when its usage stays unknown:
-- the output it may ask for (its max_tokens, or the team's default, times
-- the answers it asks for) plus its input, estimated from its JSON body's
-- bytes (about 4 per token; an over-estimate for JSON).
function _M.bound(budget, max_tokens, choices, body_bytes)
    return (max_tokens or budget.unknown_usage_tokens) * (choices or 1) + ceil((body_bytes or 0) / 4)
end

-- The tokens a finished request counts: its usage when the answer reported
-- any; else its bound when the gateway was called and the answer was not a
-- refusal (a 4xx other than a timeout, 408, or a client gone, 499), since the
-- provider may have worked; else none. Never zero for usage that is unknown.
function _M.tokens_to_count(input_tokens, output_tokens, bound, called, status)
    if input_tokens or output_tokens then
        return (input_tokens or 0) + (output_tokens or 0)
    end
    local refused = status >= 400 and status < 500 and status ~= 408 and status ~= 499
    if called and bound and not refused then return bound end
    return 0
end

-- After the request: frees its in-flight slot (`hold`: keeps it for
-- store.abandoned_hold_seconds more, for a client gone while the provider
-- works on) and adds its tokens to the budget. Returns the budget total
-- after (0 without tokens), or nil and why. Not behind the breaker.
function _M.settle(store, team, limits, slot, hold, tokens, now)
    local budget = limits.budget
    local keys = _M.keys(team, now, budget and budget.period)
    local life = budget and ceil(_M.period_left(now, budget.period)) + 3600 or 1
    local held = ""
    if slot ~= "" and hold then
        held = floor((now - store.inflight_stale_seconds + store.abandoned_hold_seconds) * 1000)
    end
    return call(store, SCRIPTS.settle, { keys.inflight, keys.budget }, { slot, held, budget and tokens or 0, life })
end

-- Whether the total crossed the alert threshold with this request's tokens
-- (exactly one request does: the store adds atomically).
function _M.crossed_alert(budget, total, tokens)
    local threshold = budget.tokens * budget.alert_at_percent / 100
    return total >= threshold and total - tokens < threshold
end

return _M
