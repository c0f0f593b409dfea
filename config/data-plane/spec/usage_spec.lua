local usage = require "aigw.usage"

local LIMITS = { max_body_bytes = 1024, max_event_bytes = 256, tail_bytes = 300 }

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

    it("reads the usage and model of an answer over the size limit from its tail", function()
        local data = '{"data":[' .. string.rep('{"embedding":[0.1,0.2]},', 200) .. '{"embedding":[0.3]}],'
            .. '"model":"text-embedding-3-small","usage":{"prompt_tokens":9000,"total_tokens":9000,'
            .. '"prompt_tokens_details":{"cached_tokens":0}}}'
        assert.truthy(#data > LIMITS.max_body_bytes)
        local chunks = {}
        for i = 1, #data, 100 do chunks[#chunks + 1] = data:sub(i, i + 99) end
        assert.same({ input_tokens = 9000, model = "text-embedding-3-small" }, read("application/json", chunks))
    end)

    it("takes no usage a client wrote into the content of a large answer", function()
        -- Inside a JSON string every quote is escaped: "usage" cannot appear as a key there.
        local fake = '\\"usage\\":{\\"prompt_tokens\\":1}'
        local data = '{"choices":[{"message":{"content":"' .. string.rep("x", 1200) .. fake .. '"}}],'
            .. '"usage":{"prompt_tokens":777,"completion_tokens":5}}'
        assert.same({ input_tokens = 777, output_tokens = 5 }, read("application/json", { data }))
        local without = '{"choices":[{"message":{"content":"' .. string.rep("x", 1200) .. fake .. '"}}]}'
        assert.same({}, read("application/json", { without }))
    end)

    it("keeps no more than the limit of a large answer while it passes", function()
        local reader = usage.new("application/json", LIMITS)
        for _ = 1, 8 do reader:feed(string.rep("x", 300)) end
        assert.truthy(reader.kept <= 2 * LIMITS.tail_bytes + 300, reader.kept)
        assert.equal(reader.kept, #table.concat(reader.buffer))
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

    it("reads the Responses API's response.completed event", function()
        local found = read("text/event-stream", {
            'event: response.created\ndata: {"type":"response.created","response":{"model":"gpt-4o","usage":null}}\n\n',
            'event: response.completed\ndata: {"type":"response.completed","response":{"model":"gpt-4o",'
                .. '"usage":{"input_tokens":14,"output_tokens":3,"total_tokens":17}}}\n\n' })
        assert.same({ input_tokens = 14, output_tokens = 3, model = "gpt-4o" }, found)
    end)

    it("logs no tokens for a stream without a usage chunk", function()
        assert.same({ model = "m" }, read("text/event-stream", { 'data: {"model":"m","choices":[]}\n\n' }))
    end)

    it("reads the events after one larger than the limit", function()
        local found = read("text/event-stream", { "data: {" .. string.rep("x", 300),
            '}\n\ndata: {"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n' })
        assert.same({ input_tokens = 1, output_tokens = 1 }, found)
    end)

    it("reads the usage of an event larger than the limit from its tail (a long response.completed)", function()
        local event = 'data: {"type":"response.completed","response":{"output":[{"content":[{"text":"'
            .. string.rep("x", 1000) .. '"}]}],"usage":{"input_tokens":21,"output_tokens":4000},"user":null}}\n\n'
        local chunks = {}
        for i = 1, #event, 64 do chunks[#chunks + 1] = event:sub(i, i + 63) end
        assert.same({ input_tokens = 21, output_tokens = 4000 }, read("text/event-stream", chunks))
    end)

    it("takes no usage a client wrote into the content of a long event", function()
        local fake = '\\"usage\\":{\\"input_tokens\\":1}'
        local event = 'data: {"type":"response.completed","response":{"output":[{"content":[{"text":"'
            .. string.rep("x", 1000) .. fake .. '"}]}]}}\n\n'
        assert.same({}, read("text/event-stream", { event }))
    end)

    it("keeps no more than the limit of a line that does not end", function()
        local reader = usage.new("text/event-stream", LIMITS)
        for _ = 1, 10 do reader:feed("data: " .. string.rep("x", 300)) end
        local bound = math.max(LIMITS.max_event_bytes, 2 * LIMITS.tail_bytes) + 306
        assert.truthy(reader.line_size <= bound, reader.line_size)
        assert.equal(reader.line_size, #table.concat(reader.parts))
    end)

    it("reads each chunk once, and nothing after the end", function()
        local reader = usage.new("text/event-stream", LIMITS)
        reader:feed('data: {"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n')
        assert.same({ input_tokens = 1, output_tokens = 1 }, reader:finish())
        reader:feed('data: {"usage":{"prompt_tokens":99,"completion_tokens":99}}\n\n')
        assert.same({ input_tokens = 1, output_tokens = 1 }, reader:finish())
    end)
end)

-- The bytes the string functions of usage.lua look at or copy, for `feed`s of
-- `chunks`: a reader must do work linear in what passes (a long line fed in
-- nginx's reads was once rescanned whole for every read).
local function work_of(content_type, limits, chunks)
    local counted = { find = string.find, sub = string.sub, gmatch = string.gmatch, concat = table.concat }
    local work = 0
    string.find = function(text, pattern, init, plain)
        local results = { counted.find(text, pattern, init, plain) }
        work = work + (results[2] or #text) - (init or 1) + 1  -- it reads up to the match's end
        return unpack(results)
    end
    string.sub = function(text, i, j)
        local result = counted.sub(text, i, j)
        work = work + #result
        return result
    end
    string.gmatch = function(text, pattern)
        work = work + #text
        return counted.gmatch(text, pattern)
    end
    table.concat = function(list, separator)
        local result = counted.concat(list, separator)
        work = work + #result
        return result
    end
    package.loaded["aigw.usage"] = nil
    local ok, fresh = pcall(require, "aigw.usage")
    string.find, string.sub, string.gmatch, table.concat = counted.find, counted.sub, counted.gmatch, counted.concat
    package.loaded["aigw.usage"] = usage
    assert(ok, fresh)
    local reader = fresh.new(content_type, limits)
    for _, chunk in ipairs(chunks) do reader:feed(chunk) end
    return work, reader:finish()
end

describe("usage: work per byte", function()
    -- The limits the data plane ships (aigw/data_plane/render.py), and nginx's 4 KiB reads.
    local REAL = { max_body_bytes = 1024 * 1024, max_event_bytes = 256 * 1024, tail_bytes = 64 * 1024 }

    local function pieces(text)
        local list = {}
        for i = 1, #text, 4096 do list[#list + 1] = text:sub(i, i + 4095) end
        return list
    end

    -- The usage found in ``text`` read in nginx's pieces, at under 6 units of work per byte.
    local function assert_linear(content_type, text, expected)
        local work, found = work_of(content_type, REAL, pieces(text))
        assert.same(expected, found)
        assert.truthy(work < 6 * #text, work / #text)
    end

    it("is linear for a 2 MiB event line read in 4 KiB pieces", function()
        local event = 'data: {"type":"response.completed","response":{"output":[{"text":"' .. string.rep("y", 2 * 1024 * 1024)
            .. '"}],"usage":{"input_tokens":3,"output_tokens":500000}}}\n\n'
        assert_linear("text/event-stream", event, { input_tokens = 3, output_tokens = 500000 })
    end)

    it("is linear for a stream of many short events", function()
        local events = string.rep('data: {"choices":[{"delta":{"content":"hi"}}]}\n\n', 40000)
            .. 'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":40000}}\n\n'
        assert_linear("text/event-stream", events, { input_tokens = 1, output_tokens = 40000 })
    end)

    it("is linear for a 4 MiB JSON answer", function()
        local answer = '{"data":[' .. string.rep('{"embedding":[0.1]},', 200000) .. '{"embedding":[0.2]}],'
            .. '"usage":{"prompt_tokens":7,"total_tokens":7}}'
        assert_linear("application/json", answer, { input_tokens = 7 })
    end)
end)
