local usage = require "aigw.usage"

local LIMITS = { max_body_bytes = 1024, max_event_bytes = 256 }

local function read(content_type, chunks)
    local reader = usage.new(content_type, LIMITS)
    for _, chunk in ipairs(chunks) do reader:feed(chunk) end
    return reader:finish()
end

describe("usage of a JSON answer", function()
    it("reads OpenAI-style usage and the model, across chunks", function()
        local found = read("application/json; charset=utf-8", {
            '{"model":"gpt-4o","usage":{"prompt_tokens":12,', '"completion_tokens":34}}' })
        assert.same({ input_tokens = 12, output_tokens = 34, model = "gpt-4o" }, found)
    end)

    it("reads Anthropic messages usage", function()
        assert.same({ input_tokens = 5, output_tokens = 7 },
            read("application/json", { '{"usage":{"input_tokens":5,"output_tokens":7}}' }))
    end)

    it("reads nothing of an answer over the size limit", function()
        local padding = string.rep("x", 2000)
        assert.same({}, read("application/json", { '{"pad":"' .. padding .. '","usage":{"prompt_tokens":1}}' }))
    end)

    it("reads nothing of an answer that is not JSON or SSE", function()
        assert.same({}, read("text/plain", { '{"usage":{"prompt_tokens":1,"completion_tokens":2}}' }))
        assert.same({}, read(nil, { '{"usage":{"prompt_tokens":1,"completion_tokens":2}}' }))
    end)

    for _, bad in ipairs({ "-1", "1.5", "1e13", '"12"', "null", "true", "[1]" }) do
        it("takes no count from " .. bad .. " (a count is a whole number from 0 to 10^12)", function()
            local found = read("application/json", { '{"usage":{"prompt_tokens":' .. bad .. ',"completion_tokens":3}}' })
            assert.same({ output_tokens = 3 }, found)
        end)
    end
end)

describe("usage of a stream", function()
    it("reads the final usage chunk of an OpenAI stream, split anywhere", function()
        local stream = 'data: {"model":"gpt-4o","choices":[{"delta":{"content":"hi"}}]}\n\n'
            .. 'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}\n\ndata: [DONE]\n\n'
        for cut = 1, #stream - 1 do
            local found = read("text/event-stream", { stream:sub(1, cut), stream:sub(cut + 1) })
            assert.same({ input_tokens = 9, output_tokens = 2, model = "gpt-4o" }, found, "cut at " .. cut)
        end
    end)

    it("reads Anthropic's message_start and message_delta events", function()
        local found = read("text/event-stream", {
            'event: message_start\ndata: {"type":"message_start","message":{"model":"claude","usage":{"input_tokens":11,"output_tokens":1}}}\n\n',
            'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":25}}\n\n' })
        assert.same({ input_tokens = 11, output_tokens = 25, model = "claude" }, found)
    end)

    it("logs no tokens for a stream without a usage chunk", function()
        assert.same({ model = "m" }, read("text/event-stream", { 'data: {"model":"m","choices":[]}\n\n' }))
    end)

    it("drops an event larger than the limit instead of growing without bound", function()
        local found = read("text/event-stream", { "data: {" .. string.rep("x", 300),
            '}\n\ndata: {"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n' })
        assert.same({ input_tokens = 1, output_tokens = 1 }, found)
    end)

    it("reads each chunk once, and nothing after the end", function()
        local reader = usage.new("text/event-stream", LIMITS)
        reader:feed('data: {"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n')
        assert.same({ input_tokens = 1, output_tokens = 1 }, reader:finish())
        reader:feed('data: {"usage":{"prompt_tokens":99,"completion_tokens":99}}\n\n')
        assert.same({ input_tokens = 1, output_tokens = 1 }, reader:finish())
    end)
end)
