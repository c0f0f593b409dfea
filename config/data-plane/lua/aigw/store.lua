-- The shared store (ElastiCache Valkey, TLS only): one connection from the
-- worker's pool, verified against the bundle's CAs (store-tls.conf). The
-- limits (limits.lua) and the response cache (cache.lua) both use it.
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

return _M
