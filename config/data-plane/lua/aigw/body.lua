-- The JSON body of a request: the model (Google and Bedrock put it into the
-- upstream URL, Google beside the key), references to objects stored at the
-- provider under the organisation's account, and tools that would make the
-- provider call a host the client names.
local refusal = require "aigw.refusal"

local type, pairs, ipairs, find, lower, gsub = type, pairs, ipairs, string.find, string.lower, string.gsub
local re_find = ngx.re.find

-- JSON as the gateway's JSON.parse reads it: no NaN, Infinity or hex numbers.
local cjson = require("cjson.safe").new()
cjson.decode_invalid_numbers(false)

local _M = {}

local NOT_AN_OBJECT = refusal.new(400, "body", "the request body is not a JSON object")

-- How many objects and arrays a body of this text would decode to, at most
-- (brackets inside strings count too: a bound, cheap, before any table exists).
local function containers(body)
    local _, count = gsub(body, "[%[{]", "")
    return count
end

local function stored(field)
    return refusal.new(403, "stored-object", field .. " refers to data stored at the provider; not offered")
end

-- The first field in `value` that refers to a stored object, or nil.
-- urls: { { pattern, provider }, ... } of the providers the request may reach.
local function stored_reference(value, depth, urls, settings)
    if type(value) ~= "table" then
        -- URLs the provider reads as its own stored objects (Bedrock's s3:// with
        -- the task role; Google's gs:// and Files API URIs with the organisation's key).
        if urls[1] and type(value) == "string" then
            local lowered = lower(value)
            for _, url in ipairs(urls) do
                if find(lowered, url[1]) then return "a URL of an object stored at " .. url[2] end
            end
        end
        return nil
    end
    if depth > settings.max_body_depth then
        return "nesting deeper than " .. settings.max_body_depth  -- not scanned is not allowed
    end
    if type(value.type) == "string" and settings.stored_object_types[value.type] then
        return "an item of type " .. value.type
    end
    for key, item in pairs(value) do
        if type(key) == "string" then
            if settings.stored_object_fields[key] then return key end
            if settings.stored_object_id_holders[key] and type(item) == "table" and item.id ~= nil then
                return key .. ".id"
            end
        end
        local found = stored_reference(item, depth + 1, urls, settings)
        if found then return found end
    end
    return nil
end

-- The first tool of the body that refers to a stored object (kind "stored")
-- or makes the provider call a host the request names (kind "remote"), or nil.
local function tool_problem(document, settings)
    local remote = settings.remote_tools
    for field in pairs(remote.top_level) do
        if document[field] ~= nil then return "remote", field end
    end
    if type(document.tools) ~= "table" then return nil end
    for _, tool in ipairs(document.tools) do
        if type(tool) == "table" then
            if type(tool.type) == "string" and remote.types[tool.type] then
                return "remote", "a tool of type " .. tool.type
            end
            for field in pairs(remote.fields) do
                if tool[field] ~= nil then return "remote", field end
            end
            for field in pairs(settings.stored_object_tool_fields) do
                if tool[field] ~= nil then return "stored", "a tool's " .. field end
            end
        end
    end
    return nil
end

-- Checks the text of a JSON body for `route` and the providers it may
-- reach: targets = { { provider = <slug>, model = <whether the body's model
-- reaches it> }, ... }. Returns what the data plane reads from it ({ model,
-- max_tokens, choices, stream, stream_options }), or nil and the refusal.
function _M.check_targets(body, route, targets, settings)
    if type(body) ~= "string" or not find(body, "^%s*{") then return nil, NOT_AN_OBJECT end
    if containers(body) > settings.max_body_containers then
        return nil, refusal.new(413, "body", "the request body holds more than " .. settings.max_body_containers
            .. " objects and arrays")
    end
    local document = cjson.decode(body)
    if type(document) ~= "table" then return nil, NOT_AN_OBJECT end
    local model = document.model
    if model ~= nil then
        for _, target in ipairs(targets) do
            local provider = target.provider
            local pattern = target.model and (settings.model_patterns[provider] or settings.model_patterns.default)
            if pattern and (type(model) ~= "string" or not re_find(model, pattern, "jo")) then
                return nil, refusal.new(400, "model", "model must match " .. pattern .. " for " .. provider)
            end
        end
    end
    local urls = targets.urls
    if not urls then  -- built once per targets table (the handler keeps them)
        urls = {}
        for _, target in ipairs(targets) do
            for _, pattern in ipairs(settings.stored_object_urls[target.provider] or {}) do
                urls[#urls + 1] = { pattern, target.provider }
            end
        end
        targets.urls = urls
    end
    -- The gateway sends this field as Anthropic's anthropic-version header: anything but a
    -- version date made its request fail before it left (a 500 counted against the target).
    local version = document.anthropic_version
    if version ~= nil and (type(version) ~= "string" or not re_find(version, "^\\d{4}-\\d{2}-\\d{2}\\z", "jo")) then
        return nil, refusal.new(400, "body", "anthropic_version must be a version date such as 2023-06-01")
    end
    local top_level = settings.stored_object_top_level[route]
    if top_level then
        for key in pairs(top_level) do
            if document[key] ~= nil then return nil, stored(key) end
        end
    end
    local field = stored_reference(document, 0, urls, settings)
    if field then return nil, stored(field) end
    local kind, what = tool_problem(document, settings)
    if kind == "stored" then return nil, stored(what) end
    if kind == "remote" then
        return nil, refusal.new(403, "remote-tool", what .. " makes the provider call a host the request names; "
            .. "not offered")
    end
    return { model = model, max_tokens = _M.max_tokens(document), choices = _M.choices(document),
             stream = document.stream == true, stream_options = document.stream_options }
end

-- Checks the text of a JSON body for `route` and one `provider` (check_targets).
local single_targets = {}  -- provider -> its targets table, built once

-- The targets table of a request to one provider (check_targets).
function _M.targets_of(provider)
    local targets = single_targets[provider]
    if not targets then
        targets = { { provider = provider, model = true } }
        single_targets[provider] = targets
    end
    return targets
end

function _M.check(body, route, provider, settings)
    return _M.check_targets(body, route, _M.targets_of(provider), settings)
end

local OUTPUT_BOUNDS = { "max_tokens", "max_completion_tokens", "max_output_tokens" }
-- Fields that ask for several answers, each up to the output bound.
local CHOICE_COUNTS = { "n", "best_of" }

-- How many answers the body asks for (1 when it names none); nil when a
-- count is not a whole number from 1 (a count that cannot be read is no bound).
function _M.choices(document)
    local most = 1
    for _, field in ipairs(CHOICE_COUNTS) do
        local value = document[field]
        if value ~= nil then
            if type(value) ~= "number" or value < 1 or value ~= math.floor(value) or value > 1e6 then
                return nil
            end
            if value > most then most = value end
        end
    end
    return most
end

-- The most output tokens the body asks for: the largest of the fields a
-- provider may read it from; nil when one of them is not a whole number
-- from 1 up (a bound that cannot be read is no bound) or none is there.
function _M.max_tokens(document)
    local largest
    for _, field in ipairs(OUTPUT_BOUNDS) do
        local value = document[field]
        if value ~= nil then
            if type(value) ~= "number" or value < 1 or value ~= math.floor(value) or value > 1e9 then
                return nil
            end
            if not largest or value > largest then largest = value end
        end
    end
    return largest
end

return _M
