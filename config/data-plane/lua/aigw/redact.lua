-- No answer relayed to a client may carry a credential the data plane holds
-- (an organisation key, the task role's access key, secret key or session
-- token), even when a provider or the gateway echoes one in an error. Each
-- occurrence in a response header or body, as it is or in the forms an answer
-- could carry it (JSON-escaped, percent-encoded with either case of hex
-- digits, base64 and base64url), is replaced by as many "*": the length
-- stays, so Content-Length stays true.
--
-- Bodies are filtered as they pass. What is held back for the next chunk
-- never depends on the credentials (that would tell a client, through the
-- chunk sizes, whether text it made a provider echo begins one): a stream
-- releases whole lines (an event line never contains a credential's end
-- without its start), and anything else, or a line longer than HOLD, keeps
-- back its last HOLD bytes, which is longer than any credential.
local type, ipairs, setmetatable, sort, concat = type, ipairs, setmetatable, table.sort, table.concat
local find, sub, rep, gsub, byte, format, max = string.find, string.sub, string.rep, string.gsub, string.byte,
    string.format, math.max
local encode_base64 = ngx.encode_base64

local _M = {}
local mt = { __index = _M }

_M.HOLD = 4096
local NEWLINE = 10  -- "\n"

-- Percent-encoded, with upper- or lowercase hex digits (both are valid), every
-- reserved character encoded or, as Python's quote() and URL paths do, "/" kept.
-- (Hex digits of mixed case in one text are not a form here.)
local EVERY_RESERVED, BUT_SLASH = "[^%w%-%._~]", "[^%w%-%._~/]"

local function percent_encoded(secret, digits, reserved)
    return (gsub(secret, reserved, function(char) return format(digits, byte(char)) end))
end

-- The base64 of `secret` as it appears inside a longer base64 text, for each
-- of the three alignments: the groups that depend on the secret alone.
local BASE64URL = { ["+"] = "-", ["/"] = "_" }

local function base64_cores(secret)
    local cores = {}
    for offset = 0, 2 do
        local encoded = encode_base64(rep("\0", offset) .. secret)
        local first = offset > 0 and 5 or 1
        local last = (#secret + offset) % 3 ~= 0 and #encoded - 4 or #encoded
        cores[#cores + 1] = sub(encoded, first, last)
    end
    return cores
end

local function forms(secret)
    local list = { secret, (gsub(secret, "/", "\\/")) }
    for _, reserved in ipairs({ EVERY_RESERVED, BUT_SLASH }) do
        list[#list + 1] = percent_encoded(secret, "%%%02X", reserved)
        list[#list + 1] = percent_encoded(secret, "%%%02x", reserved)
    end
    for _, core in ipairs(base64_cores(secret)) do
        list[#list + 1] = core
        list[#list + 1] = (gsub(core, "[+/]", BASE64URL))  -- base64url
    end
    return list
end

-- secrets: a list of strings (short ones, under 8 bytes, are not treated as
-- credentials: they would match ordinary text; nor is a form under 8 bytes).
function _M.new(secrets)
    local list, seen = {}, {}
    for _, secret in ipairs(secrets) do
        if type(secret) == "string" and #secret >= 8 then
            for _, form in ipairs(forms(secret)) do
                if #form >= 8 and not seen[form] then
                    seen[form] = true
                    list[#list + 1] = form
                end
            end
        end
    end
    -- Longest first: a credential that contains another is masked whole.
    sort(list, function(a, b) return #a > #b end)
    local longest = list[1] and #list[1] or 0
    -- Without "*" in any form, masking never makes a new occurrence: clean
    -- text, and any part of it, is clean (filter relies on it).
    local starless = true
    for _, form in ipairs(list) do
        if find(form, "*", 1, true) then starless = false end
    end
    return setmetatable({ secrets = list, hold = max(_M.HOLD, longest), starless = starless }, mt)
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

-- Whether `text` holds a credential (in any of its forms): clean(text)
-- differs from text only when it does.
function _M:holds(text)
    for _, secret in ipairs(self.secrets) do
        if find(text, secret, 1, true) then return true end
    end
    return false
end

-- `text` with every credential masked.
function _M:clean(text)
    for _, secret in ipairs(self.secrets) do
        text = mask(text, secret)
    end
    return text
end

-- How many bytes at the end of `text` wait for the next chunk.
function _M:held_back(text, lines)
    if lines then
        local last_newline
        for at = #text, 1, -1 do
            if byte(text, at) == NEWLINE then
                last_newline = at
                break
            end
        end
        local open = last_newline and #text - last_newline or #text
        if open <= self.hold then return open end
    end
    return #text < self.hold and #text or self.hold
end

-- One body chunk through the filter; `state` is the request's (a table kept
-- across chunks; `state.lines` for an event stream). Returns what may go to
-- the client now.
function _M:filter(state, chunk, eof)
    local carry = state.carry
    local text = (carry or "") .. (chunk or "")
    if #self.secrets == 0 then
        state.carry = nil
        return text
    end
    -- What was held back was masked already, by this redactor: nothing new, nothing to mask again. (A
    -- redactor rebuilt since, with credentials fetched meanwhile, masks the whole text again.)
    if not (self.starless and carry and state.masked_by == self and (chunk or "") == "") then
        text = self:clean(text)
    end
    local held = eof and 0 or self:held_back(text, state.lines)
    state.carry = held > 0 and sub(text, -held) or nil
    state.masked_by = self
    return held > 0 and sub(text, 1, #text - held) or text
end

return _M
