-- Named routing configs ([routing.<name>], rendered into settings.json by
-- aigw/data_plane/routing.py): which one a request uses, the gateway's
-- config with each target's credentials filled in, and the targets skipped
-- for a while after failing in a row (counted per task, in a shared dict).
-- Every function returns a value, or nil and the refusal; none ends the request.
local cjson = require "cjson.safe"
local refusal = require "aigw.refusal"

local type, pairs, ipairs = type, pairs, ipairs

local _M = {}

local ROUTE_NAME = "^[a-z][a-z0-9-]*$"
local BOTH = refusal.new(400, "route", "x-aigw-route names a route: send it without x-portkey-provider and "
    .. "x-portkey-config")

local function present(value)
    return value ~= nil and value ~= ""
end

-- The name of the route a request uses: the one x-aigw-route names, else
-- the default when the request names no provider and no config. nil (and
-- no refusal) when the request names a provider or a config of its own.
function _M.select(headers, routing)
    local asked = headers["x-aigw-route"]
    local names_own = present(headers["x-portkey-config"]) or headers["x-portkey-provider"] ~= nil
    if asked == nil then
        if names_own then return nil end
        return routing.default
    end
    if names_own then return nil, BOTH end
    if not routing.default then
        return nil, refusal.new(400, "route", "x-aigw-route: no routes are configured here")
    end
    if type(asked) ~= "string" or #asked > 32 or not asked:find(ROUTE_NAME) or not routing.configs[asked] then
        return nil, refusal.new(400, "route", "x-aigw-route: not a configured route; configured: " .. routing.help)
    end
    return asked
end

-- The route's providers that are not offered on `offered` (the request's
-- route's providers), as text; nil when every one is.
function _M.unoffered(route, offered)
    local missing, seen = {}, {}
    for _, target in ipairs(route.targets) do
        if not offered[target.provider] and not seen[target.provider] then
            seen[target.provider] = true
            missing[#missing + 1] = target.provider
        end
    end
    if #missing == 0 then return nil end
    return table.concat(missing, ", ")
end

-- What the body checks need per target: its provider, and whether the
-- request's model reaches it (a target with a model of its own replaces it).
function _M.body_targets(route)
    local targets = {}
    for index, target in ipairs(route.targets) do
        targets[index] = { provider = target.provider, model = target.model == nil or target.model == cjson.null }
    end
    return targets
end

-- Whether every target's provider is one `providers` (a set) holds.
function _M.all_in(route, providers)
    if not providers then return false end
    for _, target in ipairs(route.targets) do
        if not providers[target.provider] then return false end
    end
    return true
end

local function counter_key(name, index)
    return name .. "#" .. index
end

local function skip_key(name, index)
    return name .. "#" .. index .. ":skip"
end

-- The targets to try (indexes into route.targets, in order): those not
-- skipped; every one when all are (a route never refuses on its own).
-- `dict`: the task's shared dict (nil: nothing is skipped).
function _M.available(name, route, dict)
    local chosen, all = {}, {}
    for index = 1, #route.targets do
        all[index] = index
        if route.strategy == "single" or not dict or not dict:get(skip_key(name, index)) then
            chosen[#chosen + 1] = index
        end
    end
    if #chosen == 0 then return all end
    return chosen
end

-- The gateway's config (JSON text) of the chosen targets, each with the
-- fields credentials_of(provider) returns (its key, or the task role's
-- credentials); nil and the refusal when credentials_of refuses.
function _M.build(route, chosen, credentials_of)
    local source = route.config
    local targets = {}
    for position, index in ipairs(chosen) do
        local target = {}
        for key, value in pairs(source.targets[index]) do target[key] = value end
        local fields, decision = credentials_of(route.targets[index].provider)
        if not fields then return nil, decision end
        for key, value in pairs(fields) do target[key] = value end
        targets[position] = target
    end
    return cjson.encode({ strategy = source.strategy, targets = targets })
end

-- The gateway's x-portkey-last-used-option-index names the target that
-- answered by its path in the config: "config.targets[1]", nested
-- "config.targets[0].targets[2]". Returns the indexes as text ("1", "0.2"),
-- or nil when the value is not such a path (at most 4 levels).
function _M.option(value)
    if type(value) ~= "string" or #value > 96 or value:sub(1, 6) ~= "config" then return nil end
    local indexes, rest = {}, value:sub(7)
    while rest ~= "" do
        local index, after = rest:match("^%.targets%[(%d%d?%d?)%](.*)$")
        if not index or #indexes == 4 then return nil end
        indexes[#indexes + 1] = index
        rest = after
    end
    if #indexes == 0 then return nil end
    return table.concat(indexes, ".")
end

-- The index (into route.targets) of the target that served, from the
-- gateway's option (routing.option: 0-based, into the chosen targets; a
-- route's config is flat); nil when it is not one of them.
function _M.served(option, chosen)
    if type(option) ~= "string" or not option:find("^%d+$") then return nil end
    return chosen[tonumber(option) + 1]
end

-- A 429 or 5xx is a target failing; any other answer (a 4xx the request
-- earned included: a client must not be able to make a provider look failing).
local function failed(status)
    return status == 429 or status >= 500
end

local function failure(dict, name, index, route)
    local count = dict:incr(counter_key(name, index), 1, 0)
    if count and count >= route.skip_after_failures then
        dict:set(skip_key(name, index), true, route.skip_seconds)
        -- Tried again after the pause: one more failure skips it again.
        dict:set(counter_key(name, index), route.skip_after_failures - 1)
    end
end

-- Counts what a routed answer says about its targets: in a fallback, each
-- target before the one that served moved the request on (it failed); the
-- one that served failed when its status is a 429 or a 5xx, and answered
-- when it is a 2xx (which ends its run of failures); any other status
-- counts neither way.
function _M.record(name, route, chosen, served, status, dict)
    if not dict or route.strategy == "single" or not served then return end
    if route.strategy == "fallback" then
        for _, index in ipairs(chosen) do
            if index == served then break end
            failure(dict, name, index, route)
        end
    end
    if failed(status) then
        failure(dict, name, served, route)
    elseif status >= 200 and status < 300 then
        -- Only an answer resets the count: a 4xx a request earned says nothing of the target.
        dict:delete(counter_key(name, served))
    end
end

return _M
