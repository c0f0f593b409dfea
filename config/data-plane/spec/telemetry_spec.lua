local telemetry = require "aigw.telemetry"
local cjson = require "cjson.safe"
local helper = require "helper"

local settings = helper.settings('{"teams":{"4mq0client0a":"search"}}')

local function request(fields)
    local base = { route = "/v1/chat/completions", status = 200, started = 1000.25, ended = 1001.5 }
    for key, value in pairs(fields or {}) do base[key] = value end
    return base
end

describe("telemetry.dimensions", function()
    it("keeps an offered provider, a known model and the team", function()
        assert.same({ provider = "openai", model = "gpt-4o", team = "search", status = 200 },
            telemetry.dimensions(request({ provider = "openai", model = "gpt-4o", client_id = "4mq0client0a",
                team = "search" }), settings))
    end)

    it("counts every model the settings do not name as other: no client mints a metric", function()
        for _, model in ipairs({ "gpt-4o-2024-08-06", "my-fine-tune", string.rep("x", 200), "gpt-4o\n" }) do
            assert.equal("other", telemetry.dimensions(request({ provider = "openai", model = model }), settings).model)
        end
    end)

    it("names what a request did not have", function()
        assert.same({ provider = "none", model = "none", team = "none", status = 404 },
            telemetry.dimensions(request({ status = 404 }), settings))
    end)

    it("counts a client without a team as unmapped and a client config as config", function()
        local d = telemetry.dimensions(request({ client_id = "9zz9other", client_config = true }), settings)
        assert.same({ "config", "unmapped" }, { d.provider, d.team })
    end)

    it("takes no provider a request names that is not offered", function()
        assert.equal("none", telemetry.dimensions(request({ provider = "mistral-ai" }), settings).provider)
    end)
end)

