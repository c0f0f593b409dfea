local body = require "aigw.body"
local cjson = require "cjson.safe"
local helper = require "helper"

local settings = helper.settings()
local CHAT = "/v1/chat/completions"

local function check(document, route, provider)
    local text = type(document) == "string" and document or cjson.encode(document)
    return body.check(text, route or CHAT, provider or "openai", settings)
end

local function refused(status, rule, value, decision)
    assert.is_nil(value)
    assert.same({ status, rule }, { decision.status, decision.rule })
    return decision
end

local function messages(extra)
    local document = { model = "gpt-4o", messages = { { role = "user", content = "hi" } } }
    for key, value in pairs(extra or {}) do document[key] = value end
    return document
end

describe("body.check", function()
    it("passes a chat request and returns its model", function()
        assert.same({ model = "gpt-4o", stream = false, choices = 1 }, check(messages()))
    end)

    it("passes a request without a model", function()
        assert.same({ stream = false, choices = 1 }, check({ input = "x" }, "/v1/moderations"))
    end)

    it("returns whether it streams, its stream options and the most output tokens it asks for", function()
        assert.same({ model = "gpt-4o", stream = true, stream_options = { include_usage = false }, max_tokens = 900,
            choices = 4 }, check(messages({ stream = true, stream_options = { include_usage = false }, max_tokens = 10,
                max_completion_tokens = 900, n = 2, best_of = 4 })))
    end)

    for _, count in ipairs({ 0, 1.5, "2", true }) do
        it("reads no answer count from n = " .. tostring(count), function()
            assert.is_nil(check(messages({ n = count })).choices)
        end)
    end

    for _, bound in ipairs({ 0, -1, 1.5, "100", true, 2e9 }) do
        it("reads no bound from an output-token field of " .. tostring(bound), function()
            assert.is_nil(check(messages({ max_tokens = 10, max_output_tokens = bound })).max_tokens)
        end)
    end

    for _, text in ipairs({ "[1,2]", "null", "", "x", '"text"', " [{}]", "{" }) do
        it("refuses a body that is not a JSON object: " .. text, function()
            refused(400, "body", check(text))
        end)
    end

    it("refuses a body that is not text at all", function()
        refused(400, "body", body.check(nil, CHAT, "openai", settings))
    end)
end)

describe("body.check: model", function()
    for _, case in ipairs({
        { "google", "gemini-2.5-pro" }, { "google", "text-embedding-004" }, { "openai", "gpt-4o-2024-08-06" },
        { "openai", "ft:gpt-4o-mini:org:x:abc123" }, { "bedrock", "anthropic.claude-3-haiku-20240307-v1:0" },
        { "bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0" }, { "anthropic", "claude-sonnet-4-5" },
    }) do
        it("passes " .. case[2] .. " for " .. case[1], function()
            assert.equal(case[2], check(messages({ model = case[2] }), CHAT, case[1]).model)
        end)
    end

    for _, case in ipairs({
        { "google", "../../v1beta/tunedModels/x" }, { "google", "gemini-pro?alt=" }, { "google", "gemini#x" },
        { "google", "models/gemini-pro" }, { "google", "gemini-pro\n" }, { "google", "gemini-pro\r\n" },
        { "openai", "gpt-4o\n" }, { "openai", "" }, { "openai", string.rep("a", 201) },
        { "bedrock", "arn:aws:bedrock:us-east-1:123:x" }, { "bedrock", "anthropic.claude%2F..%2Fx" },
        { "bedrock", "anthropic.claude-3\n" }, { "bedrock", "a/b/c" }, { "anthropic", "claude\0" },
    }) do
        it("refuses the model " .. case[2]:gsub("%c", "\\n") .. " for " .. case[1] .. " (400, model)", function()
            refused(400, "model", check(messages({ model = case[2] }), CHAT, case[1]))
        end)
    end

    for _, model in ipairs({ { "gpt-4o" }, { name = "gpt-4o" }, 4, true }) do
        it("refuses a model that is not a string: " .. cjson.encode(model), function()
            local decision = refused(400, "model", check(messages({ model = model })))
            assert.is_nil(decision.message:find("table: 0x", 1, true))
        end)
    end

    it("refuses a null model", function()
        refused(400, "model", check('{"model":null,"messages":[]}'))
    end)
end)

