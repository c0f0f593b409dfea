local settings_loader = require "aigw.settings"
local helper = require "helper"
local cjson = require "cjson.safe"

local function shipped_text()
    local file = assert(io.open(os.getenv("AIGW_SPEC_SETTINGS"), "rb"))
    local data = file:read("*a")
    file:close()
    return data
end

describe("settings", function()
    local function with_routing(default)
        local document = cjson.decode(shipped_text())
        document.routing = { default = default, configs = { r = { strategy = "single", skip_after_failures = 3,
            skip_seconds = 30, targets = { { provider = "openai", model = cjson.null } },
            config = { strategy = { mode = "single" }, targets = { { provider = "openai" } } } } } }
        return cjson.encode(document)
    end

    it("reads a route target without a model as nil", function()
        local parsed = assert(settings_loader.parse(with_routing("r"), nil))
        assert.is_nil(parsed.routing.configs.r.targets[1].model)
        assert.equal("r", parsed.routing.help)
    end)

    it("refuses a default route that is not one of the routes, and routes without a default", function()
        local parsed, err = settings_loader.parse(with_routing("nope"), nil)
        assert.is_nil(parsed)
        assert.equal("settings.json: the default route is not one of the routes", err)
        parsed, err = settings_loader.parse(with_routing(cjson.null), nil)
        assert.is_nil(parsed)
        assert.equal("settings.json: routes without a default, or a default without routes", err)
    end)

    it("joins the teams of the runtime settings", function()
        local settings = helper.settings('{"teams":{"4mq0client0a":"search","7x1client0b":"billing-eu"}}')
        assert.same({ ["4mq0client0a"] = "search", ["7x1client0b"] = "billing-eu" }, settings.teams)
    end)

    it("has no teams without runtime settings", function()
        assert.same({}, helper.settings(nil).teams)
        assert.same({}, helper.settings("").teams)
    end)

    it("builds the refusal texts from the settings, sorted", function()
        local settings = helper.settings()
        assert.equal("anthropic, azure-openai, bedrock, google, openai",
            settings.route_help["/v1/chat/completions"])
        assert.equal("openai", settings.route_help["/v1/moderations"])
        assert.truthy(settings.route_list:find("^/v1/audio/speech, /v1/audio/transcriptions"))
        assert.truthy(settings.config_help:find("^allowed keys: api_key, attempts, cache"))
    end)

    for _, case in ipairs({
        { runtime = "[1,2]", problem = "the runtime settings are not a JSON object" },
        { runtime = "not json", problem = "the runtime settings are not a JSON object" },
        { runtime = '{"teams":["abc"]}', problem = "teams is not an object" },
        { runtime = '{"teams":"x"}', problem = "teams is not an object" },
        { runtime = '{"teams":{"${aws_cognito_user_pool_client.x.id}":"a"}}', problem = "teams: a key is not a client id" },
        { runtime = '{"teams":{"abc def":"a"}}', problem = "teams: a key is not a client id" },
        { runtime = '{"teams":{"abc":"Team A"}}', problem = "teams: the team of abc is not a team name" },
        { runtime = '{"teams":{"abc":7}}', problem = "teams: the team of abc is not a team name" },
        { runtime = '{"teams":{"abc":"ops"}}', problem = "teams: abc belongs to ops, which settings.json does not know" },
        { runtime = '{"teams":{},"store":{"host":"h","port":6379}}',
          problem = "the runtime settings name a store settings.json does not use" },
    }) do
        it("refuses runtime settings " .. case.runtime .. " (the start fails closed)", function()
            local settings, err = settings_loader.parse(shipped_text(), case.runtime)
            assert.is_true(settings == nil)
            assert.equal(case.problem, err)
        end)
    end

    local function with_store()
        local document = cjson.decode(shipped_text())
        document.store = { tls = true, connect_timeout_ms = 100 }
        return cjson.encode(document)
    end

    it("joins the store's address to its options", function()
        local settings = assert(settings_loader.parse(with_store(),
            '{"teams":{},"store":{"host":"aigw-x.serverless.use1.cache.amazonaws.com","port":"6379"}}'))
        assert.same({ host = "aigw-x.serverless.use1.cache.amazonaws.com", port = 6379, tls = true,
            connect_timeout_ms = 100 }, settings.store)
    end)

    for _, case in ipairs({
        { runtime = '{"teams":{}}', problem = "the runtime settings lack the store's address" },
        { runtime = '{"teams":{},"store":{"host":"a b","port":6379}}', problem = "the store's host is not a host name" },
        { runtime = '{"teams":{},"store":{"host":"${aws_x.y.endpoint}","port":6379}}',
          problem = "the store's host is not a host name" },
        { runtime = '{"teams":{},"store":{"host":"h","port":"${aws_x.y.port}"}}', problem = "the store's port is not a port" },
        { runtime = '{"teams":{},"store":{"host":"h","port":70000}}', problem = "the store's port is not a port" },
    }) do
        it("refuses a store address " .. case.runtime .. " (the start fails closed)", function()
            local settings, err = settings_loader.parse(with_store(), case.runtime)
            assert.is_true(settings == nil)
            assert.equal(case.problem, err)
        end)
    end

    local function with_guardrail()
        local document = cjson.decode(shipped_text())
        document.guardrail = { host = "bedrock-runtime.us-east-1.amazonaws.com", timeout_ms = 5000 }
        return cjson.encode(document)
    end

    it("joins the guardrail's id and published version to its options", function()
        local settings = assert(settings_loader.parse(with_guardrail(),
            '{"teams":{},"guardrail":{"id":"abc123def456","version":"7"}}'))
        assert.same({ id = "abc123def456", version = "7", host = "bedrock-runtime.us-east-1.amazonaws.com",
            timeout_ms = 5000 }, settings.guardrail)
    end)

    for _, case in ipairs({
        { runtime = '{"teams":{}}', problem = "the runtime settings lack the guardrail's id and version" },
        { runtime = '{"teams":{},"guardrail":{"id":"${aws_bedrock_guardrail.g.guardrail_id}","version":"1"}}',
          problem = "the guardrail's id is not a guardrail id" },
        { runtime = '{"teams":{},"guardrail":{"id":"abc/../x","version":"1"}}',
          problem = "the guardrail's id is not a guardrail id" },
        { runtime = '{"teams":{},"guardrail":{"id":"abc","version":"DRAFT"}}',
          problem = "the guardrail's version is not a published version number" },
        { runtime = '{"teams":{},"guardrail":{"id":"' .. string.rep("a", 65) .. '","version":"1"}}',
          problem = "the guardrail's id is not a guardrail id" },
        { runtime = '{"teams":{},"guardrail":{"id":"abc","version":"123456789"}}',
          problem = "the guardrail's version is not a published version number" },
        { runtime = '{"teams":{},"guardrail":{"id":"abc","version":1}}',
          problem = "the guardrail's version is not a published version number" },
    }) do
        it("refuses a guardrail " .. case.runtime .. " (the start fails closed)", function()
            local settings, err = settings_loader.parse(with_guardrail(), case.runtime)
            assert.is_true(settings == nil)
            assert.equal(case.problem, err)
        end)
    end

    it("refuses a guardrail the bundle does not use", function()
        local settings, err = settings_loader.parse(shipped_text(), '{"teams":{},"guardrail":{"id":"a","version":"1"}}')
        assert.is_true(settings == nil)
        assert.equal("the runtime settings name a guardrail settings.json does not use", err)
    end)

    it("refuses settings that miss a table the rules read", function()
        local document = cjson.decode(shipped_text())
        document.routes = nil
        local settings, err = settings_loader.parse(cjson.encode(document), nil)
        assert.is_true(settings == nil)
        assert.equal("settings.json has no routes", err)
    end)

    it("refuses a settings file that is not JSON", function()
        assert.same({ nil, "settings.json is not a JSON object" }, { settings_loader.parse("x", nil) })
    end)

    it("names the file it cannot read", function()
        local settings, err = settings_loader.load("/nonexistent/settings.json", nil)
        assert.is_true(settings == nil)
        assert.truthy(err:find("cannot read /nonexistent/settings.json", 1, true))
    end)
end)
