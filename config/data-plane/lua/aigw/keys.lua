-- The organisation's provider keys: ECS injects each into this container's
-- environment from Secrets Manager; the start script has trimmed and
-- checked them. Read once per worker, never logged, never written to a file.
local type, pairs = type, pairs

local _M = {}

-- What a provider API key is made of (the start script checks the same).
local KEY = "^[%w%._~%+/=%-]+$"

-- slug -> key, from `variables` (slug -> environment variable) through
-- `getenv`; nil and what is wrong when a key is missing or malformed.
function _M.load(variables, getenv)
    local keys = {}
    for slug, variable in pairs(variables) do
        local value = getenv(variable)
        if type(value) ~= "string" or value == "" then
            return nil, variable .. " is not set"
        end
        if not value:find(KEY) then
            return nil, variable .. " has characters a provider API key never has"
        end
        keys[slug] = value
    end
    return keys
end

return _M
