-- What a request may be before anything acts on it: its headers, its route
-- and method, its media type, the provider it names, the Anthropic betas it
-- asks for and the routing config it brings. Every function returns a value,
-- or nil and the refusal; none ends the request.
local refusal = require "aigw.refusal"
local text = require "aigw.text"

local type, pairs, ipairs, next, lower, floor, huge = type, pairs, ipairs, next, string.lower, math.floor, math.huge
local rawget, setmetatable, gsub = rawget, setmetatable, string.gsub

-- JSON as the gateway's JSON.parse reads it: no NaN, Infinity or hex numbers.
local cjson = require("cjson.safe").new()
cjson.decode_invalid_numbers(false)

local _M = {}

local MAX_CONFIG_DEPTH = 16
-- Control characters (other than tab): nginx passes them in header values, the gateway refuses them.
-- A regex (PCRE, compiled once): a Lua pattern's class costs ~10 ns a byte of a long token.
local CONTROL = "[\\x00-\\x08\\x0a-\\x1f\\x7f]"
local re_find = ngx.re.find

-- Whether a header value holds a control character (an error in the match counts as one).
local function has_control(value)
    local from, _, err = re_find(value, CONTROL, "jo")
    return from ~= nil or err ~= nil
end

-- Header names as ngx.req.get_headers keys them (lowercase, "_" as "-"),
-- per list: a lookup by its key needs no metamethod (which lowercases the
-- name again for every header a request does not carry).
local normalized_names = setmetatable({}, { __mode = "k" })

local function header_keys(names)
    local keys = normalized_names[names]
    if not keys then
        keys = {}
        for index, name in ipairs(names) do keys[index] = (gsub(lower(name), "_", "-")) end
        normalized_names[names] = keys
    end
    return keys
end

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
    -- The data plane reads or forwards these: each must mean one thing, in printable text.
    local keys = header_keys(settings.single_headers)
    for index, name in ipairs(settings.single_headers) do
        local value = rawget(headers, keys[index])
        if type(value) == "table" then
            return nil, refusal.new(400, "header", name .. " may appear once")
        end
        if value and has_control(value) then
            return nil, refusal.new(400, "header", name .. " has a control character")
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

local function is_array(value)
    return next(value) == nil or #value > 0
end

local function number_text(value)
    return value == floor(value) and string.format("%d", value) or tostring(value)
end

-- What a value of `spec` must be, in words.
local function expected(spec)
    local kind = spec.kind
    if kind == "integer" or kind == "number" then
        local low = spec.above and ("above " .. number_text(spec.above)) or ("from " .. number_text(spec.min))
        return "a" .. (kind == "integer" and "n integer " or " number ") .. low .. " to " .. number_text(spec.max)
    elseif kind == "string" and spec.enum then
        return "one of " .. table.concat(spec.enum, ", ")
    elseif kind == "string" then
        return "a string of at most " .. spec.max_length .. " characters"
    elseif kind == "array" then
        return "an array of " .. (spec.min_items or 0) .. " to " .. spec.max_items .. " items"
    elseif kind == "text" then
        return "a string, or an array of at most 4 strings"
    end
    return "a" .. (kind == "object" and "n " or " ") .. kind
end

-- Whether `value` is what `spec` allows (config_values in the settings).
local function fits(value, spec)
    local kind = spec.kind
    if kind == "object" then
        return type(value) == "table" and not (next(value) ~= nil and #value > 0)
    elseif kind == "array" then
        if type(value) ~= "table" or not is_array(value) then return false end
        return #value >= (spec.min_items or 0) and #value <= spec.max_items
    elseif kind == "string" then
        if type(value) ~= "string" or (spec.max_length and #value > spec.max_length) then return false end
        if spec.enum then
            for _, allowed in ipairs(spec.enum) do
                if value == allowed then return true end
            end
            return false
        end
        return true
    elseif kind == "integer" or kind == "number" then
        if type(value) ~= "number" or value ~= value or value == huge or value == -huge then return false end
        if kind == "integer" and value ~= floor(value) then return false end
        if spec.above then return value > spec.above and value <= spec.max end
        return value >= spec.min and value <= spec.max
    elseif kind == "boolean" then
        return type(value) == "boolean"
    elseif kind == "text" then
        if type(value) == "string" then return #value <= spec.max_length end
        if type(value) ~= "table" or not is_array(value) or #value > 4 then return false end
        for _, item in ipairs(value) do
            if type(item) ~= "string" or #item > spec.max_length then return false end
        end
        return true
    end
    return false
end

local function value_problem(value, spec, path)
    if not fits(value, spec) then return path .. " must be " .. expected(spec) end
    if spec.kind == "array" and spec.items then
        for index, item in ipairs(value) do
            if not fits(item, spec.items) then
                return path .. "[" .. index .. "] must be " .. expected(spec.items)
            end
        end
    end
    return nil
end

-- The first problem of a client config, or nil: every key must be allowed
-- where it appears, every provider, and every value must be of its kind and
-- within its bounds (config_values).
local function config_problem(value, path, depth, settings)
    if type(value) ~= "table" then return nil end
    if depth > MAX_CONFIG_DEPTH then return "nesting deeper than " .. MAX_CONFIG_DEPTH end
    if is_array(value) then  -- an array (cjson decodes objects with string keys only)
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
        local spec = settings.config_values[key]
        local problem = spec and value_problem(item, spec, path .. "." .. key)
        if problem then return problem end
        problem = config_problem(item, path .. "." .. key, depth + 1, settings)
        if problem then return problem end
    end
    return nil
end

-- How many upstream calls a (valid) config can make at most: every leaf
-- target once plus its retries; a target inherits the retry around it (the
-- larger count is taken). Every target counts, whatever the strategy.
local function upstream_calls(node, attempts)
    local retry = node.retry
    if type(retry) == "table" and type(retry.attempts) == "number" and retry.attempts > attempts then
        attempts = retry.attempts
    end
    local targets = node.targets
    if type(targets) ~= "table" or #targets == 0 then return 1 + attempts end
    local total = 0
    for _, target in ipairs(targets) do
        if type(target) == "table" then total = total + upstream_calls(target, attempts) end
    end
    return total
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
    local calls = upstream_calls(document, 0)
    if calls > settings.max_config_calls then
        return nil, refusal.new(403, "config", "x-portkey-config: may make " .. calls .. " upstream calls (targets "
            .. "times 1 + retry attempts); at most " .. settings.max_config_calls .. " are allowed")
    end
    return document
end

return _M
