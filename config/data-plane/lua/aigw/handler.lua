-- The phase handlers of the data plane (nginx + ngx_lua), in front of the
-- Portkey gateway. The rules live in the modules; this file is where the
-- request meets them, and the only place that ends a request.
--
-- access(): the request passes the stages below in order; the first that
-- refuses ends it. header_filter() / body_filter(): credentials the data
-- plane holds are masked in what goes back; token usage is read as it
-- passes. log(): the span and the metric counts are queued. The rules and
-- why are in docs/gateway-contract.md and docs/data-plane.md.
local cjson = require "cjson.safe"
local body = require "aigw.body"
local cache = require "aigw.cache"
local credentials = require "aigw.credentials"
local guardrail = require "aigw.guardrail"
local identity = require "aigw.identity"
local keys = require "aigw.keys"
local limits = require "aigw.limits"
local redact = require "aigw.redact"
local refusal = require "aigw.refusal"
local request = require "aigw.request"
local routing = require "aigw.routing"
local settings_loader = require "aigw.settings"
local stream_usage = require "aigw.stream_usage"
local telemetry = require "aigw.telemetry"
local text = require "aigw.text"
local usage = require "aigw.usage"

local ipairs, pairs, type, tostring, tonumber, getenv, concat = ipairs, pairs, type, tostring, tonumber, os.getenv,
    table.concat
local ngx, ngx_var, ngx_req = ngx, ngx.var, ngx.req

local _M = {}

-- Loaded once in the master (init), inherited by every worker.
local settings
local org_keys = {}          -- provider slug -> the organisation's key
local credentials_url = ""   -- the task role's credentials endpoint (Bedrock)
local otlp = {}              -- the collector's OTLP/HTTP address
local store                  -- the shared store of the teams' counters (nil: no team is counted)
local skipped                -- the task's record of failing route targets (ngx.shared; nil: no routes)
local in_flight              -- what the task has in flight: requests to the gateway, streams (ngx.shared)
local provider_targets = {}  -- provider slug -> what the response cache keys its requests on
local guard                  -- the organisation's guardrail (guardrail.lua; nil: none)
-- Per worker.
local role                   -- the task role's credentials, cached (credentials.lua)
local role_sets = {}         -- the last few sets it handed out, masked in answers too
local redactor               -- masks every credential this worker holds

local LARGE_BODY = 8 * 1024 * 1024
local CREDENTIALS_UNAVAILABLE = refusal.new(503, "credentials",
    "the task role's credentials are unavailable; try again")
-- The load balancer admits only the stack's app clients; this holds should another reach the task.
local UNKNOWN_CLIENT = refusal.new(403, "identity", "the token's client is not one of the configured teams")

local function fail(message)
    error("aigw: " .. message, 0)
end

-- Harness-only: where the collector (AIGW_OTLP_ADDRESS) or the guardrail
-- mock (AIGW_GUARDRAIL_ADDRESS) listens, on loopback (never set by the task
-- definition; the guardrail's TLS name stays Bedrock's).
local function loopback_override(variable, default_host, default_port)
    local override = getenv(variable)
    if not override or override == "" then return default_host, default_port end
    local host, port = override:match("^(127%.0%.0%.1):(%d+)$")
    if not host then fail(variable .. " must be 127.0.0.1:<port>") end
    return host, tonumber(port)
end

function _M.init(prefix)
    local loaded, err = settings_loader.load(prefix .. "settings.json", getenv("AIGW_DATA_PLANE_RUNTIME"))
    if not loaded then fail(err) end
    settings = loaded
    if settings.org_keys then
        org_keys, err = keys.load(settings.org_key_variables, getenv)
        if not org_keys then fail(err) end
    end
    if settings.bedrock_region ~= "" then
        credentials_url, err = credentials.endpoint(getenv)
        if not credentials_url then
            ngx.log(ngx.ERR, "aigw: ", err, "; Bedrock requests will be refused")
            credentials_url = ""
        end
    end
    otlp.host, otlp.port = loopback_override("AIGW_OTLP_ADDRESS", settings.telemetry.otlp_host,
        settings.telemetry.otlp_port)
    store = settings.store
    local checks = settings.guardrail
    local checked_by = ""
    if checks then
        checks.connect_host, checks.connect_port = loopback_override("AIGW_GUARDRAIL_ADDRESS", checks.connect_host,
            checks.connect_port)
        guard = guardrail.new(checks)
        -- A cached answer passed this guardrail version's output check: another version is another key.
        -- An answer cached while answers were not checked is another key too.
        checked_by = ":guardrail:" .. checks.id .. ":" .. checks.version .. (checks.check_output and ":out" or "")
    end
    for name, route in pairs(settings.routing.configs) do
        route.body_targets = routing.body_targets(route)
        -- What the response cache keys a routed request on: the route and its config.
        route.cache_target = "route:" .. name .. ":" .. cache.sha256_hex(cache.canonical(route.config)) .. checked_by
    end
    for provider in pairs(settings.providers) do
        provider_targets[provider] = "provider:" .. provider .. checked_by
    end
    if settings.azure and provider_targets["azure-openai"] then  -- the deployment answers, not just Azure
        local azure = settings.azure
        provider_targets["azure-openai"] = concat({ "provider:azure-openai", azure.resource_name,
                                                    azure.deployment_id, azure.api_version }, ":") .. checked_by
    end
    skipped = ngx.shared.aigw_routing
    in_flight = ngx.shared.aigw_in_flight
