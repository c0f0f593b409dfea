-- The response cache ([response_cache]), in the shared store: successful,
-- non-streamed answers of the cached routes, keyed on the SHA-256 of the
-- request: the team's namespace (its own, or "shared" for the teams that
-- share one: from the validated token, never a header), the path, the
-- provider or route the request goes to (a route with its config: a changed
-- route is another key), the forwarded headers that change the answer (an
-- Anthropic version or beta), and the body's bytes as sent. The entry holds
-- the status, the content type and the body bytes the client received, so
-- a hit is byte-identical.
--
-- The store failing never fails a request: it goes on uncached (a short
-- timeout), and a worker leaves the store alone for a few seconds after
-- failures in a row (as the limits do).
local cjson = require "cjson.safe"
local crypto = require "aigw.crypto"
local shared_store = require "aigw.store"

local type, pairs, ipairs, next, sort, concat, tostring =
    type, pairs, ipairs, next, table.sort, table.concat, tostring

local _M = {}

_M.sha256_hex = crypto.sha256_hex

local function is_array(value)
    return next(value) == nil or #value > 0
end

-- The canonical text of a decoded JSON value: objects with their keys sorted.
local function canonical(value, out)
    local kind = type(value)
    if kind == "table" then
        if value == cjson.null then
            out[#out + 1] = "null"
        elseif is_array(value) and next(value) ~= nil then
            out[#out + 1] = "["
            for index, item in ipairs(value) do
                if index > 1 then out[#out + 1] = "," end
                canonical(item, out)
            end
            out[#out + 1] = "]"
        else
            local keys = {}
            for key in pairs(value) do keys[#keys + 1] = key end
            sort(keys)
            out[#out + 1] = "{"
            for index, key in ipairs(keys) do
                if index > 1 then out[#out + 1] = "," end
                out[#out + 1] = cjson.encode(key)
                out[#out + 1] = ":"
                canonical(value[key], out)
            end
            out[#out + 1] = "}"
        end
    elseif kind == "userdata" then  -- cjson.null
        out[#out + 1] = "null"
    else
        out[#out + 1] = cjson.encode(value)
    end
    return out
end

function _M.canonical(document)
    return concat(canonical(document, {}))
end

-- The namespace a team's answers live in, or nil when the team's are never cached.
function _M.namespace(team, mode)
    if mode == "no-store" or not team then return nil end
    if mode == "shared" then return "shared" end
    return "team:" .. team
end

-- The key of a request: namespace, path, where it goes, the forwarded headers
-- that change the answer (`headers`: their values in order, "" when absent),
-- and the body's bytes as the client sent them (checked, never re-encoded:
-- a re-encoding loses what the provider may read, such as digits past the
-- 14th, [] versus {}, or the order of a JSON schema's properties, and costs
-- seconds on a large body; the same request sent another way is only a miss).
function _M.key(namespace, path, target, headers, body)
    local material = concat({ namespace, path, target, _M.canonical(headers), body }, "\n")
    return "aigw:cache:" .. _M.sha256_hex(material)
end

-- Whether the client asked not to be answered from the cache: Cache-Control
-- no-cache or no-store, or x-aigw-cache: bypass.
function _M.bypassed(cache_control, aigw_cache)
    if type(cache_control) == "string" then
        local lowered = cache_control:lower()
        if lowered:find("no-cache", 1, true) or lowered:find("no-store", 1, true) then return true end
    end
    return aigw_cache ~= nil
end

-- Per worker: failures in a row, and when the store may be tried again.
local failures, down_until = 0, 0
local BREAKER_FAILURES = 3

local function with_store(store, now, work)
    if now < down_until then return nil, "store skipped after recent failures" end
    local red, err = shared_store.connect(store)
    local res
    if red then
        res, err = work(red)
        if res ~= nil then
            red:set_keepalive(store.idle_ms, store.pool_size)
        else
            red:close()
        end
    end
    if res == nil then
        failures = failures + 1
        if failures >= BREAKER_FAILURES then failures, down_until = 0, now + store.breaker_seconds end
        return nil, tostring(err)
    end
    failures = 0
    return res
end

-- The cached entry of `key` ({ status, content_type, body }), false on a
-- miss, or nil and why when the store is unavailable.
function _M.get(store, key, now)
    local res, err = with_store(store, now, function(red)
        local value, problem = red:get(key)
        if value == nil then return nil, problem end
        return value
    end)
    if res == nil then return nil, err end
    if res == ngx.null then return false end
    local entry = cjson.decode(res)
    if type(entry) ~= "table" or type(entry.body) ~= "string" or type(entry.status) ~= "number" then
        return false  -- not an entry this code wrote: a miss
    end
    return entry
end

-- Stores an answer for ttl seconds; true, or nil and why.
function _M.set(store, key, entry, ttl, now)
    local value = cjson.encode(entry)
    return with_store(store, now, function(red)
        local ok, problem = red:set(key, value, "EX", ttl)
        if not ok then return nil, problem end
        return true
    end)
end

-- Whether an answer may be stored: a 200, JSON (never a stream, never an error).
function _M.storable(status, content_type)
    return status == 200 and type(content_type) == "string" and content_type:find("^application/json") ~= nil
end

return _M
