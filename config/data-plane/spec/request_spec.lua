local request = require "aigw.request"
local helper = require "helper"

local settings = helper.settings()

local function refused(status, rule, value, decision)
    assert.is_nil(value)
    assert.same({ status, rule }, { decision.status, decision.rule })
    return decision
end

describe("request.headers", function()
    it("lets a request with single headers pass", function()
        assert.is_true(request.headers({ authorization = "Bearer x", ["content-type"] = "application/json" },
            false, settings))
    end)

    it("refuses a request with more headers than are inspected (431)", function()
        -- Headers past the limit go unseen: a repeated security header could hide there.
        refused(431, "header-count", request.headers({}, true, settings))
    end)

    it("refuses a WebSocket upgrade", function()
        refused(400, "websocket", request.headers({ upgrade = "websocket" }, false, settings))
    end)

    for _, name in ipairs(settings.single_headers) do
        it("refuses a repeated " .. name .. " header", function()
            local decision = refused(400, "header", request.headers({ [name] = { "a", "b" } }, false, settings))
            assert.equal(name .. " may appear once", decision.message)
        end)
    end

    for _, value in ipairs({ "a\1b", "a\0b", "x\127", "a\27[31m" }) do
        it("refuses a control character in a header it forwards", function()
            local decision = refused(400, "header", request.headers({ ["x-portkey-metadata"] = value }, false, settings))
            assert.equal("x-portkey-metadata has a control character", decision.message)
        end)
    end

    it("refuses exactly the control characters but tab, anywhere in a long value", function()
        for byte = 0, 255 do
            local value = string.rep("a", 1000) .. string.char(byte) .. "b"
            local control = (byte < 32 and byte ~= 9) or byte == 127
            local ok = request.headers({ authorization = value }, false, settings)
            assert.equal(not control, ok == true, "byte " .. byte)
        end
    end)

    it("lets a tab pass in a header it forwards", function()
        assert.is_true(request.headers({ ["x-portkey-metadata"] = '{"a":\t"b"}' }, false, settings))
    end)

    it("reads or forwards no header that is not checked for repeats", function()
        for _, name in ipairs({ "authorization", "x-api-key", "x-portkey-provider", "x-portkey-config",
                                "anthropic-beta", "x-portkey-anthropic-beta", "content-type" }) do
            local listed = false
            for _, single in ipairs(settings.single_headers) do listed = listed or single == name end
            assert.is_true(listed, name)
        end
    end)
end)

