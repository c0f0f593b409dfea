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
local find, sub, match, gmatch = string.find, string.sub, string.match, string.gmatch

local _M = {}
local mt = { __index = _M }

local NESTED = { "message", "response" }

-- content_type: the answer's; limits: { max_body_bytes, max_event_bytes }.
function _M.new(content_type, limits)
    content_type = type(content_type) == "string" and content_type or ""
    return setmetatable({
        streaming = find(content_type, "text/event-stream", 1, true) ~= nil,
        json = find(content_type, "application/json", 1, true) ~= nil,
        limits = limits,
        buffer = {},
        size = 0,
        tail = "",
        pending = "",
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

-- One chunk of the body as it passes to the client.
function _M:feed(chunk)
    if self.done or not chunk or chunk == "" then return end
    if self.streaming then
        local limits = self.limits
        local pending = self.pending .. chunk
        local last
        for line, rest in gmatch(pending, "([^\n]*)\n()") do
            if self.long_line then
                -- The end of a line larger than the limit: only its tail was kept.
                take_tail_usage(self, line)
                self.long_line = false
            else
                local data = match(line, "^data:%s*(.-)%s*$")
                if data and sub(data, 1, 1) == "{" then take_event(self, data) end
            end
            last = rest
        end
        pending = last and sub(pending, last) or pending
        -- A line larger than the limit keeps only its tail from here on.
        if #pending > limits.max_event_bytes or (self.long_line and #pending > limits.tail_bytes) then
            self.long_line = true
            pending = sub(pending, -limits.tail_bytes)
        end
        self.pending = pending
    elseif self.json then
        self.size = self.size + #chunk
        local limits = self.limits
        if self.size <= limits.max_body_bytes then
            self.buffer[#self.buffer + 1] = chunk
        elseif self.buffer then
            -- Too large to keep whole from here on: only its tail.
            self.tail = sub(concat(self.buffer) .. chunk, -limits.tail_bytes)
            self.buffer = nil
        else
            local tail = self.tail .. chunk
            self.tail = #tail > limits.tail_bytes and sub(tail, -limits.tail_bytes) or tail
        end
    end
end

-- At the end of the body: { input_tokens, output_tokens, model } as found (each may be nil).
function _M:finish()
    if not self.done then
        self.done = true
        if self.json and self.buffer then
            take_event(self, concat(self.buffer))
        elseif self.json then
            take_tail_usage(self, self.tail)
            local model
            for name in gmatch(self.tail, '"model"%s*:%s*"([^"\\]*)"') do model = name end
            if model and self.model == nil then self.model = model end
        end
        self.buffer = nil
    end
    return { input_tokens = self.input_tokens, output_tokens = self.output_tokens, model = self.model }
end

return _M