describe("body.check_targets", function()

    it("refuses a stored-object URL of any target's provider, not only the first", function()
        local document = { model = "gemini-2.5-flash", messages = { { role = "user", content = {
            { type = "image_url", image_url = { url = "gs://org-bucket/payroll.pdf" } } } } } }
        local targets = { { provider = "openai", model = true }, { provider = "google", model = true } }
        local checked, decision = body.check_targets(cjson.encode(document), CHAT, targets, settings)
        assert.is_nil(checked)
        assert.same({ 403, "stored-object" }, { decision.status, decision.rule })
    end)

    it("takes an anthropic_version that is a version date, and nothing else", function()
        assert.truthy(check({ model = "claude-haiku-4-5", anthropic_version = "2023-06-01" }, CHAT, "anthropic"))
        for _, version in ipairs({ "\226\152\131", "2023-06-01\r\nx-evil: 1", "2023-06-01\n", "", "latest", 20230601,
                                   true }) do
            refused(400, "body", check({ model = "claude-haiku-4-5", anthropic_version = version }, CHAT, "anthropic"))
        end
    end)
end)

describe("body.check: stored objects", function()
    for _, case in ipairs({
        { CHAT, { messages = { { role = "user", content = { { type = "file", file = { file_id = "file-x" } } } } } }, "file_id" },
        { "/v1/responses", { input = "hi", previous_response_id = "resp_x" }, "previous_response_id" },
        { "/v1/responses", { input = "hi", conversation = "conv_x" }, "conversation" },
        { "/v1/responses", { prompt = { id = "pmpt_x" } }, "prompt" },
        { "/v1/responses", { tools = { { type = "file_search", vector_store_ids = { "vs_x" } } } }, "vector_store_ids" },
        { "/v1/responses", { tools = { { type = "code_interpreter", container = "cntr_x" } } }, "a tool's container" },
        { "/v1/responses", { tools = { { type = "code_interpreter", container = { type = "auto", file_ids = { "f" } } } } }, "file_ids" },
        { "/v1/responses", { tools = { { type = "code_interpreter", container = { type = "auto" } } } }, "a tool's container" },
        { "/v1/messages", { max_tokens = 8, container = "container_x", messages = {} }, "container" },
        { "/v1/messages", { max_tokens = 8, messages = { { role = "user", content = { { type = "container_upload", file_id = "f" } } } } }, "file_id" },
        { "/v1/messages", { max_tokens = 8, messages = {}, anthropic_beta = { "files-api-2025-04-14" } }, "anthropic_beta" },
        { CHAT, { messages = {}, container = { skills = { { type = "custom", skill_id = "s" } } } }, "container" },
        { CHAT, { messages = {}, metadata = { x = { skill_id = "s" } } }, "skill_id" },
        { CHAT, { messages = {}, guardrailConfig = { guardrailIdentifier = "g" } }, "guardrailConfig" },
        { CHAT, { messages = {}, guardrail_config = { id = "g" } }, "guardrail_config" },
        { "/v1/messages", { max_tokens = 8, messages = {}, metadata = { container_id = "c" } }, "container_id" },
        { "/v1/responses", { input = "hi", container = "cntr_x" }, "container" },
        { "/v1/responses", { input = "hi", file_ids = { "f" } }, "file_ids" },
        { "/v1/responses", { input = "hi", vector_store_ids = { "vs" } }, "vector_store_ids" },
    }) do
        it("refuses " .. case[3] .. " on " .. case[1] .. " (403, stored-object)", function()
            local document = case[2]
            document.model = document.model or "gpt-4o"
            local decision = refused(403, "stored-object", body.check(cjson.encode(document), case[1], "openai", settings))
            assert.equal(case[3] .. " refers to data stored at the provider; not offered", decision.message)
        end)
    end

    it("lets a property named container pass inside a tool's parameters schema", function()
        local tools = { { type = "function", ["function"] = { name = "f", parameters = {
            type = "object", properties = { container = { type = "string" } } } } } }
        assert.equal("gpt-4o", check(messages({ tools = tools })).model)
    end)

    it("refuses an s3:// URL for Bedrock, which reads it with the task role", function()
        local document = messages({ model = "anthropic.claude-3-haiku-20240307-v1:0", messages = { { role = "user",
            content = { { type = "file", file = { file_url = " S3://other-team/payroll.pdf" } } } } } })
        local decision = refused(403, "stored-object", check(document, CHAT, "bedrock"))
        assert.equal("a URL of an object stored at bedrock refers to data stored at the provider; not offered",
            decision.message)
    end)

    for _, url in ipairs({ "gs://org-bucket/payroll.pdf", "https://generativelanguage.googleapis.com/v1beta/files/abc",
                           " HTTPS://GenerativeLanguage.GoogleAPIs.com/upload/v1beta/files/x",
                           "https://generativelanguage.googleapis.com:443/v1beta/files/abc",
                           "https://generativelanguage.googleapis.com./v1beta/files/abc",
                           "https://generativelanguage.googleapis.com/v1beta/%66iles/abc",
                           "https://generativelanguage.googleapis.com/v1beta/files%2Fabc" }) do
        it("refuses Google's own stored file " .. url .. " for Google", function()
            local document = messages({ model = "gemini-2.5-flash", messages = { { role = "user", content = {
                { type = "image_url", image_url = { url = url } } } } } })
            refused(403, "stored-object", check(document, CHAT, "google"))
        end)
    end

    it("refuses a string repeating Google's host at its first occurrence (no backtracking)", function()
        local document = messages({ model = "gemini-2.5-flash", messages = { { role = "user",
            content = string.rep("generativelanguage.googleapis.com/", 30000) } } })
        refused(403, "stored-object", check(document, CHAT, "google"))
    end)

    it("lets a public https image pass for Google", function()
        local document = messages({ model = "gemini-2.5-flash", messages = { { role = "user", content = {
            { type = "image_url", image_url = { url = "https://example.com/cat.png" } } } } } })
        assert.equal("gemini-2.5-flash", check(document, CHAT, "google").model)
    end)

    for _, case in ipairs({
        { "/v1/responses", { input = { { type = "item_reference", id = "msg_other_team" } } }, "an item of type item_reference" },
        { CHAT, { messages = { { role = "assistant", audio = { id = "audio_other_team" } } } }, "audio.id" },
        { "/v1/audio/speech", { input = "hi", voice = { id = "voice_org_custom" } }, "voice.id" },
    }) do
        it("refuses " .. case[3] .. " (a stored item, answer or voice)", function()
            local document = case[2]
            document.model = "gpt-4o"
            local decision = refused(403, "stored-object", body.check(cjson.encode(document), case[1], "openai", settings))
            assert.equal(case[3] .. " refers to data stored at the provider; not offered", decision.message)
        end)
    end

    it("lets an audio output setting and a named voice pass", function()
        assert.equal("gpt-4o", check(messages({ audio = { voice = "alloy", format = "mp3" } })).model)
        assert.equal("tts-1", body.check(cjson.encode({ model = "tts-1", input = "hi", voice = "alloy" }),
            "/v1/audio/speech", "openai", settings).model)
    end)

    it("refuses a body with more objects and arrays than it may decode, before decoding it", function()
        local text = '{"model":"gpt-4o","x":[' .. string.rep("[],", settings.max_body_containers) .. "[]]}"
        local decision = refused(413, "body", body.check(text, CHAT, "openai", settings))
        assert.truthy(decision.message:find("objects and arrays", 1, true))
    end)

    for _, number in ipairs({ "NaN", "Infinity", "-Infinity", "0x10" }) do
        it("refuses a body with the number " .. number .. ", which the gateway's JSON.parse refuses", function()
            refused(400, "body", check('{"model":"gpt-4o","temperature":' .. number .. "}"))
        end)
    end

    -- The documented bound: objects 32 levels below the body's top are scanned, deeper ones refused.
    local function nested_body(levels)
        local value = { leaf = "x" }
        for _ = 2, levels do value = { a = value } end
        return messages({ metadata = value })
    end

    it("passes a body nested 32 levels deep and refuses 33", function()
        assert.equal("gpt-4o", check(nested_body(32)).model)
        local decision = refused(403, "stored-object", check(nested_body(33)))
        assert.truthy(decision.message:find("nesting deeper than 32", 1, true))
    end)

    it("refuses a body nested deeper than it scans (not scanned is not allowed)", function()
        local nested = { leaf = "x" }
        for _ = 1, 40 do nested = { a = nested } end
        refused(403, "stored-object", check(messages({ metadata = nested })))
    end)
end)

describe("body.check: tools that call hosts", function()
    for _, case in ipairs({
        { "/v1/responses", { tools = { { type = "mcp", server_label = "x", server_url = "https://evil.example" } } }, "a tool of type mcp" },
        { "/v1/responses", { tools = { { type = "x", server_url = "https://evil.example" } } }, "server_url" },
        { "/v1/messages", { max_tokens = 8, messages = {}, mcp_servers = { { type = "url", url = "https://e" } } }, "mcp_servers" },
    }) do
        it("refuses " .. case[3] .. " (403, remote-tool)", function()
            local document = case[2]
            document.model = "gpt-4o"
            local decision = refused(403, "remote-tool", body.check(cjson.encode(document), case[1], "openai", settings))
            assert.truthy(decision.message:find("^" .. case[3]:gsub("%p", "%%%0")))
        end)
    end
end)
