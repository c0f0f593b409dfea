-- What a request may be before anything acts on it: its headers, its route
-- and method, its media type, the provider it names, the Anthropic betas it
-- asks for and the routing config it brings. Every function returns a value,
-- or nil and the refusal; none ends the request.
local cjson = require "cjson.safe"
local refusal = require "aigw.refusal"
local text = require "aigw.text"

local type, pairs, ipairs, next, lower = type, pairs, ipairs, next, string.lower

local _M = {}

local MAX_CONFIG_DEPTH = 16

-- headers: ngx.req.get_headers(max) of the request; truncated: whether it
-- stopped at `max` (the rest would go unseen, a repeated security header
-- among them).
function _M.headers(headers, truncated, settings)
    if truncated then
        return nil, refusal.new(431, "header-count", "a request may carry at most " .. settings.max_headers
            .. " headers")
    end
    if headers["upgrade"] then
        return nil, refusal.new(400, "websocket", "WebSocket upgrades (realtime) are not offered by this gateway")
    end
    -- The data plane reads or forwards these: each must mean one thing.
    for _, name in ipairs(settings.single_headers) do
        if type(headers[name]) == "table" then
            return nil, refusal.new(400, "header", name .. " may appear once")
        end
    end
    return true
end

-- The providers offered on the request's route, or the refusal.
function _M.route(uri, method, settings)
    local providers = settings.routes[uri]
    if not providers then
        return nil, refusal.new(404, "route", "not an offered route; offered: POST " .. settings.route_list)
    end
    if method ~= "POST" then
        return nil, refusal.new(405, "method", "only POST is offered on " .. uri)
    end
    return providers
end

-- Every route takes one media type: multipart for uploads, JSON for the
-- rest. The gateway parses a JSON body whatever the Content-Type says, so a
-- body the data plane did not check must never reach it.
function _M.media_type(route, content_type, settings)
    local expected = settings.multipart_routes[route] and "multipart/form-data" or "application/json"
    local media = lower((type(content_type) == "string" and content_type or ""):match("^%s*([^;%s]+)") or "")
    if media ~= expected then
        return nil, refusal.new(415, "content-type", route .. " takes Content-Type " .. expected)
    end
    return media
end

-- Anthropic betas (comma-separated) must be on the allow-list: some turn on
-- stored objects (files, skills, containers) or make the provider call hosts
-- the client names (MCP).
function _M.anthropic_betas(value, settings)
    if value == nil then return true end
    for beta in value:gmatch("[^,]+") do
        beta = beta:match("^%s*(.-)%s*$")
        if not settings.anthropic_betas[beta] then
            return nil, refusal.new(403, "anthropic-beta", "anthropic-beta " .. text.clean(beta, 64)
                .. " is not offered; offered: " .. settings.beta_help)
        end
    end
    return true
end

-- The provider slug a request names in x-portkey-provider, when offered on the route.
function _M.provider(header, route, providers_here, settings)
    local slug = type(header) == "string" and settings.providers[lower(header)] and lower(header)
    if not slug or not providers_here[slug] then
        return nil, refusal.new(403, "provider", "name a provider offered on " .. route .. " in x-portkey-provider ("
            .. settings.route_help[route] .. ") or send an x-portkey-config with your own provider keys")
    end
    return slug
end

-- The first problem of a client config, or nil: every key must be allowed
-- where it appears, and every provider.
local function config_problem(value, path, depth, settings)
    if type(value) ~= "table" then return nil end
    if depth > MAX_CONFIG_DEPTH then return "nesting deeper than " .. MAX_CONFIG_DEPTH end
    if next(value) == nil or #value > 0 then  -- an array (cjson decodes objects with string keys only)
        for index, item in ipairs(value) do
            local problem = config_problem(item, path .. "[" .. index .. "]", depth + 1, settings)
            if problem then return problem end
        end
        return nil
    end
    for key, item in pairs(value) do
        if type(key) ~= "string" or not settings.config_keys[key] then
            return "key " .. path .. "." .. text.clean(key, 64) .. " is not allowed"
        end
        if key == "provider" and not (type(item) == "string" and settings.config_providers[item]) then
            return "provider " .. text.clean(item, 64) .. " is not allowed in a config"
        end
        local problem = config_problem(item, path .. "." .. key, depth + 1, settings)
        if problem then return problem end
    end
    return nil
end

-- The parsed client config (x-portkey-config), or the refusal.
function _M.client_config(value, settings)
    local document = type(value) == "string" and value:find("^%s*{") and cjson.decode(value)
    if type(document) ~= "table" then
        return nil, refusal.new(403, "config", "x-portkey-config must be a JSON object")
    end
    local problem = config_problem(document, "config", 0, settings)
    if problem then
        return nil, refusal.new(403, "config", "x-portkey-config: " .. problem .. "; " .. settings.config_help)
    end
    return document
end

return _M
