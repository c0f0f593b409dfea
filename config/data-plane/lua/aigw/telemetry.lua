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
local floor, random = math.floor, math.random

local _M = {}

-- Per worker: spans waiting for the next flush, and metric sums by dimensions.
local spans, counters, route_counters = {}, {}, {}

local function random_hex(bytes)
    local parts = {}
    for i = 1, bytes do parts[i] = format("%02x", random(0, 255)) end
    return concat(parts)
end

-- The OTel trace id of the load balancer's X-Amzn-Trace-Id
-- (Root=1-<8 hex epoch>-<24 hex>), or a new one; and whether it is linked.
function _M.trace_id(amzn_trace, now)
    local epoch, unique = (type(amzn_trace) == "string" and amzn_trace or "")
        :match("^Root=1%-(%x%x%x%x%x%x%x%x)%-(%x+)")
    if epoch and #unique == 24 then return (epoch .. unique):lower(), true end
    return format("%08x", floor(now)) .. random_hex(12), false
end

-- The bounded value of each dimension (see the top of this file).
function _M.dimensions(request, settings)
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
    return { provider = provider, model = model, team = team, status = floor(status) }
end

local function attribute(key, value)
    if type(value) == "number" then
        return { key = key, value = { intValue = tostring(floor(value)) } }
    end
    return { key = key, value = { stringValue = text.clean(value) } }
end

-- The counter of the dimensions of `request`, created at zero.
local function counter_of(request, settings)
    local d = _M.dimensions(request, settings)
    local key = concat({ d.provider, d.model, d.team, d.status }, "\31")
    local counter = counters[key]
    if not counter then
        counter = { dimensions = d, requests = 0, input = 0, output = 0, unavailable = 0, alerts = 0,
                    cache_unavailable = 0, guardrail_input = 0, guardrail_output = 0, guardrail_unavailable = 0 }
        counters[key] = counter
    end
    return counter
end

-- Counts a request on a named route (only configured names reach here).
local function count_routed(request, settings)
    local d = _M.dimensions(request, settings)
    local key = request.routing .. "\31" .. d.provider .. "\31" .. d.status
    local counter = route_counters[key]
    if not counter then
        counter = { route = request.routing, provider = d.provider, status = d.status, requests = 0 }
        route_counters[key] = counter
    end
    counter.requests = counter.requests + 1
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
    local trace, linked = _M.trace_id(request.amzn_trace, request.ended)
    local attributes = {
        attribute("http.route", request.route), attribute("http.response.status_code", request.status),
        attribute("gen_ai.system", request.provider or ""), attribute("gen_ai.request.model", request.model or ""),
        attribute("aigw.client_id", request.client_id or ""), attribute("aigw.team", request.team or ""),
        attribute("aigw.rule", request.rule or ""), attribute("aigw.route", request.routing or ""),
        attribute("aigw.guardrail", request.guardrail or ""),
    }
    if request.input_tokens then
        attributes[#attributes + 1] = attribute("gen_ai.usage.input_tokens", request.input_tokens)
    end
    if request.output_tokens then
        attributes[#attributes + 1] = attribute("gen_ai.usage.output_tokens", request.output_tokens)
    end
    if linked then
        attributes[#attributes + 1] = attribute("aws.xray.trace_id", "1-" .. trace:sub(1, 8) .. "-" .. trace:sub(9))
    end
    if #spans < telemetry.max_queued_spans then
        spans[#spans + 1] = {
            traceId = trace, spanId = random_hex(8), name = "POST " .. request.route, kind = 2,
            startTimeUnixNano = format("%d", request.started * 1e9),
            endTimeUnixNano = format("%d", request.ended * 1e9),
            attributes = attributes,
            status = { code = request.status >= 500 and 2 or 1 },
        }
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
            attributes = attributes, timeUnixNano = time, asInt = tostring(floor(value)) } } } }
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
        payloads[#payloads + 1] = { "/v1/traces", cjson.encode({ resourceSpans = { { resource = resource(settings),
            scopeSpans = { { scope = { name = "aigw.dataplane" }, spans = batch } } } } }) }
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
                list[#list + 1] = { attributes = attributes, timeUnixNano = time, asInt = tostring(counter[name]) }
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
            route_points[#route_points + 1] = { timeUnixNano = time, asInt = tostring(counter.requests),
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
