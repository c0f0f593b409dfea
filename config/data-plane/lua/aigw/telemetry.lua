-- Telemetry of each request: one OTLP span linked to the load balancer's
-- trace, and request and token counts per provider, model, team and status,
-- queued per worker and sent to the collector (OTLP/HTTP JSON) by a timer.
--
-- Metric dimensions become CloudWatch custom metrics, each billed monthly:
-- no client may choose their values. Each is one of a bounded set:
-- provider: an offered provider, "config" (the client's own routing config)
-- or "none"; model: a model named in the settings, else "other" ("none" when
-- the request named none); team: a configured team, "unmapped" (a client
-- without a team) or "none"; status: an HTTP status. Requests on a named
-- route ([routing.<name>]) are counted once more, per route (a configured
-- name), provider (the target that served, else "none") and status.
local cjson = require "cjson.safe"
local text = require "aigw.text"

local type, pairs, next, tostring, format, concat = type, pairs, next, tostring, string.format, table.concat
local find, sub = string.find, string.sub
local floor, random, min = math.floor, math.random, math.min

-- An OTLP integer as decimal text: tostring would write 1e+14 past 10^14, which no collector
-- reads as an integer (the whole batch would be refused). Capped at 2^53, where a double's integers end.
local MAX_INT = 2 ^ 53
local function int_text(value)
    return format("%d", min(floor(value), MAX_INT))
end

local _M = {}

-- Per worker: spans waiting for the next flush (their JSON text), and metric sums by dimensions.
local spans, counters, route_counters = {}, {}, {}

-- 8 and 12 random bytes in hex (a span id, the random part of a trace id): 32 bits per call.
local function random_hex8()
    return format("%08x%08x", random(0, 0xffffffff), random(0, 0xffffffff))
end

local function random_hex12()
    return format("%08x%08x%08x", random(0, 0xffffffff), random(0, 0xffffffff), random(0, 0xffffffff))
end

-- The OTel trace id of the load balancer's X-Amzn-Trace-Id
-- (Root=1-<8 hex epoch>-<24 hex>), or a new one; and whether it is linked.
function _M.trace_id(amzn_trace, now)
    local epoch, unique = (type(amzn_trace) == "string" and amzn_trace or "")
        :match("^Root=1%-(%x%x%x%x%x%x%x%x)%-(%x+)")
    if epoch and #unique == 24 then return (epoch .. unique):lower(), true end
    return format("%08x", floor(now)) .. random_hex12(), false
end

-- The bounded value of each dimension (see the top of this file): provider, model, team, status.
local function dimension_values(request, settings)
    local provider = request.provider
    if not (provider and settings.providers[provider]) then
        provider = request.client_config and "config" or "none"
    end
    local model = request.model
    if type(model) ~= "string" or model == "" then
        model = "none"
    elseif not settings.telemetry.metric_models[model] then
        model = "other"
    end
    local team = "none"
    if request.team then
        team = request.team
    elseif request.client_id then
        team = "unmapped"
    end
    local status = request.status
    if type(status) ~= "number" or status < 100 or status > 599 then status = 0 end
    return provider, model, team, floor(status)
end

function _M.dimensions(request, settings)
    local provider, model, team, status = dimension_values(request, settings)
    return { provider = provider, model = model, team = team, status = status }
end

local function attribute(key, value)
    if type(value) == "number" then
        return { key = key, value = { intValue = int_text(value) } }
    end
    return { key = key, value = { stringValue = text.clean(value) } }
end

-- The counter of the dimensions of `request`, created at zero.
local function counter_of(request, settings)
    local provider, model, team, status = dimension_values(request, settings)
    local key = provider .. "\31" .. model .. "\31" .. team .. "\31" .. status
    local counter = counters[key]
    if not counter then
        local d = { provider = provider, model = model, team = team, status = status }
        counter = { dimensions = d, requests = 0, input = 0, output = 0, unavailable = 0, alerts = 0,
                    cache_unavailable = 0, guardrail_input = 0, guardrail_output = 0, guardrail_unavailable = 0 }
        counters[key] = counter
    end
    return counter
end

-- Counts a request on a named route (only configured names reach here).
local function count_routed(request, settings)
    local provider, _, _, status = dimension_values(request, settings)
    local key = request.routing .. "\31" .. provider .. "\31" .. status
    local counter = route_counters[key]
    if not counter then
        counter = { route = request.routing, provider = provider, status = status, requests = 0 }
        route_counters[key] = counter
    end
    counter.requests = counter.requests + 1
end

-- A span is queued as its OTLP/HTTP JSON text (what drain sends), written
-- here rather than built as tables for cjson: one string per request. Every
-- string goes through json_string; a span's strings are printable ASCII
-- (text.clean) but for the route, a configured name.
local JSON_PLAIN = '[%c"\\\128-\255]'  -- what a JSON string must escape (and bytes past ASCII, for cjson)

local function json_string(value)
    if not find(value, JSON_PLAIN) then return '"' .. value .. '"' end
    return cjson.encode(value)
end

-- attribute() as JSON text.
local function attribute_json(key, value)
    if type(value) == "number" then
        return '{"key":"' .. key .. '","value":{"intValue":"' .. int_text(value) .. '"}}'
    end
    return '{"key":"' .. key .. '","value":{"stringValue":' .. json_string(text.clean(value)) .. '}}'
end

local function span_json(request)
    local trace, linked = _M.trace_id(request.amzn_trace, request.ended)
    local attributes = attribute_json("http.route", request.route) .. ","
        .. attribute_json("http.response.status_code", request.status) .. ","
        .. attribute_json("gen_ai.system", request.provider or "") .. ","
        .. attribute_json("gen_ai.request.model", request.model or "") .. ","
        .. attribute_json("aigw.client_id", request.client_id or "") .. ","
        .. attribute_json("aigw.team", request.team or "") .. ","
        .. attribute_json("aigw.rule", request.rule or "") .. ","
        .. attribute_json("aigw.route", request.routing or "") .. ","
        .. attribute_json("aigw.guardrail", request.guardrail or "")
    if request.input_tokens then
        attributes = attributes .. "," .. attribute_json("gen_ai.usage.input_tokens", request.input_tokens)
    end
    if request.output_tokens then
        attributes = attributes .. "," .. attribute_json("gen_ai.usage.output_tokens", request.output_tokens)
    end
    if linked then
        attributes = attributes .. "," .. attribute_json("aws.xray.trace_id",
            "1-" .. sub(trace, 1, 8) .. "-" .. sub(trace, 9))
    end
    return '{"traceId":"' .. trace .. '","spanId":"' .. random_hex8() .. '","name":'
        .. json_string("POST " .. request.route) .. ',"kind":2,"startTimeUnixNano":"'
        .. format("%d", request.started * 1e9) .. '","endTimeUnixNano":"' .. format("%d", request.ended * 1e9)
        .. '","attributes":[' .. attributes .. '],"status":{"code":' .. (request.status >= 500 and 2 or 1) .. "}}"
end

-- What the guardrail did (ctx.guardrail) -> the counter it adds to.
local GUARDRAIL_COUNTERS = { ["blocked-input"] = "guardrail_input", ["blocked-output"] = "guardrail_output",
                       unavailable = "guardrail_unavailable" }

-- Queues the span and counts of one finished request:
-- request = { route, status, provider, model, client_id, team, rule, client_config,
-- routing (the named route), input_tokens, output_tokens, limits_unavailable, cache_unavailable, guardrail
-- (what the guardrail did: passed, blocked-input, blocked-output, anonymized-*, unavailable), amzn_trace,
-- started, ended }.
function _M.record(request, settings)
    local telemetry = settings.telemetry
    if #spans < telemetry.max_queued_spans then
        spans[#spans + 1] = span_json(request)
    end
    local counter = counter_of(request, settings)
    counter.requests = counter.requests + 1
    counter.input = counter.input + (request.input_tokens or 0)
    counter.output = counter.output + (request.output_tokens or 0)
    if request.limits_unavailable then counter.unavailable = counter.unavailable + 1 end
    if request.cache_unavailable then counter.cache_unavailable = counter.cache_unavailable + 1 end
    local guarded = GUARDRAIL_COUNTERS[request.guardrail]
    if guarded then counter[guarded] = counter[guarded] + 1 end
    if request.routing then count_routed(request, settings) end
end

-- Counts a team's budget passing its alert threshold (settled after the request's log phase).
function _M.budget_alert(team, settings)
    local counter = counter_of({ team = team }, settings)
    counter.alerts = counter.alerts + 1
end

local function resource(settings)
    return { attributes = { attribute("service.name", settings.service_name),
                            attribute("deployment.environment", settings.environment) } }
end

-- The task's gauges of what it has in flight (one worker reports them).
function _M.in_flight_payload(settings, now, requests, streams)
    local names = settings.telemetry.in_flight
    local time = format("%d", now * 1e9)
    local attributes = { attribute(names.dimension, settings.environment) }
    local function gauge(name, value)
        return { name = name, unit = "1", gauge = { dataPoints = { {
            attributes = attributes, timeUnixNano = time, asInt = int_text(value) } } } }
    end
    return { "/v1/metrics", cjson.encode({ resourceMetrics = { { resource = resource(settings),
        scopeMetrics = { { scope = { name = "aigw.dataplane" },
            metrics = { gauge(names.requests, requests), gauge(names.streams, streams) } } } } } }) }
end

-- Takes what is queued and returns the OTLP payloads to send:
-- { { path, body }, ... } (empty when nothing is queued).
function _M.drain(settings, now)
    local payloads = {}
    if #spans > 0 then
        local batch = spans
        spans = {}
        payloads[#payloads + 1] = { "/v1/traces", '{"resourceSpans":[{"resource":' .. cjson.encode(resource(settings))
            .. ',"scopeSpans":[{"scope":{"name":"aigw.dataplane"},"spans":[' .. concat(batch, ",") .. "]}]}]}" }
    end
    if next(counters) or next(route_counters) then
        local batch, routed = counters, route_counters
        counters, route_counters = {}, {}
        local time = format("%d", now * 1e9)
        local points = { requests = {}, input = {}, output = {}, unavailable = {}, alerts = {}, cache_unavailable = {},
                         guardrail_input = {}, guardrail_output = {}, guardrail_unavailable = {} }
        for _, counter in pairs(batch) do
            local d = counter.dimensions
            local attributes = { attribute("provider", d.provider), attribute("model", d.model),
                                 attribute("team", d.team), attribute("status", tostring(d.status)) }
            for name, list in pairs(points) do
                list[#list + 1] = { attributes = attributes, timeUnixNano = time, asInt = int_text(counter[name]) }
            end
        end
        local metrics = {}
        for name, metric in pairs(settings.telemetry.metric_names) do
            local tokens = name == "input" or name == "output"
            if next(points[name]) then
                metrics[#metrics + 1] = { name = metric, unit = tokens and "{token}" or "1",
                    sum = { dataPoints = points[name], aggregationTemporality = 1, isMonotonic = true } }
            end
        end
        local route_points = {}
        for _, counter in pairs(routed) do
            route_points[#route_points + 1] = { timeUnixNano = time, asInt = int_text(counter.requests),
                attributes = { attribute("route", counter.route), attribute("provider", counter.provider),
                               attribute("status", tostring(counter.status)) } }
        end
        if route_points[1] then
            metrics[#metrics + 1] = { name = settings.telemetry.route_metric_name, unit = "1",
                sum = { dataPoints = route_points, aggregationTemporality = 1, isMonotonic = true } }
        end
        payloads[#payloads + 1] = { "/v1/metrics", cjson.encode({ resourceMetrics = { { resource = resource(settings),
            scopeMetrics = { { scope = { name = "aigw.dataplane" }, metrics = metrics } } } } }) }
    end
    return payloads
end

return _M
