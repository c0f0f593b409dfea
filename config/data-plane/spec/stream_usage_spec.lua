local stream_usage = require "aigw.stream_usage"
local cjson = require "cjson.safe"

describe("stream_usage.ask", function()
    it("appends include_usage, keeping the client's other stream_options", function()
        local body = '{"model":"gpt-4o","stream":true,"stream_options":{"include_obfuscation":false}}  \n'
        local asked = stream_usage.ask(body, { include_obfuscation = false })
        local prefix = '{"model":"gpt-4o","stream":true,"stream_options":{"include_obfuscation":false},'
        assert.equal(prefix, asked:sub(1, #prefix))
        assert.same({ include_obfuscation = false, include_usage = true },
            cjson.decode(asked:sub(#prefix + 1):match('^"stream_options":(.*)}$')))
    end)

    it("asks in a body without stream_options, and in an object with nothing else", function()
        assert.equal('{"stream":true,"stream_options":{"include_usage":true}}',
            stream_usage.ask('{"stream":true}', nil))
        assert.equal('{"stream_options":{"include_usage":true}}', stream_usage.ask(' { } ', nil))
    end)

    it("replaces an explicit false", function()
        local asked = stream_usage.ask('{"stream":true,"stream_options":{"include_usage":false}}',
            { include_usage = false })
        -- The gateway's JSON.parse keeps the last of two equal keys, as cjson does.
        assert.same({ include_usage = true }, cjson.decode(asked).stream_options)
    end)

    it("knows whether the client asked itself", function()
        assert.is_true(stream_usage.asked({ include_usage = true }))
        assert.is_false(stream_usage.asked({ include_usage = "true" }))
        assert.is_false(stream_usage.asked(nil))
    end)
end)

describe("stream_usage.filter", function()
    local chunk = 'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
    local usage = 'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
    local done = "data: [DONE]\n\n"

    it("drops the usage chunk and the usage:null of the others", function()
        local state = stream_usage.new_filter()
        local out = stream_usage.filter(state, chunk .. usage .. done, true)
        assert.equal('data: {"id":"c1","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n' .. done, out)
    end)

    it("gives the same stream whichever way it is cut into chunks", function()
        local text = chunk .. chunk .. usage .. done
        local whole = stream_usage.filter(stream_usage.new_filter(), text, true)
        for size = 1, 40 do
            local state, parts = stream_usage.new_filter(), {}
            for i = 1, #text, size do
                parts[#parts + 1] = stream_usage.filter(state, text:sub(i, i + size - 1), i + size > #text)
            end
            assert.equal(whole, table.concat(parts))
        end
    end)

    it("passes on every line as soon as it is complete", function()
        local state = stream_usage.new_filter()
        assert.equal("data: [DONE]\n", stream_usage.filter(state, "data: [DONE]\ndata: {\"par", false))
        assert.equal('data: {"part":1}\n', stream_usage.filter(state, 't":1}\n', false))
    end)

    it("leaves usage keys a model wrote inside its content alone (quotes there are escaped)", function()
        local content = 'data: {"choices":[{"delta":{"content":"{\\"usage\\":null,\\"choices\\":[]}"}}]}\n\n'
        assert.equal(content, stream_usage.filter(stream_usage.new_filter(), content, true))
    end)

    it("keeps a chunk with choices that also carries usage", function()
        local last = 'data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3}}\n\n'
        assert.equal(last, stream_usage.filter(stream_usage.new_filter(), last, true))
    end)

    it("holds no more than a bounded part of a long line", function()
        local state = stream_usage.new_filter()
        local big = "data: {" .. string.rep("x", 70000)
        assert.equal(big, stream_usage.filter(state, big, false))
        assert.equal('"usage":null}\n', stream_usage.filter(state, '"usage":null}\n', false))
    end)
end)
