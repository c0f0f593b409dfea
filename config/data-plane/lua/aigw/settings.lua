-- The data plane's settings: settings.json from the bundle (rendered by
-- aigw/data_plane/render.py from the environment file) joined with the
-- runtime settings the task definition carries (AIGW_DATA_PLANE_RUNTIME:
-- values only other constructs know, such as the Cognito client ids of the
-- teams). Loaded once per nginx master; a problem refuses the start.
local cjson = require "cjson.safe"

local type, pairs, ipairs, next, concat, sort = type, pairs, ipairs, next, table.concat, table.sort

local _M = {}

-- Cognito app client ids: letters and digits (1-128); team names as the
-- settings validate them.
local CLIENT_ID = "^%w+$"
local TEAM = "^[a-z][a-z0-9-]*$"

local function sorted_keys(set)
    local keys = {}
    for key in pairs(set) do keys[#keys + 1] = key end
    sort(keys)
    return keys
end

local function read_file(path)
    local file, err = io.open(path, "rb")
    if not file then return nil, err end
    local data = file:read("*a")
    file:close()
    return data
end

local function teams_of(runtime)
    local teams = {}
    if runtime.teams == nil then return teams end
    if type(runtime.teams) ~= "table" or #runtime.teams > 0 then return nil, "teams is not an object" end
    for client_id, team in pairs(runtime.teams) do
        if type(client_id) ~= "string" or not client_id:find(CLIENT_ID) or #client_id > 128 then
            return nil, "teams: a key is not a client id"
        end
        if type(team) ~= "string" or not team:find(TEAM) or #team > 32 then
            return nil, "teams: the team of " .. client_id .. " is not a team name"
        end
        teams[client_id] = team
    end
    return teams
end

-- A part of settings.json joined with the values only another construct
-- knows, from the runtime settings: nil when settings.json has no such part
-- (and then the runtime settings must name none); else its options with the
-- values `check` takes from the runtime's part (or nil and what is wrong).
local function joined(options, runtime_part, name, lacking, check)
    if options == nil or options == cjson.null then
        if runtime_part ~= nil then
            return nil, "the runtime settings name a " .. name .. " settings.json does not use"
        end
        return nil
    end
    if type(runtime_part) ~= "table" then return nil, "the runtime settings lack the " .. lacking end
    local values, err = check(runtime_part)
    if not values then return nil, err end
    for key, value in pairs(options) do values[key] = value end
    return values
end

-- The shared store's address (the cache's endpoint, known once it exists).
local function store_address(address)
    local host, port = address.host, tonumber(address.port)
    if type(host) ~= "string" or not host:find("^[%w][%w.-]*$") or #host > 253 then
        return nil, "the store's host is not a host name"
    end
    if not port or port < 1 or port > 65535 or port ~= math.floor(port) then
        return nil, "the store's port is not a port"
    end
    return { host = host, port = port }
end

-- The guardrail's id and published version (its resources').
local function guardrail_version(named)
    local id, version = named.id, named.version
    if type(id) ~= "string" or not id:find("^[%w]+$") or #id > 64 then
        return nil, "the guardrail's id is not a guardrail id"
    end
    if type(version) ~= "string" or not version:find("^%d+$") or #version > 8 then
        return nil, "the guardrail's version is not a published version number"
    end
    return { id = id, version = version }
end

-- The settings from the text of settings.json and of the runtime settings
-- (nil or "" when the task carries none). Returns the settings or nil and
-- what is wrong.
function _M.parse(text, runtime_text)
    local settings = cjson.decode(text or "")
    if type(settings) ~= "table" or #settings > 0 then return nil, "settings.json is not a JSON object" end
    for _, name in ipairs({ "routes", "providers", "config_keys", "config_providers", "model_patterns",
                            "stored_object_fields", "stored_object_top_level", "stored_object_tool_fields",
                            "stored_object_types", "stored_object_id_holders", "stored_object_urls",
                            "config_values", "remote_tools",
                            "multipart_routes", "single_headers", "anthropic_betas", "telemetry", "usage",
                            "routing" }) do
        if type(settings[name]) ~= "table" then return nil, "settings.json has no " .. name end
    end
    for _, name in ipairs({ "max_headers", "max_body_depth", "max_body_containers", "max_config_calls" }) do
        if type(settings[name]) ~= "number" then return nil, "settings.json has no " .. name end
    end
    local runtime = {}
    if runtime_text and runtime_text ~= "" then
        runtime = cjson.decode(runtime_text)
        -- cjson decodes a JSON array to a table too: one with an array part.
        if type(runtime) ~= "table" or #runtime > 0 then return nil, "the runtime settings are not a JSON object" end
    end
    local teams, err = teams_of(runtime)
    if not teams then return nil, err end
    if type(settings.team_limits) ~= "table" then return nil, "settings.json has no team_limits" end
    for client_id, team in pairs(teams) do
        if type(settings.team_limits[team]) ~= "table" then
            return nil, "teams: " .. client_id .. " belongs to " .. team .. ", which settings.json does not know"
        end
    end
    settings.teams = teams
    local store
    store, err = joined(settings.store, runtime.store, "store", "store's address", store_address)
    if err then return nil, err end
    settings.store = store
    local guardrail
    guardrail, err = joined(settings.guardrail, runtime.guardrail, "guardrail", "guardrail's id and version",
        guardrail_version)
    if err then return nil, err end
    settings.guardrail = guardrail
    -- Texts of refusals, built once from the settings (never from a request).
    settings.route_list = concat(sorted_keys(settings.routes), ", ")
    settings.route_help = {}
    for route, providers in pairs(settings.routes) do
        settings.route_help[route] = #sorted_keys(providers) > 0 and concat(sorted_keys(providers), ", ") or "none"
    end
    settings.config_help = "allowed keys: " .. concat(sorted_keys(settings.config_keys), ", ")
        .. "; providers: " .. concat(sorted_keys(settings.config_providers), ", ")
    settings.beta_help = concat(sorted_keys(settings.anthropic_betas), ", ")
    if settings.cache == cjson.null then settings.cache = nil end
    if settings.cache and not settings.store then
        return nil, "settings.json: the response cache needs the shared store"
    end
    local routing = settings.routing
    if type(routing.configs) ~= "table" then return nil, "settings.json has no routing configs" end
    if routing.default == cjson.null then routing.default = nil end
    if routing.default ~= nil and not routing.configs[routing.default] then
        return nil, "settings.json: the default route is not one of the routes"
    end
    if (routing.default == nil) ~= (next(routing.configs) == nil) then
        return nil, "settings.json: routes without a default, or a default without routes"
    end
    for _, route in pairs(routing.configs) do
        for _, target in ipairs(route.targets) do
            if target.model == cjson.null then target.model = nil end
        end
    end
    routing.help = concat(sorted_keys(routing.configs), ", ")
    return settings
end

function _M.load(path, runtime_text)
    local text, err = read_file(path)
    if not text then return nil, "cannot read " .. path .. ": " .. tostring(err) end
    return _M.parse(text, runtime_text)
end

return _M
