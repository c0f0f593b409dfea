-- Named routes: which one a request uses, the config the gateway gets (each
-- target's credentials filled in, skipped targets left out), and what counts
-- as a target failing. The harness (tests/test_routing.py) runs the rendered
-- routes through the real gateway.
local cjson = require "cjson.safe"
local routing = require "aigw.routing"

-- A shared dict stand-in (ngx.shared.DICT's get/set/incr/delete, with expiry on a clock we move).
local function fake_dict()
    local dict = { now = 0, values = {}, expires = {} }
    function dict:get(key)
        local expires = self.expires[key]
        if expires and expires <= self.now then
            self.values[key], self.expires[key] = nil, nil
        end
        return self.values[key]
    end
    function dict:set(key, value, exptime)
        self.values[key] = value
        self.expires[key] = exptime and exptime > 0 and self.now + exptime or nil
        return true
    end
    function dict:incr(key, by, init)
        local value = (self:get(key) or init) + by
        self.values[key] = value
        return value
    end
    function dict:delete(key)
        self.values[key], self.expires[key] = nil, nil
    end
    return dict
end

local function fallback()
    return {
        strategy = "fallback",
        skip_after_failures = 2,
        skip_seconds = 30,
        targets = { { provider = "openai", model = "gpt-4o-mini" }, { provider = "bedrock" },
                    { provider = "anthropic" } },
        config = {
            strategy = { mode = "fallback", on_status_codes = { 429, 500 } },
            targets = { { provider = "openai", override_params = { model = "gpt-4o-mini" } },
                        { provider = "bedrock" }, { provider = "anthropic" } },
        },
    }
end

local ROUTING = { default = "chat", configs = { chat = fallback(), spread = fallback() }, help = "chat, spread" }

describe("routing.select", function()
    it("gives the default to a request that names no provider, config or route", function()
        assert.equal("chat", routing.select({}, ROUTING))
        assert.equal("chat", routing.select({ ["x-portkey-config"] = "" }, ROUTING))
    end)

    it("gives the route a request names", function()
        assert.equal("spread", routing.select({ ["x-aigw-route"] = "spread" }, ROUTING))
    end)

    it("leaves a request that names a provider or its own config to those paths", function()
        assert.is_nil(routing.select({ ["x-portkey-provider"] = "openai" }, ROUTING))
        assert.is_nil(routing.select({ ["x-portkey-provider"] = "" }, ROUTING))
        assert.is_nil(routing.select({ ["x-portkey-config"] = "{}" }, ROUTING))
        assert.is_nil(routing.select({}, { configs = {}, help = "" }))
    end)

    it("refuses a route named together with a provider or a config", function()
        for _, other in ipairs({ { ["x-portkey-provider"] = "openai" }, { ["x-portkey-config"] = "{}" } }) do
            other["x-aigw-route"] = "chat"
            local name, refused = routing.select(other, ROUTING)
            assert.is_nil(name)
            assert.same({ 400, "route" }, { refused.status, refused.rule })
        end
    end)

    it("refuses names that are not configured, listing the configured ones", function()
        for _, asked in ipairs({ "nope", "", "Chat", "chat ", "../chat", string.rep("a", 33), "__index" }) do
            local name, refused = routing.select({ ["x-aigw-route"] = asked }, ROUTING)
            assert.is_nil(name)
            assert.equal(400, refused.status)
            assert.matches("configured: chat, spread", refused.message, 1, true)
        end
    end)

    it("refuses a route name longer than 32 characters even if configured", function()
        local long = string.rep("a", 33)
        local _, refused = routing.select({ ["x-aigw-route"] = long },
            { default = long, configs = { [long] = {} }, help = long })
        assert.equal(400, refused.status)
    end)

    it("refuses a route where none is configured", function()
        local _, refused = routing.select({ ["x-aigw-route"] = "chat" }, { configs = {}, help = "" })
        assert.matches("no routes are configured", refused.message, 1, true)
    end)
end)

describe("routing.build", function()
    local function key_of(provider) return "k-" .. provider end
    local function credentials_of(provider)
        if provider == "bedrock" then return { aws_access_key_id = "AKIA", aws_region = "us-east-1" } end
        return { api_key = key_of(provider) }
    end

    it("fills each target's credentials into its own copy of the config", function()
        local route = fallback()
        local document = cjson.decode(routing.build(route, { 1, 2, 3 }, credentials_of))
        assert.same({ mode = "fallback", on_status_codes = { 429, 500 } }, document.strategy)
        assert.same({ provider = "openai", api_key = key_of("openai"), override_params = { model = "gpt-4o-mini" } },
            document.targets[1])
        assert.same({ provider = "bedrock", aws_access_key_id = "AKIA", aws_region = "us-east-1" }, document.targets[2])
        assert.same({ provider = "anthropic", api_key = key_of("anthropic") }, document.targets[3])
        assert.is_nil(route.config.targets[1].api_key, "the rendered config stays without credentials")
    end)

    it("gives the gateway only the chosen targets, in order", function()
        local document = cjson.decode(routing.build(fallback(), { 1, 3 }, credentials_of))
        assert.same({ "openai", "anthropic" }, { document.targets[1].provider, document.targets[2].provider })
        assert.equal(2, #document.targets)
    end)

    it("passes a refusal of the credentials on", function()
        local config, refused = routing.build(fallback(), { 2 }, function() return nil, "no role" end)
        assert.is_nil(config)
        assert.equal("no role", refused)
    end)
end)

describe("routing.option", function()
    it("reads the gateway's path of the target that answered", function()
        assert.equal("1", routing.option("config.targets[1]"))
        assert.equal("0.2", routing.option("config.targets[0].targets[2]"))
    end)

    it("reads nothing else", function()
        for _, value in ipairs({ "1", "config", "config.targets[]", "config.targets[1]x", "xconfig.targets[1]",
                                 "config.targets[1234]", "config.targets[-1]", "config.targets[0]" .. string.rep(
                                 ".targets[0]", 4), "" }) do
            assert.is_nil(routing.option(value), value)
        end
        assert.is_nil(routing.option(nil))
        assert.is_nil(routing.option({ "config.targets[0]", "config.targets[1]" }))
    end)
end)

describe("routing.served", function()
    it("maps the gateway's option index back to the route's target", function()
        assert.equal(3, routing.served("1", { 1, 3 }))
        assert.equal(1, routing.served("0", { 1, 3 }))
    end)

    it("ignores an index that is not one of the chosen targets", function()
        for _, option in ipairs({ "2", "-1", "1.0", "0, 1", "", "99999", "0.1" }) do
            assert.is_nil(routing.served(option, { 1, 3 }))
        end
        assert.is_nil(routing.served(nil, { 1, 3 }))
        assert.is_nil(routing.served({ "0", "1" }, { 1, 3 }))
    end)
end)

describe("routing.record and routing.available", function()
    it("skips a target after it failed the configured times in a row, for the configured time", function()
        local dict, route = fake_dict(), fallback()
        routing.record("chat", route, { 1, 2, 3 }, 1, 500, dict)
        assert.same({ 1, 2, 3 }, routing.available("chat", route, dict))
        routing.record("chat", route, { 1, 2, 3 }, 1, 503, dict)
        assert.same({ 2, 3 }, routing.available("chat", route, dict))
        assert.same({ 1, 2, 3 }, routing.available("spread", route, dict), "another route counts its own")
        dict.now = 29
        assert.same({ 2, 3 }, routing.available("chat", route, dict))
        dict.now = 30
        assert.same({ 1, 2, 3 }, routing.available("chat", route, dict))
        routing.record("chat", route, { 1, 2, 3 }, 1, 500, dict)
        assert.same({ 2, 3 }, routing.available("chat", route, dict), "one more failure after the pause skips it again")
    end)

    it("counts the targets a fallback moved past as failed", function()
        local dict, route = fake_dict(), fallback()
        routing.record("chat", route, { 1, 2, 3 }, 3, 200, dict)
        routing.record("chat", route, { 1, 2, 3 }, 3, 200, dict)
        assert.same({ 3 }, routing.available("chat", route, dict))
    end)

    it("lets no 4xx end a failing target's run of failures (only an answer does)", function()
        local dict, route = fake_dict(), fallback()
        route.strategy = "loadbalance"
        routing.record("chat", route, { 1, 2, 3 }, 1, 500, dict)
        routing.record("chat", route, { 1, 2, 3 }, 1, 400, dict)
        routing.record("chat", route, { 1, 2, 3 }, 1, 408, dict)
        routing.record("chat", route, { 1, 2, 3 }, 1, 503, dict)
        assert.same({ 2, 3 }, routing.available("chat", route, dict))
    end)

    it("resets a target's count when it answers", function()
        local dict, route = fake_dict(), fallback()
        routing.record("chat", route, { 1, 2, 3 }, 1, 500, dict)
        routing.record("chat", route, { 1, 2, 3 }, 1, 200, dict)
        routing.record("chat", route, { 1, 2, 3 }, 1, 500, dict)
        assert.same({ 1, 2, 3 }, routing.available("chat", route, dict))
    end)

    it("never counts an answer the request earned (a 4xx other than 429) as the target failing", function()
        local dict, route = fake_dict(), fallback()
        route.strategy = "loadbalance"
        for _, status in ipairs({ 400, 401, 403, 404, 413, 422, 400, 400 }) do
            routing.record("chat", route, { 1, 2, 3 }, 1, status, dict)
        end
        assert.same({ 1, 2, 3 }, routing.available("chat", route, dict))
        routing.record("chat", route, { 1, 2, 3 }, 1, 429, dict)
        routing.record("chat", route, { 1, 2, 3 }, 1, 429, dict)
        assert.same({ 2, 3 }, routing.available("chat", route, dict))
    end)

    it("tries every target when every one is skipped", function()
        local dict, route = fake_dict(), fallback()
        for _ = 1, 2 do routing.record("chat", route, { 1, 2, 3 }, 3, 500, dict) end
        assert.same({ 1, 2, 3 }, routing.available("chat", route, dict))
    end)

    it("never skips the one target of a single route", function()
        local dict, route = fake_dict(), fallback()
        route.strategy = "single"
        for _ = 1, 5 do routing.record("chat", route, { 1 }, 1, 500, dict) end
        assert.same({ 1, 2, 3 }, routing.available("chat", route, dict))
    end)
end)

describe("routing.unoffered and routing.all_in", function()
    it("names the providers a request's route does not offer", function()
        assert.equal("bedrock", routing.unoffered(fallback(), { openai = true, anthropic = true }))
        assert.is_nil(routing.unoffered(fallback(), { openai = true, anthropic = true, bedrock = true }))
    end)

    it("says whether every target is in a set", function()
        assert.is_true(routing.all_in(fallback(), { openai = true, anthropic = true, bedrock = true }))
        assert.is_false(routing.all_in(fallback(), { openai = true }))
        assert.is_false(routing.all_in(fallback(), nil))
    end)

    it("checks the request's model only against targets without a model of their own", function()
        assert.same({ { provider = "openai", model = false }, { provider = "bedrock", model = true },
                      { provider = "anthropic", model = true } }, routing.body_targets(fallback()))
    end)
end)
