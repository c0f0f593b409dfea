-- The shared store (ElastiCache Valkey, TLS only): one connection from the
-- worker's pool, verified against the bundle's CAs (store-tls.conf), and a
-- per-worker breaker. The limits (limits.lua) and the response cache
-- (cache.lua) both use it.
local tostring = tostring

local _M = {}

-- A connection, or nil and why. Give it back with red:set_keepalive(store.idle_ms, store.pool_size).
function _M.connect(store)
    local redis = require "resty.redis"
    local red = redis:new()
    -- A new connection's TLS handshake gets longer than a command: a burst of
    -- them (a task starting under load) must not look like a dead store.
    red:set_timeouts(store.connect_timeout_ms, store.handshake_timeout_ms, store.handshake_timeout_ms)
    local ok, err = red:connect(store.host, store.port, {
        ssl = store.tls, ssl_verify = store.tls, server_name = store.tls and store.host or nil,
        pool = "aigw-store", pool_size = store.pool_size,
    })
    if not ok then return nil, err end
    red:set_timeouts(store.connect_timeout_ms, store.send_timeout_ms, store.read_timeout_ms)
    return red
end

-- Runs work(red) on a connection from the pool: its result (anything but
-- nil), or nil and why. The connection goes back to the pool after a result,
-- and is closed after a failure (it may hold a half-read reply).
function _M.run(store, work)
    local red, err = _M.connect(store)
    local res
    if red then
        res, err = work(red)
        if res ~= nil then
            red:set_keepalive(store.idle_ms, store.pool_size)
        else
            red:close()
        end
    end
    if res == nil then return nil, tostring(err) end
    return res
end

-- A breaker of this worker (one per user of the store): _M.run, skipped for
-- store.breaker_seconds after `failures_allowed` failures in a row, instead
-- of adding a timeout to every request while the store is away.
function _M.breaker(failures_allowed)
    local failures, down_until = 0, 0
    return function(store, now, work)
        if now < down_until then return nil, "store skipped after recent failures" end
        local res, err = _M.run(store, work)
        if res ~= nil then
            failures = 0
            return res
        end
        failures = failures + 1
        if failures >= failures_allowed then
            failures, down_until = 0, now + store.breaker_seconds
        end
        return nil, err
    end
end

return _M
