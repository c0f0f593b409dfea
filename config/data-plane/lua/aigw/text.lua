-- Text the data plane writes where a client's bytes could reach: log lines,
-- span attributes, refusals. Printable ASCII only, bounded in length, so a
-- client-chosen byte can neither break a JSON log line nor make the
-- collector refuse a whole batch of spans.
local type, find, gsub, sub = type, string.find, string.gsub, string.sub

local _M = {}

_M.MAX_LENGTH = 256

-- `value` with every byte outside printable ASCII (0x20-0x7E) as "?", cut to
-- `max` bytes (default 256). Anything but a string or a number is "": a
-- table must never be printed (its address is an internal).
function _M.clean(value, max)
    local kind = type(value)
    if kind == "number" then
        value = tostring(value)
    elseif kind ~= "string" then
        return ""
    end
    max = max or _M.MAX_LENGTH
    if #value <= max and not find(value, "[^ -~]") then return value end  -- already clean: no new string
    return sub(gsub(value, "[^ -~]", "?"), 1, max)
end

return _M