describe("telemetry.trace_id", function()
    it("is the load balancer's trace id", function()
        assert.same({ "5f2a6b3c0123456789abcdef01234567", true },
            { telemetry.trace_id("Root=1-5f2a6b3c-0123456789abcdef01234567;Sampled=1", 0) })
    end)

    it("is a new one when the header is not a trace id", function()
        for _, header in ipairs({ "Root=1-xyz", "x", false, "Root=1-5f2a6b3c-0123",
                                  "Root=1-5f2a6b3c-" .. string.rep("a", 23), "Root=1-5f2a6b3c-" .. string.rep("a", 25),
                                  "Root=1-5f2a6b3-" .. string.rep("a", 24) }) do
            local id, linked = telemetry.trace_id(header, 1700000000)
            assert.is_false(linked)
            assert.truthy(id:find("^6553f100%x+$") and #id == 32)
        end
    end)
end)

describe("telemetry.record and drain", function()
    it("sends one span per request and the sums per dimension", function()
        telemetry.drain(settings, 0)  -- start empty
        telemetry.record(request({ provider = "openai", model = "gpt-4o", input_tokens = 3, output_tokens = 4,
            client_id = "4mq0client0a", team = "search" }), settings)
        telemetry.record(request({ provider = "openai", model = "gpt-4o", input_tokens = 5, output_tokens = 6,
            client_id = "4mq0client0a", team = "search" }), settings)
        local payloads = telemetry.drain(settings, 1002)
        assert.same({ "/v1/traces", "/v1/metrics" }, { payloads[1][1], payloads[2][1] })
        local spans = cjson.decode(payloads[1][2]).resourceSpans[1].scopeSpans[1].spans
        assert.equal(2, #spans)
        assert.equal("POST /v1/chat/completions", spans[1].name)
        local metrics = cjson.decode(payloads[2][2]).resourceMetrics[1].scopeMetrics[1].metrics
        local sums = {}
        for _, metric in ipairs(metrics) do
            assert.equal(1, #metric.sum.dataPoints)
            sums[metric.name] = metric.sum.dataPoints[1].asInt
        end
        assert.same({ Requests = "2", InputTokens = "8", OutputTokens = "10", LimitsUnavailable = "0",
            BudgetAlerts = "0", CacheUnavailable = "0" }, sums)
        assert.same({}, telemetry.drain(settings, 1003))
    end)

    it("writes every sum as a decimal integer, however large (never 1e+14, which no collector reads)", function()
        telemetry.drain(settings, 0)
        for _ = 1, 120 do
            telemetry.record(request({ provider = "openai", model = "gpt-4o", input_tokens = 1e12,
                output_tokens = 1e12 }), settings)
        end
        local payloads = telemetry.drain(settings, 1004)
        local found = 0
        for _, payload in ipairs(payloads) do
            for value in payload[2]:gmatch('"asInt":"([^"]*)"') do
                assert.truthy(value:match("^%d+$"), value)
                found = found + 1
            end
        end
        assert.truthy(found > 0)
        assert.truthy(payloads[2][2]:find('"asInt":"120000000000000"', 1, true))
    end)

    local function sums_of(payload)
        local sums = {}
        for _, metric in ipairs(cjson.decode(payload).resourceMetrics[1].scopeMetrics[1].metrics) do
            for _, point in ipairs(metric.sum.dataPoints) do
                local team
                for _, attribute in ipairs(point.attributes) do
                    if attribute.key == "team" then team = attribute.value.stringValue end
                end
                sums[metric.name .. "/" .. team] = point.asInt
            end
        end
        return sums
    end

    it("counts the requests let through while the limits' store was unavailable", function()
        telemetry.drain(settings, 0)
        telemetry.record(request({ provider = "openai", client_id = "4mq0client0a", team = "search",
            limits_unavailable = true }), settings)
        telemetry.record(request({ provider = "openai", client_id = "4mq0client0a", team = "search" }), settings)
        local sums = sums_of(telemetry.drain(settings, 1002)[2][2])
        assert.equal("2", sums["Requests/search"])
        assert.equal("1", sums["LimitsUnavailable/search"])
    end)

    it("counts the requests answered uncached because the cache's store was unavailable", function()
        telemetry.drain(settings, 0)
        telemetry.record(request({ provider = "openai", client_id = "4mq0client0a", team = "search",
            cache_unavailable = true }), settings)
        telemetry.record(request({ provider = "openai", client_id = "4mq0client0a", team = "search" }), settings)
        local sums = sums_of(telemetry.drain(settings, 1002)[2][2])
        assert.equal("2", sums["Requests/search"])
        assert.equal("1", sums["CacheUnavailable/search"])
    end)

    it("counts a budget alert under its team", function()
        telemetry.drain(settings, 0)
        telemetry.budget_alert("search", settings)
        local payloads = telemetry.drain(settings, 1002)
        assert.equal(1, #payloads)  -- no span: it is not a request
        local sums = sums_of(payloads[1][2])
        assert.equal("1", sums["BudgetAlerts/search"])
        assert.equal("0", sums["Requests/search"])
    end)

    it("counts requests on a named route once more, per route, serving provider and status", function()
        telemetry.drain(settings, 0)
        telemetry.record(request({ provider = "openai", routing = "chat", client_id = "4mq0client0a",
            team = "search" }), settings)
        telemetry.record(request({ provider = "openai", routing = "chat", client_id = "4mq0client0a",
            team = "search" }), settings)
        telemetry.record(request({ provider = "anthropic", client_id = "4mq0client0a", team = "search" }), settings)
        local payloads = telemetry.drain(settings, 1002)
        local spans = cjson.decode(payloads[1][2]).resourceSpans[1].scopeSpans[1].spans
        local routes = {}
        for _, span in ipairs(spans) do
            for _, attribute in ipairs(span.attributes) do
                if attribute.key == "aigw.route" then routes[#routes + 1] = attribute.value.stringValue end
            end
        end
        assert.same({ "chat", "chat", "" }, routes)
        local routed
        for _, metric in ipairs(cjson.decode(payloads[2][2]).resourceMetrics[1].scopeMetrics[1].metrics) do
            if metric.name == "RoutedRequests" then routed = metric end
        end
        assert.equal(1, #routed.sum.dataPoints)
        local point = routed.sum.dataPoints[1]
        assert.equal("2", point.asInt)
        local dimensions = {}
        for _, attribute in ipairs(point.attributes) do dimensions[attribute.key] = attribute.value.stringValue end
        assert.same({ route = "chat", provider = "openai", status = "200" }, dimensions)
    end)

    local function routed_points()
        local metrics = cjson.decode(telemetry.drain(settings, 2000)[2][2]).resourceMetrics[1].scopeMetrics[1].metrics
        for _, metric in ipairs(metrics) do
            if metric.name == "RoutedRequests" then return metric.sum.dataPoints end
        end
    end

    local function dimensions_of(point)
        local dimensions = {}
        for _, attribute in ipairs(point.attributes) do dimensions[attribute.key] = attribute.value.stringValue end
        return dimensions
    end

    it("counts a route's statuses apart", function()
        telemetry.drain(settings, 0)
        for _, status in ipairs({ 200, 500 }) do
            telemetry.record(request({ status = status, provider = "openai", routing = "chat" }), settings)
        end
        local statuses = {}
        for _, point in ipairs(routed_points()) do statuses[#statuses + 1] = dimensions_of(point).status end
        table.sort(statuses)
        assert.same({ "200", "500" }, statuses)
    end)

    it("bounds the routed provider dimension", function()
        telemetry.drain(settings, 0)
        telemetry.record(request({ provider = "attacker-chosen", routing = "chat" }), settings)
        local points = routed_points()
        assert.equal(1, #points)
        assert.equal("none", dimensions_of(points[1]).provider)
    end)

    it("writes a span's every field, as JSON whatever its strings hold", function()
        telemetry.drain(settings, 0)
        telemetry.record(request({ status = 503, provider = "openai", model = 5, rule = 'a"b\\c/d', routing = "chat",
            client_id = "4mq0client0a", team = "search", guardrail = "passed", output_tokens = 7,
            amzn_trace = "Root=1-5f2a6b3c-0123456789abcdef01234567" }), settings)
        telemetry.record(request({ model = {}, client_config = true }), settings)
        local spans = cjson.decode(telemetry.drain(settings, 1002)[1][2]).resourceSpans[1].scopeSpans[1].spans
        assert.truthy(spans[1].spanId:find("^%x+$") and #spans[1].spanId == 16)
        spans[1].spanId = nil
        local function string_value(key, value) return { key = key, value = { stringValue = value } } end
        assert.same({ traceId = "5f2a6b3c0123456789abcdef01234567", name = "POST /v1/chat/completions", kind = 2,
            startTimeUnixNano = "1000250000000", endTimeUnixNano = "1001500000000", status = { code = 2 },
            attributes = { string_value("http.route", "/v1/chat/completions"),
                { key = "http.response.status_code", value = { intValue = "503" } },
                string_value("gen_ai.system", "openai"),
                { key = "gen_ai.request.model", value = { intValue = "5" } },
                string_value("aigw.client_id", "4mq0client0a"), string_value("aigw.team", "search"),
                string_value("aigw.rule", 'a"b\\c/d'), string_value("aigw.route", "chat"),
                string_value("aigw.guardrail", "passed"),
                { key = "gen_ai.usage.output_tokens", value = { intValue = "7" } },
                string_value("aws.xray.trace_id", "1-5f2a6b3c-0123456789abcdef01234567") } }, spans[1])
        assert.truthy(spans[2].traceId:find("^%x+$") and #spans[2].traceId == 32)
        assert.same({ code = 1 }, spans[2].status)
        assert.same(string_value("gen_ai.request.model", ""), spans[2].attributes[4])
    end)

    it("writes only printable text into span attributes", function()
        telemetry.record(request({ provider = "openai", model = "gpt\255\n", rule = "model" }), settings)
        local payload = telemetry.drain(settings, 1002)[1][2]
        assert.truthy(payload:find('"stringValue":"gpt??"', 1, true))
    end)
end)