end

-- What the task has in flight, counted across its workers: a request from
-- its first check on, a stream from its first byte back, each until its log
-- phase (variables, not ngx.ctx: they outlive an internal redirect).
local function enter(kind, variable)
    local count = in_flight:incr(kind, 1, 0)
    ngx_var[variable] = "1"
    return count
end

local function leave()
    if ngx_var.aigw_in_flight == "1" then
        ngx_var.aigw_in_flight = ""
        in_flight:incr("requests", -1, 0)
    end
    if ngx_var.aigw_streaming == "1" then
        ngx_var.aigw_streaming = ""
        in_flight:incr("streams", -1, 0)
    end
end

function _M.credentials_url()
    return credentials_url
end

local function rebuild_redactor()
    local secrets = {}
    for _, key in pairs(org_keys) do secrets[#secrets + 1] = key end
    for _, set in ipairs(role_sets) do
        -- The access key id is not secret to AWS, but names the role's session: masked too.
        secrets[#secrets + 1] = set.access_key_id
        secrets[#secrets + 1] = set.secret_access_key
        secrets[#secrets + 1] = set.session_token
    end
    redactor = redact.new(secrets)
end

-- The task role's credentials, remembered for masking (the last few sets).
local function task_role()
    local set, err = role:get()
    if not set then
        ngx.log(ngx.ERR, "aigw: ", err)
        return nil
    end
    if role_sets[#role_sets] ~= set then
        role_sets[#role_sets + 1] = set
        if #role_sets > 4 then table.remove(role_sets, 1) end
        rebuild_redactor()
    end
    return set
end

-- Per-request state lives in ngx.ctx; what the access log needs, in ngx.var.
local function refuse(ctx, decision)
    ngx_var.aigw_rule = decision.rule
    ctx.rule = decision.rule
    ngx.status = decision.status
    ngx.header["Content-Type"] = "application/json"
    if decision.retry_after then ngx.header["Retry-After"] = tostring(decision.retry_after) end
    ngx.say(cjson.encode(refusal.body(decision)))
    return ngx.exit(decision.status)
end

local CACHE_HEADER = "x-aigw-cache"
local BAD_CACHE_HEADER = refusal.new(400, "cache", CACHE_HEADER .. " takes one value: bypass")

-- Stage 1: the request's headers, route, method, media type and betas.
local function check_request(ctx)
    local headers, err = ngx_req.get_headers(settings.max_headers)
    local ok, decision = request.headers(headers, err == "truncated", settings)
    if not ok then return decision end
    ctx.headers = headers
    local providers_here
    providers_here, decision = request.route(ngx_var.uri, ngx_req.get_method(), settings)
    if not providers_here then return decision end
    ctx.providers_here = providers_here
    ok, decision = request.media_type(ngx_var.uri, headers["content-type"], settings)
    if not ok then return decision end
    local bypass = headers[CACHE_HEADER]
    if bypass ~= nil and bypass ~= "bypass" then return BAD_CACHE_HEADER end
    for _, name in ipairs({ "anthropic-beta", "x-portkey-anthropic-beta" }) do
        ok, decision = request.anthropic_betas(headers[name], settings)
        if not ok then return decision end
    end
    return nil
end

-- Stage 2: who is calling (with organisation keys, every request passed the
-- load balancer's JWT validation).
local function identify(ctx)
    if not settings.org_keys then return nil end
    local who, decision = identity.resolve(ctx.headers["authorization"], settings.teams)
    if not who then return decision end
    ctx.client_id, ctx.team = who.client_id, who.team
    ngx_var.aigw_client_id = who.client_id
    ngx_var.aigw_team = who.team or ""
    if not who.team then return UNKNOWN_CLIENT end
    ctx.limits = settings.team_limits[who.team]
    return nil
end

-- A team's cap on the output tokens one request may ask for.
local function team_caps(ctx, route, checked)
    local cap = ctx.limits and ctx.limits.max_tokens
    ctx.max_tokens, ctx.choices = checked.max_tokens, checked.choices
    if not cap or not settings.generating_routes[route] then return nil end
    if not checked.max_tokens or not checked.choices or checked.max_tokens * checked.choices > cap then
        return refusal.new(400, "max-tokens", "team " .. ctx.team .. " may ask for at most " .. cap
            .. " output tokens per request: set max_tokens (or max_completion_tokens, max_output_tokens) so "
            .. "that it times the choices asked for (n, best_of) is " .. cap .. " or less")
    end
    return nil
end

-- An OpenAI-shaped stream reports usage only when asked: ask on every one,
-- and strip what the client did not ask for from its stream (stream_usage.lua).
local function ask_for_stream_usage(ctx, reports_when_asked, data, checked)
    if not (checked.stream and reports_when_asked) then return end
    if stream_usage.asked(checked.stream_options) then return end
    local asking = stream_usage.ask(data, checked.stream_options)
    if asking then
        ngx_req.set_body_data(asking)
        ctx.body = asking
        ctx.strip_usage = true
    end
end

-- Whether the response cache applies to a request (its body decoded, going
-- to `target`: a provider or a route), and its key. A client that asks for no
-- cache (Cache-Control no-cache or no-store, or x-aigw-cache: bypass) is
-- neither answered from it nor stored.
local function cache_lookup_key(ctx, route, target, checked, data)
    local config = settings.cache
    if not (config and config.routes[route]) or checked.stream then return end
    local team_limits = ctx.limits
    local namespace = cache.namespace(ctx.team, team_limits and team_limits.cache)
    if not namespace then return end
    if cache.bypassed(ctx.headers["cache-control"], ctx.headers[CACHE_HEADER]) then
        ctx.cache_state = "bypass"
        return
    end
    local headers, values = ctx.headers, {}
    for index, name in ipairs(config.key_headers) do values[index] = headers[name] or "" end
    ctx.cache_key = cache.key(namespace, route, target, values, data)
end

-- The JSON body (in memory or in nginx's file), checked for the providers it
-- may reach (body.check_targets), the team's caps applied, usage asked for,
-- the response cache's key made (`target`: where the request goes).
local function request_body()
    ngx_req.read_body()
    local data = ngx_req.get_body_data()
    if not data then
        local file = ngx_req.get_body_file()
        if file then
            local handle = io.open(file, "rb")
            if handle then
                data = handle:read("*a")
                handle:close()
            end
        end
    end
    return data
end

local function check_body(ctx, route, targets, reports_when_asked, target)
    local data = request_body()
    ctx.body = data
    local checked, decision = body.check_targets(data, route, targets, settings)
    if data and #data > LARGE_BODY then
        collectgarbage()  -- give a large body's decoded tables back now, not at the next cycle
    end
    if not checked then return decision end
    decision = team_caps(ctx, route, checked)
    if decision then return decision end
    ctx.stream = checked.stream and true or false
    ask_for_stream_usage(ctx, reports_when_asked, data, checked)
    cache_lookup_key(ctx, route, target, checked, data)
    if checked.model then
        ctx.model = checked.model
        ngx_var.aigw_model = text.clean(checked.model)
    end
    return nil
end

-- The fields of a route's target that carry its credentials: the
-- organisation's key (and Azure's deployment), or the task role's
-- credentials for Bedrock.
local function target_credentials(provider)
    if provider == "bedrock" then
        local set = task_role()
        if not set then return nil, CREDENTIALS_UNAVAILABLE end
        return { aws_access_key_id = set.access_key_id, aws_secret_access_key = set.secret_access_key,
                 aws_session_token = set.session_token, aws_region = settings.bedrock_region }
    end
    local fields = { api_key = org_keys[provider] }
    if provider == "azure-openai" then
        fields.resource_name = settings.azure.resource_name
        fields.deployment_id = settings.azure.deployment_id
        fields.api_version = settings.azure.api_version
    end
    return fields
end

-- A request on a named route ([routing.<name>]): the gateway gets the
-- route's config with the credentials of the targets not skipped.
local function choose_route(ctx, name)
    local route, uri = settings.routing.configs[name], ngx_var.uri
    local missing = routing.unoffered(route, ctx.providers_here)
    if missing then
        return refusal.new(400, "route", "route " .. name .. " sends to " .. missing .. ", which " .. uri
            .. " does not offer; offered there: " .. settings.route_help[uri])
    end
    ctx.route_name, ctx.route = name, route
    ngx_var.aigw_route = name
    if not settings.multipart_routes[uri] then
        local decision = check_body(ctx, uri, route.body_targets, routing.all_in(route, settings.stream_usage[uri]),
            route.cache_target)
        if decision then return decision end
    end
    local chosen = routing.available(name, route, skipped)
    local config, decision = routing.build(route, chosen, target_credentials)
    if not config then return decision end
    ctx.chosen = chosen
    ngx_var.aigw_config = config
    ngx_var.aigw_upstream_path = uri
    return nil
end

-- Stage 3 (cache and guardrails join before it): where the request goes
-- and with which credentials: a named route, the client's own config, or
-- the one provider it names.
local function choose_upstream(ctx)
    local headers, route = ctx.headers, ngx_var.uri
    local route_name, refused = routing.select(headers, settings.routing)
    if refused then return refused end
    if route_name then return choose_route(ctx, route_name) end
    local client_config = headers["x-portkey-config"]
    if client_config and client_config ~= "" then
        local _, decision = request.client_config(client_config, settings)
        if decision then return decision end
        -- A client config gets no organisation key and no provider header.
        ctx.client_config = true
        if not settings.org_keys then
            ngx_var.aigw_authorization = headers["authorization"] or ""
            ngx_var.aigw_api_key = headers["x-api-key"] or ""
        end
        ngx_var.aigw_config = client_config
        ngx_var.aigw_upstream_path = route
        return nil
    end
    local provider, decision = request.provider(headers["x-portkey-provider"], route, ctx.providers_here, settings)
    if not provider then return decision end
    ctx.provider = provider
    ngx_var.aigw_provider = provider
    ngx_var.aigw_provider_name = provider
    if not settings.multipart_routes[route] then
        local reports = settings.stream_usage[route]
        decision = check_body(ctx, route, body.targets_of(provider), reports and reports[provider],
            provider_targets[provider])
        if decision then return decision end
    end
    if provider == "bedrock" then
        local set = task_role()
        if not set then return CREDENTIALS_UNAVAILABLE end
        ngx_var.aigw_aws_access_key_id = set.access_key_id
        ngx_var.aigw_aws_secret_access_key = set.secret_access_key
        ngx_var.aigw_aws_session_token = set.session_token
        ngx_var.aigw_aws_region = settings.bedrock_region
    elseif settings.org_keys then
        ngx_var.aigw_authorization = "Bearer " .. org_keys[provider]
    else
        ngx_var.aigw_authorization = headers["authorization"] or ""
        ngx_var.aigw_api_key = headers["x-api-key"] or ""
    end
    if provider == "azure-openai" then
        ngx_var.aigw_azure_resource_name = settings.azure.resource_name
        ngx_var.aigw_azure_deployment_id = settings.azure.deployment_id
        ngx_var.aigw_azure_api_version = settings.azure.api_version
    end
    ngx_var.aigw_upstream_path = route
    return nil
end

-- Stage 4, last (a request refused earlier is not counted): the team's
-- limits, in the shared store.
local function check_limits(ctx)
    local team_limits = ctx.limits
    if not (team_limits and team_limits.counted and store) then return nil end
    -- An upload's body is read before it is counted: nginx refusing it later
    -- (too large, a bad chunk) would end the request where nothing settles.
    if settings.multipart_routes[ngx_var.uri] then ngx_req.read_body() end
    local state = {}
    ctx.limits_state = state
    local decision = limits.admit(store, ctx.team, team_limits, ngx_var.request_id, ngx.now(), state)
    if decision then return decision end
    -- What the log phase settles, in variables: they outlive an internal
    -- redirect (nginx's own error pages), which clears ngx.ctx.
    ngx_var.aigw_settle_team = ctx.team
    ngx_var.aigw_settle_slot = state.inflight_id or ""
    if team_limits.budget then
        ngx_var.aigw_settle_bound = limits.bound(team_limits.budget, ctx.max_tokens, ctx.choices,
            not settings.multipart_routes[ngx_var.uri] and tonumber(ngx_var.content_length) or 0)
    end
    if state.unavailable then
        ngx.log(ngx.WARN, "aigw: limits: store unavailable (", state.unavailable, "); team ", ctx.team,
            "'s request let through uncounted")
        ngx_var.aigw_limit = "limits-unavailable"
    elseif state.shadow then
        ngx_var.aigw_limit = "budget_shadow"
        ngx.log(ngx.WARN, "aigw: budget_shadow: team ", ctx.team, " is over its budget (",
            state.budget_used, " tokens used); let through (shadow mode)")
    end
    return nil
end

local GUARDRAIL_UNAVAILABLE = refusal.new(503, "guardrail-unavailable",
    "the organisation's guardrail could not check this request; try again")
local UNREADABLE_ANSWER = refusal.new(502, "guardrail-output",
    "the answer could not be read to check it against the organisation's guardrail")
local RELAY_FAILED = refusal.new(502, "upstream", "the gateway's answer was cut off")
local STREAM_REFUSED = refusal.new(400, "guardrail-stream", "streaming is off while the organisation's guardrail "
    .. "checks answers; send the request without stream: true")

-- One ApplyGuardrail call with the task role's credentials; nil and a
-- refusal when it cannot be made or answered (the guardrail fails closed).
local function apply_guardrail(ctx, source, texts)
    local set = task_role()
    local verdict, err
    if set then
        -- Protected: a TLS verification failing at once can raise inside sslhandshake in some
        -- lua-resty-core releases (openresty/lua-resty-core#499); it is a failed check like any other.
        local ok, result, why = pcall(guard.apply, guard, source, texts, set, ngx.utctime())
        if ok then
            verdict, err = result, why
        else
            err = result
        end
    else
        err = "the task role's credentials are unavailable"
    end
    if not verdict then
        ngx.log(ngx.ERR, "aigw: guardrail: ", source, " not checked (", text.clean(err, 300), ")")
        ctx.guardrail = "unavailable"
        ngx_var.aigw_guardrail = "unavailable"
        return nil, GUARDRAIL_UNAVAILABLE
    end
    return verdict
end

local function guardrail_blocked(ctx, direction)
    ctx.guardrail = "blocked-" .. direction
    ngx_var.aigw_guardrail = ctx.guardrail
    ngx.log(ngx.WARN, "aigw: guardrail: blocked the ", direction == "input" and "request" or "answer",
        " of team ", ctx.team or "none", " on ", ngx_var.uri)
    local checks = settings.guardrail
    return refusal.new(446, "guardrail-" .. direction,
        direction == "input" and checks.blocked_input_message or checks.blocked_output_message)
end

-- Stage 5 (after the limits: a checked request costs a call, and counts):
-- the organisation's guardrail on the request's text. A blocked request
-- never reaches the gateway; one whose findings were only anonymized goes
-- on masked. With output checks, a generating request is relayed (below).
local function check_guardrail(ctx)
    local checks = settings.guardrail
    if not checks then return nil end
    local uri = ngx_var.uri
    local answered = checks.answer_routes[uri]  -- its answer is checked (with check_output)
    if settings.multipart_routes[uri] then
        if not checks.check_input then return nil end
        return refusal.new(400, "guardrail-unchecked", uri .. " is refused while the organisation's guardrail "
            .. "checks requests: its input (an upload) cannot be checked")
    end
    local raw = ctx.body or request_body()
    local document = raw and cjson.decode(raw)
    if type(document) == "table" then
        -- As the gateway reads it (JavaScript's truthiness): stream: 1 streams too.
        local stream = document.stream
        ctx.stream = stream ~= nil and stream ~= false and stream ~= cjson.null and stream ~= 0 and stream ~= ""
    end
    -- Refused before a check is spent on it.
    if checks.check_output and answered and ctx.stream and checks.output_streams == "refuse" then
        return STREAM_REFUSED
    end
    if checks.check_input then
        if type(document) ~= "table" then
            return refusal.new(400, "guardrail-input", "the request's body could not be read to check it")
        end
        local checked, why = guardrail.request_text(document)
        if not checked then
            return refusal.new(400, "guardrail-unchecked", "the organisation's guardrail checks every request, and "
                .. "this one holds " .. why .. ", which it cannot check")
        end
        if checked ~= "" then
            local verdict, decision = apply_guardrail(ctx, "INPUT", { checked })
            if not verdict then return decision end
            if verdict.action == "blocked" then return guardrail_blocked(ctx, "input") end
            if verdict.action == "anonymize" then
                local masked = guardrail.mask(raw, verdict.masks, function(bytes)
                    local again = cjson.decode(bytes)
                    local text_again = type(again) == "table" and guardrail.request_text(again)
                    return text_again and { text_again } or nil
                end)
                if not masked then return guardrail_blocked(ctx, "input") end
                ngx_req.set_body_data(masked)
                ctx.body = masked
                ctx.guardrail = "anonymized-input"
            else
                ctx.guardrail = "passed"
            end
            ngx_var.aigw_guardrail = ctx.guardrail
        end
    end
    ctx.check_answer = checks.check_output and answered or nil
    return nil
end

-- Stage 6, last (a hit is a request like any other for the team's limits):
-- the response cache. A hit is answered here, byte for byte, without the
-- gateway; the store unavailable lets the request go on uncached.
local function check_cache(ctx)
    if ctx.cache_state then ngx_var.aigw_cache = ctx.cache_state end
    local key = ctx.cache_key
    if not key then return nil end
    local entry, err = cache.get(store, key, ngx.now())
    if entry == nil then
        ctx.cache_key = nil
        ctx.cache_unavailable = true
        ngx_var.aigw_cache = "unavailable"
        ngx.log(ngx.WARN, "aigw: cache: store unavailable (", err, "); answered uncached")
        return nil
    end
    if not entry then
        ngx_var.aigw_cache = "miss"
        return nil
    end
    ctx.cache_key = nil
    ngx_var.aigw_cache = "hit"
    ngx.status = entry.status
    ngx.header["Content-Type"] = entry.content_type
    ngx.header["Content-Length"] = #entry.body
    ngx.header[CACHE_HEADER] = "HIT"
    ngx.print(entry.body)
    return ngx.exit(entry.status)
end

-- Stage 2 (before anything is spent on it): the task's bound on requests in
-- flight. Past it, the gateway would only queue them into its listen queue
-- until connections reset and time out: a 503 to try again (another task,
-- or this one in a second) is the honest answer, counted and logged.
local SATURATED = refusal.new(503, "saturated", "this gateway task is at its limit of requests in flight; try again")
SATURATED.retry_after = 1

local function admit(_)
    if enter("requests", "aigw_in_flight") > settings.max_in_flight then return SATURATED end
    return nil
end

local STAGES = { check_request, admit, identify, choose_upstream, check_limits, check_guardrail, check_cache }

-- What an answer's usage reader found, for the log, the metrics and the limits.
local function take_usage(ctx, found)
    if found.input_tokens then ngx_var.aigw_input_tokens = found.input_tokens end
    if found.output_tokens then ngx_var.aigw_output_tokens = found.output_tokens end
    if found.model and not ctx.model then
        ctx.model = found.model
        ngx_var.aigw_model = text.clean(found.model)
    end
    ctx.input_tokens, ctx.output_tokens = found.input_tokens, found.output_tokens
end

-- Token usage of an answer read here whole (a blocked one is counted too:
-- the provider was paid for it).
local function read_usage(ctx, content_type, answer)
    local reader = usage.new(content_type, settings.usage)
    reader:feed(answer)
    take_usage(ctx, reader:finish())
end

local function first_value(value)
    if type(value) == "table" then return value[1] end
    return value
end

-- The output check of a successful answer: nil (it may go), or a refusal.
-- A streamed answer was fetched whole: it is checked before its first event.
local function check_answer(ctx, answer)
    if answer.status ~= 200 then return nil end
    local content_type = first_value(answer.header["Content-Type"]) or ""
    local texts_of = content_type:find("text/event-stream", 1, true) and guardrail.stream_texts
        or guardrail.answer_texts
    local texts = texts_of(answer.body)
    if not texts then return UNREADABLE_ANSWER end
    if not texts[1] then return nil end
    local verdict, decision = apply_guardrail(ctx, "OUTPUT", texts)
    if not verdict then return decision end
    if verdict.action == "blocked" then return guardrail_blocked(ctx, "output") end
    if verdict.action == "anonymize" then
        local masked = guardrail.mask(answer.body, verdict.masks, texts_of)
        if not masked then return guardrail_blocked(ctx, "output") end
        answer.body = masked
        ctx.guardrail = ctx.guardrail == "anonymized-input" and "anonymized" or "anonymized-output"
    else
        ctx.guardrail = ctx.guardrail or "passed"
    end
    ngx_var.aigw_guardrail = ctx.guardrail
    return nil
end

-- Response headers of a relayed answer that belong to its own connection.
local HOP_BY_HOP = { connection = true, ["keep-alive"] = true, ["transfer-encoding"] = true,
                     ["content-length"] = true, te = true, trailer = true, upgrade = true,
                     ["proxy-connection"] = true }

-- A request whose answer is checked: fetched whole from the gateway by a
-- subrequest (the same upstream request), checked, then sent on from here;
-- the filters below treat it as any answer (masking, usage, the cache).
local function relay(ctx)
    local variables = {}
    for _, name in ipairs(settings.relay_variables) do variables[name] = ngx_var[name] end
    local answer = ngx.location.capture(settings.relay_location, {
        method = ngx.HTTP_POST, always_forward_body = true, ctx = { relay = variables },
    })
    ctx.relayed = true
    if answer.truncated then return refuse(ctx, RELAY_FAILED) end
    local content_type = first_value(answer.header["Content-Type"])
    local decision = check_answer(ctx, answer)
    if decision then
        read_usage(ctx, content_type, answer.body)
        ctx.cache_key = nil
        return refuse(ctx, decision)
    end
    ctx.upstream = true
    ngx.status = answer.status
    for name, value in pairs(answer.header) do
        if not HOP_BY_HOP[name:lower()] then ngx.header[name] = value end
    end
    ngx.header["Content-Length"] = #answer.body
    ngx.print(answer.body)
    return ngx.exit(answer.status)
end

function _M.access()
    local ctx = ngx.ctx
    ngx_var.aigw_path = text.clean(ngx_var.uri)
    ngx_var.aigw_trace = text.clean(ngx_var.http_x_amzn_trace_id, 128)
    for _, stage in ipairs(STAGES) do
        local decision = stage(ctx)
        if decision then return refuse(ctx, decision) end
    end
    if ctx.check_answer then return relay(ctx) end
    ctx.upstream = true
end

-- The relay's subrequest: the upstream request's variables, from the parent.
function _M.relay_rewrite()
    local variables = ngx.is_subrequest and ngx.ctx.relay
    if type(variables) ~= "table" then return ngx.exit(404) end
    for name, value in pairs(variables) do ngx_var[name] = value end
end

function _M.header_filter()
    local ctx = ngx.ctx
    if not ctx.upstream then return end
    -- A response header that carries a credential is dropped (all of them are
    -- read: 0 lifts the default limit of 100, past which one would go unseen).
    -- One scan of all names and values first: each is looked at alone only
    -- when a credential turned up somewhere.
    local response_headers = ngx.resp.get_headers(0)
    local all = {}
    for name, value in pairs(response_headers) do
        all[#all + 1] = name
        if type(value) == "table" then
            for _, item in ipairs(value) do all[#all + 1] = item end
        else
            all[#all + 1] = value
        end
    end
    if redactor:holds(concat(all, "\n")) then
        for name, value in pairs(response_headers) do
            local values = type(value) == "table" and value or { value }
            local carries = redactor:clean(name) ~= name
            for _, item in ipairs(values) do
                carries = carries or redactor:clean(item) ~= item
            end
            if carries then
                ngx.header[name] = nil
                ngx.log(ngx.WARN, "aigw: dropped a response header carrying a credential")
            end
        end
    end
    local option = routing.option(ngx.header["x-portkey-last-used-option-index"])
    if ctx.route then
        -- The gateway counts the targets it was given; the log names the route's own.
        local served = routing.served(option, ctx.chosen)
        if served then
            local target = ctx.route.targets[served]
            ngx_var.aigw_option = served - 1
            ctx.provider = target.provider
            ngx_var.aigw_provider_name = target.provider
            if target.model then
                ctx.model = target.model
                ngx_var.aigw_model = text.clean(target.model)
            end
            routing.record(ctx.route_name, ctx.route, ctx.chosen, served, ngx.status, skipped)
        end
    elseif option then
        ngx_var.aigw_option = option
    end
    ngx.header[CACHE_HEADER] = nil  -- the data plane's header alone, never a provider's
    local content_type = ngx.header["Content-Type"]
    if ctx.cache_key then
        ngx.header[CACHE_HEADER] = "MISS"
        if cache.storable(ngx.status, content_type) then
            ctx.cache_parts, ctx.cache_size, ctx.cache_type = {}, 0, content_type
        end
    elseif ctx.cache_state == "bypass" then
        ngx.header[CACHE_HEADER] = "BYPASS"
    end
    ctx.usage = usage.new(content_type, settings.usage)
    ctx.redaction = { lines = ctx.usage.streaming }
    ngx_var.aigw_stream = ctx.usage.streaming and "true" or "false"
    if ctx.usage.streaming and ngx.status == 200 then enter("streams", "aigw_streaming") end
    if ctx.strip_usage and ctx.usage.streaming then
        ctx.stripping = stream_usage.new_filter()
        ngx.header["Content-Length"] = nil
    end
end

-- Stores an answer (in a timer: the body filter cannot reach the store).
local function store_answer(premature, key, entry)
    if premature then return end
    local ok, err = cache.set(store, key, entry, settings.cache.ttl_seconds, ngx.now())
    if not ok then ngx.log(ngx.WARN, "aigw: cache: answer not stored (", err, ")") end
end

function _M.body_filter()
    local ctx = ngx.ctx
    local reader = ctx.usage
    if not reader then return end
    local chunk, eof = ngx.arg[1], ngx.arg[2]
    if not ctx.first_token and chunk ~= "" then
        -- The answer's first bytes: for a stream, its first event (time to first token).
        ctx.first_token = true
        ngx.update_time()
        ngx_var.aigw_first_token_time = string.format("%.3f", ngx.now() - ngx_req.start_time())
    end
    reader:feed(chunk)
    if ctx.stripping then chunk = stream_usage.filter(ctx.stripping, chunk, eof) end
    local sent = redactor:filter(ctx.redaction, chunk, eof)
    ngx.arg[1] = sent
    local parts = ctx.cache_parts
    if parts then
        ctx.cache_size = ctx.cache_size + #sent
        if ctx.cache_size > settings.cache.max_entry_bytes then
            ctx.cache_parts = nil  -- too large to keep
        else
            parts[#parts + 1] = sent
            if eof then
                local entry = { status = 200, content_type = ctx.cache_type, body = table.concat(parts) }
                local ok, err = ngx.timer.at(0, store_answer, ctx.cache_key, entry)
                if not ok then ngx.log(ngx.ERR, "aigw: cache: cannot store (", err, ")") end
            end
        end
    end
    if eof then take_usage(ctx, reader:finish()) end
end

-- Settles one request with the store, in a timer (the log phase cannot
-- reach it): tried again a few times, never skipped by the admission
-- breaker, and tried even when the worker is exiting: a slot left behind
-- would hold the team's concurrency until it goes stale.
local SETTLE_RETRY_SECONDS = { 1, 3 }

local function settle(premature, team, slot, hold, tokens, attempt)
    local team_limits = settings.team_limits[team]
    local total, err = limits.settle(store, team, team_limits, slot, hold, tokens, ngx.now())
    if err then
        local again = not premature and SETTLE_RETRY_SECONDS[attempt]
        if again and ngx.timer.at(again, settle, team, slot, hold, tokens, attempt + 1) then return end
        ngx.log(ngx.WARN, "aigw: limits: store unavailable (", err, "); team ", team, "'s slot and ", tokens,
            " tokens not settled")
        return
    end
    local budget = team_limits.budget
    if budget and total and limits.crossed_alert(budget, total, tokens) then
        ngx.log(ngx.WARN, "aigw: budget_alert: team ", team, " has used ", total, " of its ", budget.tokens,
            " tokens this ", budget.period, " (alert at ", budget.alert_at_percent, " %)")
        if settings.telemetry.enabled then telemetry.budget_alert(team, settings) end
    end
end

-- What a counted request owes the store once it ends, from the variables
-- check_limits set (ctx is gone after an internal redirect): its slot, and
-- its tokens: the usage the answer reported, or when that is unknown and the
-- gateway was called (the provider may have worked: an answer cut off, a
-- client gone, a timeout), the request's bound; nothing for a request the
-- provider refused outright. A client gone (499) keeps its slot a while: the
-- gateway's call to the provider goes on without it.
local function settle_limits(ctx)
    local team = ngx_var.aigw_settle_team
    if team == "" or not settings.team_limits[team] then return end
    ngx_var.aigw_settle_team = ""
    local status = ngx.status
    local called = ctx.relayed or (ngx_var.upstream_addr ~= nil and ngx_var.upstream_addr ~= "")
    local tokens = 0
    if settings.team_limits[team].budget then
        tokens = limits.tokens_to_count(ctx.input_tokens, ctx.output_tokens, tonumber(ngx_var.aigw_settle_bound),
            called, status)
    end
    local slot = ngx_var.aigw_settle_slot
    local hold = slot ~= "" and called and status == 499
    if slot ~= "" or tokens > 0 then
        local ok, err = ngx.timer.at(0, settle, team, slot, hold, tokens, 1)
        if not ok then ngx.log(ngx.ERR, "aigw: limits: cannot settle (", err, ")") end
    end
end

-- The log phase of a request nginx redirected to one of its own error pages.
function _M.log_redirected()
    leave()
    settle_limits(ngx.ctx)
end

function _M.log()
    local ctx = ngx.ctx
    leave()
    settle_limits(ctx)
    if not settings.telemetry.enabled then return end
    telemetry.record({
        route = settings.routes[ngx_var.uri] and ngx_var.uri or "unmatched",
        status = ngx.status,
        provider = ctx.provider,
        model = ctx.model,
        client_id = ctx.client_id,
        team = ctx.team,
        rule = ctx.rule,
        client_config = ctx.client_config,
        routing = ctx.route_name,
        input_tokens = ctx.input_tokens,
        output_tokens = ctx.output_tokens,
        limits_unavailable = ctx.limits_state and ctx.limits_state.unavailable and true,
        cache_unavailable = ctx.cache_unavailable,
        guardrail = ctx.guardrail,
        amzn_trace = ngx_var.http_x_amzn_trace_id,
        started = ngx_req.start_time(),
        ended = ngx.now(),
    }, settings)
end

-- OTLP/HTTP to the collector in the same task; an unreachable collector
-- costs a warning, never a request.
local function post(path, payload)
    local sock = ngx.socket.tcp()
    sock:settimeout(2000)
    local ok, err = sock:connect(otlp.host, otlp.port)
    if not ok then
        ngx.log(ngx.WARN, "aigw: telemetry not sent (", err, ")")
        return
    end
    sock:send({ "POST ", path, " HTTP/1.1\r\nHost: ", otlp.host, "\r\nContent-Type: application/json\r\n",
        "Content-Length: ", tostring(#payload), "\r\nConnection: close\r\n\r\n", payload })
    sock:receive("*l")
    sock:close()
end

local function flush(premature)
    if premature then return end
    for _, payload in ipairs(telemetry.drain(settings, ngx.now())) do
        post(payload[1], payload[2])
    end
end

-- The task's gauges, from one worker: each second when they changed, else
-- every report_seconds (a steady load is still seen, an idle task costs little).
local reported = { requests = -1, streams = -1, at = 0 }

local function report_in_flight(premature)
    if premature then return end
    local requests = math.max(in_flight:get("requests") or 0, 0)
    local streams = math.max(in_flight:get("streams") or 0, 0)
    local now = ngx.now()
    if requests == reported.requests and streams == reported.streams
            and now - reported.at < settings.telemetry.in_flight.report_seconds then
        return
    end
    reported.requests, reported.streams, reported.at = requests, streams, now
    local payload = telemetry.in_flight_payload(settings, now, requests, streams)
    post(payload[1], payload[2])
end

local function fetch_credentials()
    local response = ngx.location.capture("/_aigw/credentials", { method = ngx.HTTP_GET })
    return response.status, response.body
end

function _M.init_worker()
    math.randomseed(ngx.now() * 1000 + ngx.worker.pid())
    role = credentials.new(fetch_credentials, ngx.now, settings.credentials_refresh_seconds)
    rebuild_redactor()
    if settings.telemetry.enabled then
        ngx.timer.every(settings.telemetry.flush_seconds, flush)
        if ngx.worker.id() == 0 then
            ngx.timer.every(settings.telemetry.flush_seconds, report_in_flight)
        end
    end
end

return _M
