-- Usage a client cannot hide: an OpenAI-shaped stream reports its tokens only
-- when the request asks for them (stream_options.include_usage), so the data
-- plane asks on every such stream, and gives the client back exactly the
-- stream it asked for: without the usage chunk (empty `choices`, a `usage`
-- object) and without the `"usage":null` OpenAI then puts in every other
-- chunk. The usage reader (usage.lua) sees the stream before this filter.
local cjson = require "cjson.safe"

local type, next, pairs, find, sub, gsub, concat =
    type, next, pairs, string.find, string.sub, string.gsub, table.concat

-- A line longer than this is no usage chunk (those are a few hundred bytes):
-- it passes on as it comes instead of being held until its end.
local MAX_HELD = 65536

local _M = {}

-- The body with stream_options.include_usage set, the client's other
-- stream_options kept: one key appended before the closing brace. The
-- gateway parses bodies with JSON.parse, where the last of two equal keys
-- wins, so the client's own stream_options (checked earlier) is replaced.
-- body: the JSON object's text (already checked); stream_options: its value.
function _M.ask(body, stream_options)
    local merged = {}
    if type(stream_options) == "table" then
        for key, value in pairs(stream_options) do merged[key] = value end
    end
    merged.include_usage = true
    local last = #body
    while last > 0 and find(sub(body, last, last), "%s") do last = last - 1 end
    if sub(body, last, last) ~= "}" then return nil end
    local before = sub(body, 1, last - 1)
    local separator = ","
    if find(before, "^%s*{%s*$") then before, separator = "{", "" end
    return before .. separator .. '"stream_options":' .. cjson.encode(merged) .. "}"
end

-- Whether the client asked for the usage chunk itself.
function _M.asked(stream_options)
    return type(stream_options) == "table" and stream_options.include_usage == true
end

function _M.new_filter()
    return { partial = {}, held = 0, long = false, skip_blank = false }
end

local function is_usage_chunk(line)
    local first = find(line, "{", 6, true)
    if not first then return false end
    local event = cjson.decode(sub(line, first))
    return type(event) == "table" and type(event.choices) == "table" and next(event.choices) == nil
        and type(event.usage) == "table"
end

-- One complete line (without its newline): what goes on, or nil.
local function pass(state, line)
    if state.skip_blank then
        state.skip_blank = false
        if line == "" or line == "\r" then return nil end
    end
    if sub(line, 1, 5) ~= "data:" or not find(line, '"usage"', 6, true) then return line end
    if is_usage_chunk(line) then
        state.skip_blank = true  -- the blank line that ends its event goes too
        return nil
    end
    line = gsub(line, ',%s*"usage"%s*:%s*null', "")
    line = gsub(line, '"usage"%s*:%s*null%s*,?', "")
    return line
end

-- The part of `chunk` the client gets (complete lines; a line in progress
-- waits for its end, or for the end of the stream).
function _M.filter(state, chunk, eof)
    local out = {}
    local from = 1
    chunk = chunk or ""
    while true do
        local newline = find(chunk, "\n", from, true)
        if not newline then break end
        local piece = sub(chunk, from, newline - 1)
        if state.long then
            out[#out + 1] = piece .. "\n"
        else
            state.partial[#state.partial + 1] = piece
            local line = pass(state, concat(state.partial))
            if line then out[#out + 1] = line .. "\n" end
        end
        state.partial, state.held, state.long = {}, 0, false
        from = newline + 1
    end
    if from <= #chunk then
        local rest = sub(chunk, from)
        if state.long then
            out[#out + 1] = rest
        else
            state.partial[#state.partial + 1] = rest
            state.held = state.held + #rest
            if state.held > MAX_HELD then
                out[#out + 1] = concat(state.partial)
                state.partial, state.held, state.long = {}, 0, true
            end
        end
    end
    if eof and #state.partial > 0 then
        local line = pass(state, concat(state.partial))
        state.partial, state.held = {}, 0
        if line then out[#out + 1] = line end
    end
    return concat(out)
end

return _M
