-- Token usage, read out of the answer the gateway normalised, as the client
-- receives it: OpenAI-style `usage` (prompt_tokens / completion_tokens) and
-- Anthropic messages (input_tokens / output_tokens; streamed in
-- message_start and message_delta events). One reader per request, fed the
-- body chunk by chunk.
local cjson = require "cjson.safe"

local type, concat, setmetatable, floor = type, table.concat, setmetatable, math.floor
local find, sub, match, gmatch = string.find, string.sub, string.match, string.gmatch

local _M = {}
local mt = { __index = _M }

-- content_type: the answer's; limits: { max_body_bytes, max_event_bytes }.
function _M.new(content_type, limits)
    content_type = type(content_type) == "string" and content_type or ""
    return setmetatable({
        streaming = find(content_type, "text/event-stream", 1, true) ~= nil,
        json = find(content_type, "application/json", 1, true) ~= nil,
        limits = limits,
        buffer = {},
        size = 0,
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

local function take_event(self, data)
    local event = cjson.decode(data)
    if type(event) ~= "table" then return end
    take_usage(self, event.usage)
    local message = event.message
    if type(message) == "table" then
        take_usage(self, message.usage)
        if self.model == nil and type(message.model) == "string" then self.model = message.model end
    end
    if self.model == nil and type(event.model) == "string" then self.model = event.model end
end

-- One chunk of the body as it passes to the client.
function _M:feed(chunk)
    if self.done or not chunk or chunk == "" then return end
    if self.streaming then
        local pending = self.pending .. chunk
        local last
        for line, rest in gmatch(pending, "([^\n]*)\n()") do
            local data = match(line, "^data:%s*(.-)%s*$")
            if data and sub(data, 1, 1) == "{" then take_event(self, data) end
            last = rest
        end
        pending = last and sub(pending, last) or pending
        -- An event larger than the limit is not read (its line is dropped).
        self.pending = #pending > self.limits.max_event_bytes and "" or pending
    elseif self.json then
        self.size = self.size + #chunk
        if self.size <= self.limits.max_body_bytes then
            self.buffer[#self.buffer + 1] = chunk
        end
    end
end

-- At the end of the body: { input_tokens, output_tokens, model } as found (each may be nil).
function _M:finish()
    if not self.done then
        self.done = true
        if self.json and self.size <= self.limits.max_body_bytes then
            take_event(self, concat(self.buffer))
        end
        self.buffer = nil
    end
    return { input_tokens = self.input_tokens, output_tokens = self.output_tokens, model = self.model }
end

return _M