describe("request.route", function()
    it("offers POST on an inference route, with its providers", function()
        assert.same({ anthropic = true, bedrock = true }, request.route("/v1/messages", "POST", settings))
    end)

    for _, uri in ipairs({ "/v1/files", "/v1/batches", "/v1/chat/completions/abc", "/v1/proxy/x", "/log/stream",
                           "/v1/models", "/", "/v1/chat/completions/" }) do
        it("refuses " .. uri .. " (404, route)", function()
            refused(404, "route", request.route(uri, "POST", settings))
        end)
    end

    for _, method in ipairs({ "GET", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS" }) do
        it("refuses " .. method .. " on an inference route (405, method)", function()
            refused(405, "method", request.route("/v1/chat/completions", method, settings))
        end)
    end
end)

describe("request.media_type", function()
    it("takes JSON on JSON routes, with parameters and in any case", function()
        assert.equal("application/json",
            request.media_type("/v1/chat/completions", " Application/JSON; charset=utf-8", settings))
    end)

    it("takes multipart on upload routes", function()
        assert.equal("multipart/form-data",
            request.media_type("/v1/audio/transcriptions", "multipart/form-data; boundary=x", settings))
    end)

    for _, case in ipairs({
        { "/v1/chat/completions", "text/plain" }, { "/v1/chat/completions", "multipart/form-data; boundary=x" },
        { "/v1/chat/completions", nil }, { "/v1/chat/completions", "application/json-seq" },
        { "/v1/audio/transcriptions", "application/json" }, { "/v1/chat/completions", { "a", "b" } },
    }) do
        it("refuses " .. tostring(case[2]) .. " on " .. case[1] .. " (415)", function()
            refused(415, "content-type", request.media_type(case[1], case[2], settings))
        end)
    end
end)

describe("request.anthropic_betas", function()
    it("lets offered betas pass, alone or listed", function()
        assert.is_true(request.anthropic_betas("prompt-caching-2024-07-31", settings))
        assert.is_true(request.anthropic_betas("prompt-caching-2024-07-31, context-1m-2025-08-07", settings))
        assert.is_true(request.anthropic_betas(nil, settings))
    end)

    for _, beta in ipairs({ "files-api-2025-04-14", "code-execution-2025-05-22", "mcp-client-2025-04-04",
                            "skills-2025-10-02", "prompt-caching-2024-07-31,files-api-2025-04-14" }) do
        it("refuses " .. beta .. " (403, anthropic-beta)", function()
            local decision = refused(403, "anthropic-beta", request.anthropic_betas(beta, settings))
            assert.truthy(decision.message:find("offered: computer-use-2024-10-22", 1, true))
        end)
    end

    it("names a refused beta only as printable text", function()
        local decision = refused(403, "anthropic-beta", request.anthropic_betas("x\255\n", settings))
        assert.truthy(decision.message:find("^anthropic%-beta x%? is not offered"))
    end)
end)

describe("request.provider", function()
    local chat = settings.routes["/v1/chat/completions"]

    it("takes an offered provider, in the data plane's spelling", function()
        assert.equal("openai", request.provider("OpenAI", "/v1/chat/completions", chat, settings))
    end)

    for _, header in ipairs({ "mistral-ai", "vertex-ai", "ollama", "", "openai ", { "openai" } }) do
        it("refuses " .. tostring(header) .. " (403, provider)", function()
            refused(403, "provider", request.provider(header, "/v1/chat/completions", chat, settings))
        end)
    end

    it("refuses a provider not offered on the route", function()
        refused(403, "provider", request.provider("google", "/v1/messages", settings.routes["/v1/messages"], settings))
    end)
end)

describe("request.client_config", function()
    it("takes a routing config made of allowed keys", function()
        local config = request.client_config('{"strategy":{"mode":"fallback","on_status_codes":[429]},'
            .. '"targets":[{"provider":"openai","api_key":"sk-own"},{"provider":"anthropic","weight":1}]}', settings)
        assert.equal("fallback", config.strategy.mode)
    end)

    for _, case in ipairs({
        { '{"targets":[{"provider":"openai","custom_host":"http://127.0.0.1:4318"}]}', "key config.targets[1].custom_host is not allowed" },
        { '{"targets":[{"provider":"azure-openai"}]}', "provider azure-openai is not allowed in a config" },
        { '{"targets":[{"provider":{"x":1}}]}', "provider  is not allowed in a config" },
        { '{"targets":[{"provider":["openai"]}]}', "provider  is not allowed in a config" },
        { '{"hooks":[]}', "key config.hooks is not allowed" },
        { '{"\\u0063ustom_host":"x"}', "key config.custom_host is not allowed" },
        { '{"targets":[{"x\\u00ff":1}]}', "key config.targets[1].x?? is not allowed" },
    }) do
        it("refuses " .. case[1] .. " naming the problem, never an internal", function()
            local decision = refused(403, "config", request.client_config(case[1], settings))
            assert.truthy(decision.message:find("x-portkey-config: " .. case[2], 1, true), decision.message)
            assert.is_nil(decision.message:find("table: 0x", 1, true))
        end)
    end

    for _, case in ipairs({
        { '{"provider":"openai","api_key":"k","retry":{"attempts":1e308}}', "config.retry.attempts must be an integer from 0 to 5" },
        { '{"retry":{"attempts":6}}', "config.retry.attempts must be an integer from 0 to 5" },
        { '{"retry":{"attempts":1.5}}', "config.retry.attempts must be an integer from 0 to 5" },
        { '{"retry":{"attempts":"3"}}', "config.retry.attempts must be an integer from 0 to 5" },
        { '{"strategy":{"mode":"loadbalance"},"targets":[{"provider":"openai","weight":0}]}', "config.targets[1].weight must be a number above 0 to 1000" },
        { '{"targets":[{"provider":"openai","weight":-1}]}', "config.targets[1].weight must be a number above 0 to 1000" },
        { '{"targets":[{"provider":"openai","weight":1e999}]}', "config.targets[1].weight must be a number above 0 to 1000" },
        { '{"strategy":{"mode":"conditional"}}', "config.strategy.mode must be one of single, fallback, loadbalance" },
        { '{"strategy":{"mode":"fallback","on_status_codes":[429,99]}}', "config.strategy.on_status_codes[2] must be an integer from 100 to 599" },
        { '{"targets":[]}', "config.targets must be an array of 1 to 8 items" },
        { '{"targets":[{},{},{},{},{},{},{},{},{}]}', "config.targets must be an array of 1 to 8 items" },
        { '{"targets":{"provider":"openai"}}', "config.targets must be an array of 1 to 8 items" },
        { '{"strategy":"fallback"}', "config.strategy must be an object" },
        { '{"request_timeout":0}', "config.request_timeout must be an integer from 1 to 300000" },
        { '{"override_params":{"n":100}}', "config.override_params.n must be an integer from 1 to 8" },
        { '{"override_params":{"stop":["a","b","c","d","e"]}}', "config.override_params.stop must be a string, or an array of at most 4 strings" },
        { '{"strict_open_ai_compliance":"yes"}', "config.strict_open_ai_compliance must be a boolean" },
        { '{"retry":{"attempts":NaN}}', "must be a JSON object" },
    }) do
        it("refuses the value in " .. case[1], function()
            local decision = refused(403, "config", request.client_config(case[1], settings))
            assert.truthy(decision.message:find(case[2], 1, true), decision.message)
        end)
    end

    it("takes values at their bounds", function()
        assert.is_table(request.client_config('{"strategy":{"mode":"loadbalance"},"retry":{"attempts":5},'
            .. '"targets":[{"provider":"openai","api_key":"k","weight":0.01},{"provider":"anthropic","weight":1000,'
            .. '"override_params":{"temperature":2,"n":8,"stop":["a","b"],"top_p":0}}]}', settings))
    end)

    for _, text in ipairs({ "[]", "null", "x", "", '"{}"', "{" }) do
        it("refuses " .. text .. " as not a JSON object", function()
            refused(403, "config", request.client_config(text, settings))
        end)
    end

    it("takes a config nested 16 levels deep and refuses 17", function()
        local function nested(levels)
            return string.rep('{"strategy":', levels) .. "{}" .. string.rep("}", levels)
        end
        assert.truthy(request.client_config(nested(16), settings))
        local decision = refused(403, "config", request.client_config(nested(17), settings))
        assert.truthy(decision.message:find("nesting deeper than 16", 1, true))
    end)

    describe("upstream calls", function()
        local LEAF = '{"provider":"openai","api_key":"sk-own"}'
        local function fallback(children, retry)
            return '{' .. (retry and ('"retry":{"attempts":' .. retry .. '},') or "")
                .. '"strategy":{"mode":"fallback"},"targets":[' .. table.concat(children, ",") .. "]}"
        end
        local function leaves(n, retry)
            local list = {}
            for i = 1, n do list[i] = retry and ('{"provider":"openai","retry":{"attempts":' .. retry .. '}}') or LEAF end
            return list
        end

        it("takes a config of at most 16 calls: targets times 1 + their retry attempts", function()
            assert.truthy(request.client_config(fallback(leaves(8), 1), settings))         -- 8 x 2
            assert.truthy(request.client_config(fallback(leaves(4, 3)), settings))         -- 4 x 4
            assert.truthy(request.client_config('{"provider":"openai","retry":{"attempts":5}}', settings))
        end)

        it("refuses a config that may make more, counting retries a target inherits", function()
            local decision = refused(403, "config", request.client_config(fallback(leaves(8), 2), settings))
            assert.truthy(decision.message:find("may make 24 upstream calls", 1, true), decision.message)
            refused(403, "config", request.client_config(fallback(leaves(5, 1), 3), settings))  -- 5 x 4
            refused(403, "config", request.client_config(fallback(leaves(4, 4)), settings))     -- 4 x 5
        end)

        it("counts every leaf of nested strategies", function()
            local eight = fallback(leaves(8))
            assert.truthy(request.client_config(fallback({ eight, eight }), settings))           -- 16 leaves
            local decision = refused(403, "config", request.client_config(fallback({ eight, eight, eight }), settings))
            assert.truthy(decision.message:find("may make 24 upstream calls", 1, true), decision.message)
            local wide = fallback({ fallback({ eight, eight }), fallback({ eight, eight }) })         -- 32 leaves
            refused(403, "config", request.client_config(wide, settings))
        end)
    end)

    it("refuses a config nested deeper than it scans", function()
        local text = string.rep('{"override_params":', 20) .. "1" .. string.rep("}", 20)
        local decision = refused(403, "config", request.client_config(text, settings))
        assert.truthy(decision.message:find("nesting deeper than", 1, true))
    end)
end)
