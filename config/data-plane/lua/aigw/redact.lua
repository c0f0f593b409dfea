-- No answer relayed to a client may carry a credential the data plane holds
-- (an organisation key, the task role's secret key or session token), even
-- when a provider or the gateway echoes one in an error. Each occurrence in
-- a response header or body is replaced by as many "*" (the length stays,
-- so Content-Length stays true). Bodies are filtered as they stream: a chunk
-- is passed on at once, except for a tail that could be the start of a
-- credential completed by the next chunk.
local type, ipairs, setmetatable, sort, concat = type, ipairs, setmetatable, table.sort, table.concat
local find, sub, rep, gsub, byte, min = string.find, string.sub, string.rep, string.gsub, string.byte, math.min

local _M = {}
local mt = { __index = _M }

-- The forms a credential takes in a body: as it is, and JSON-escaped ("/" as "\/").
local function forms(secret)
    local list = { secret }
    if find(secret, "/", 1, true) then list[2] = gsub(secret, "/", "\\/") end
    return list
end

-- secrets: a list of strings (short ones, under 8 bytes, are not treated as
-- credentials: they would match ordinary text).
function _M.new(secrets)
    local list, seen = {}, {}
    for _, secret in ipairs(secrets) do
        if type(secret) == "string" and #secret >= 8 then
            for _, form in ipairs(forms(secret)) do
                if not seen[form] then
                    seen[form] = true
                    list[#list + 1] = form
                end
            end
        end
    end
    -- Longest first: a credential that contains another is masked whole.
    sort(list, function(a, b) return #a > #b end)
    return setmetatable({ secrets = list }, mt)
end

local function mask(text, secret)
    local start = find(text, secret, 1, true)
    if not start then return text end
    local parts, from = {}, 1
    while start do
        parts[#parts + 1] = sub(text, from, start - 1)
        parts[#parts + 1] = rep("*", #secret)
        from = start + #secret
        start = find(text, secret, from, true)
    end
    parts[#parts + 1] = sub(text, from)
    return concat(parts)
end

-- `text` with every credential masked.
function _M:clean(text)
    for _, secret in ipairs(self.secrets) do
        text = mask(text, secret)
    end
    return text
end

-- How many bytes at the end of `text` could begin a credential.
function _M:held_back(text)
    local held, length = 0, #text
    for _, secret in ipairs(self.secrets) do
        local first = byte(secret, 1)
        local from = length - min(#secret - 1, length) + 1
        for position = from, length do
            if byte(text, position) == first and length - position + 1 > held
                    and sub(text, position) == sub(secret, 1, length - position + 1) then
                held = length - position + 1
                break
            end
        end
    end
    return held
end

-- One body chunk through the filter; `state` is the request's (a table kept
-- across chunks). Returns what may go to the client now.
function _M:filter(state, chunk, eof)
    local text = (state.carry or "") .. (chunk or "")
    if #self.secrets == 0 then
        state.carry = nil
        return text
    end
    text = self:clean(text)
    local held = eof and 0 or self:held_back(text)
    state.carry = held > 0 and sub(text, -held) or nil
    return held > 0 and sub(text, 1, #text - held) or text
end

return _M
