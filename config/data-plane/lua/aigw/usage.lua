-- Token usage, read out of the answer the gateway normalised, as the client
-- receives it: OpenAI-style `usage` (prompt_tokens / completion_tokens),
-- Anthropic messages (input_tokens / output_tokens; streamed in
-- message_start and message_delta events) and the Responses API (streamed in
-- response.completed). One reader per request, fed the body chunk by chunk.
-- A JSON answer too large to keep, or a streamed event too large to keep (the
-- Responses API's response.completed carries the whole answer), is read from
-- its tail, where its `usage` is: a client must not hide its usage behind a
-- long answer. Memory per request stays bounded by the limits.
local cjson = require "cjson.safe"

local type, ipairs, concat, setmetatable, floor = type, ipairs, table.concat, setmetatable, math.floor
local find, sub, byte, gmatch = string.find, string.sub, string.byte, string.gmatch

local _M = {}
local mt = { __index = _M }

local NESTED = { "message", "response" }
local OPEN_BRACE = 123  -- "{"

-- content_type: the answer's; limits: { max_body_bytes, max_event_bytes }.
function _M.new(content_type, limits)
    content_type = type(content_type) == "string" and content_type or ""
    return setmetatable({
        streaming = find(content_type, "text/event-stream", 1, true) ~= nil,
        json = find(content_type, "application/json", 1, true) ~= nil,
        limits = limits,
        buffer = {},      -- a JSON answer: whole, or (past the limit) its tail
        size = 0,
        kept = 0,
        parts = {},       -- the stream's line in progress
        line_size = 0,
        long_line = false,
    }, mt)
end

-- A token count: a whole number from 0 to 10^12 (anything else is not a count).
local function count(value)
    if type(value) == "number" and value >= 0 and value <= 1e12 and value == floor(value) then
        return value
    end
    return nil
end

local function take_usage(self, usage)
    if type(usage) ~= "table" then return end
    local input = count(usage.prompt_tokens) or count(usage.input_tokens)
    local output = count(usage.completion_tokens) or count(usage.output_tokens)
    if input then self.input_tokens = input end
    if output then self.output_tokens = output end
end

-- The last `"usage": {...}` of a tail. Keys cannot be forged inside JSON
-- strings (their quotes are escaped), so it is the answer's own.
local function take_tail_usage(self, tail)
    local last
    for object in gmatch(tail, '"usage"%s*:%s*(%b{})') do last = object end
    if last then take_usage(self, cjson.decode(last)) end
end

local function take_event(self, data)
    local event = cjson.decode(data)
    if type(event) ~= "table" then return end
    take_usage(self, event.usage)
    -- Anthropic's message_start (event.message) and the Responses API's events (event.response).
    for _, name in ipairs(NESTED) do
        local inner = event[name]
        if type(inner) == "table" then
            take_usage(self, inner.usage)
            if self.model == nil and type(inner.model) == "string" then self.model = inner.model end
        end
    end
    if self.model == nil and type(event.model) == "string" then self.model = event.model end
end

-- A complete line of a stream: an event's data, when it is a JSON object.
-- Decoded only when it can say something new: a usage object (`"usage":{`,
-- which a string inside the JSON cannot spell: its quotes are escaped), or
-- the model while none is known. Most events carry neither: a chunk of text.
-- Whether `line` spells a usage object from `from` on ('"usage"%s*:%s*{'):
-- its key found as plain text first, the pattern tried only where it is.
local function spells_usage(line, from)
    local at = find(line, '"usage"', from, true)
    while at do
        if find(line, '^%s*:%s*{', at + 7) then return true end
        at = find(line, '"usage"', at + 1, true)
    end
    return false
end

local function take_line(self, line)
    if sub(line, 1, 5) ~= "data:" then return end
    if self.model ~= nil and not spells_usage(line, 6) then return end
    local first = find(line, "[^ \t]", 6)
    if first and byte(line, first) == OPEN_BRACE then take_event(self, sub(line, first)) end
end

-- A piece of the line in progress. A line larger than the event limit keeps
-- only its tail from then on (compacted once it holds twice that): memory and
-- work stay linear in the bytes that pass, however long the line.
local function add_to_line(self, piece)
    if piece == "" then return end
    local parts, limits = self.parts, self.limits
    parts[#parts + 1] = piece
    self.line_size = self.line_size + #piece
    if self.line_size > limits.max_event_bytes then self.long_line = true end
    if self.long_line and self.line_size > 2 * limits.tail_bytes then
        local tail = sub(concat(parts), -limits.tail_bytes)
        self.parts, self.line_size = { tail }, #tail
    end
end

local function end_line(self)
    local line = concat(self.parts)
    if self.long_line then
        take_tail_usage(self, sub(line, -self.limits.tail_bytes))
    else
        take_line(self, line)
    end
    self.parts, self.line_size, self.long_line = {}, 0, false
end

-- One chunk of the body as it passes to the client. Each byte is looked at
-- a bounded number of times: newlines are found in the new chunk only.
function _M:feed(chunk)
    if self.done or not chunk or chunk == "" then return end
    if self.streaming then
        local from = 1
        while true do
            local newline = find(chunk, "\n", from, true)
            if not newline then break end
            add_to_line(self, sub(chunk, from, newline - 1))
            end_line(self)
            from = newline + 1
        end
        add_to_line(self, sub(chunk, from))
    elseif self.json then
        local buffer, limits = self.buffer, self.limits
        buffer[#buffer + 1] = chunk
        self.size, self.kept = self.size + #chunk, self.kept + #chunk
        -- Too large to keep whole: only its tail (compacted once it holds twice that).
        if self.size > limits.max_body_bytes and self.kept > 2 * limits.tail_bytes then
            local tail = sub(concat(buffer), -limits.tail_bytes)
            self.buffer, self.kept = { tail }, #tail
        end
    end
end

-- At the end of the body: { input_tokens, output_tokens, model } as found (each may be nil).
function _M:finish()
    if not self.done then
        self.done = true
        if self.json and self.size <= self.limits.max_body_bytes then
            take_event(self, concat(self.buffer))
        elseif self.json then
            local tail = sub(concat(self.buffer), -self.limits.tail_bytes)
            take_tail_usage(self, tail)
            local model
            for name in gmatch(tail, '"model"%s*:%s*"([^"\\]*)"') do model = name end
            if model and self.model == nil then self.model = model end
        end
        self.buffer, self.parts = {}, {}
    end
    return { input_tokens = self.input_tokens, output_tokens = self.output_tokens, model = self.model }
end

return _M
