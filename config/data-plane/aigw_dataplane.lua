-- The data plane in front of the Portkey gateway (OpenResty / ngx_lua).
--
-- Every request the load balancer forwards passes access() before it may
-- reach the gateway; body_filter() reads token usage out of the answer;
-- log() queues one OTLP span and the per-request metrics. The rules, and
-- why, are in docs/gateway-contract.md; the settings that shape them come
-- from dataplane.json (rendered by aigw/key_proxy.py from the environment
-- file). The harness runs this very file under Debian's nginx + ngx_lua.
local cjson = require "cjson.safe"

local M = {}

local config            -- dataplane.json
local org_keys = {}     -- provider slug -> "Bearer <key>", read from the environment once
local credentials       -- the task role's credentials (per worker) and when to refresh them
local credentials_url = ""  -- where to fetch them (see credentials_url())
local spans = {}        -- OTLP spans waiting for the next flush (per worker)
local counters = {}     -- metric sums waiting for the next flush (per worker)

local ngx_var = ngx.var

-- Printable ASCII only, at most 256 characters: a client-supplied byte that
-- is not UTF-8 would corrupt the access log and make the collector refuse a
-- whole batch of spans.
local function clean(text)
    return (tostring(text):gsub("[^%w%p ]", "?")):sub(1, 256)
end

-- Refusals: an OpenAI-style error naming the rule; also in the access log.
local function refuse(status, rule, message)
    ngx.var.aigw_rule = rule
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode({ error = { message = message, type = "aigw_refused", rule = rule } }))
    return ngx.exit(status)
end
M.refuse = refuse

local function read_file(path)
    local file, err = io.open(path, "rb")
    if not file then return nil, err end
    local data = file:read("*a")
    file:close()
    return data
end

-- The ECS credentials endpoint: 169.254.170.2 + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI,
-- or, as the AWS SDKs allow, AWS_CONTAINER_CREDENTIALS_FULL_URI on a
-- loopback or ECS/EKS agent address (the harness points it at a mock).
local function endpoint_from_environment()
    local relative = os.getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    if relative and relative:match("^/[%w%-_/.]*$") then
        return "http://169.254.170.2" .. relative
    end
    local full = os.getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if full then
        local host = full:match("^http://([%d.]+):?%d*/") or full:match("^http://(%[::1%]):?%d*/")
        if host == "127.0.0.1" or host == "[::1]" or host == "169.254.170.2" or host == "169.254.170.23" then
            return full
        end
        ngx.log(ngx.ERR, "aigw: AWS_CONTAINER_CREDENTIALS_FULL_URI must be http:// on a loopback or agent address")
    end
    return ""
end

function M.credentials_url()
    return credentials_url
end

function M.init(path)
    local text = assert(read_file(path))
    config = assert(cjson.decode(text), "dataplane.json is not valid JSON")
    credentials_url = endpoint_from_environment()
    for slug, variable in pairs(config.org_key_variables) do
        local value = os.getenv(variable)
        -- The start script already refused empty keys; this guards a misconfigured harness.
        assert(value and value ~= "", variable .. " is not set")
        org_keys[slug] = "Bearer " .. value
    end
end

-- One value of a request header; repeated security-relevant headers are refused.
local function single_header(headers, name)
    local value = headers[name]
    if type(value) == "table" then
        return nil, true
    end
    return value, false
end

-- base64url-decode the JWT payload. The load balancer has already checked
-- its signature, issuer, expiry and scope; this only reads the claims.
local function jwt_claims(authorization)
    if not authorization then return nil end
    local token = authorization:match("^[Bb]earer%s+([%w%-_]+%.[%w%-_]+%.[%w%-_]*)$")
    if not token then return nil end
    local payload = token:match("^[^.]+%.([^.]+)%.")
    payload = payload:gsub("-", "+"):gsub("_", "/")
    local padding = #payload % 4
    if padding > 0 then payload = payload .. string.rep("=", 4 - padding) end
    local decoded = ngx.decode_base64(payload)
    return decoded and cjson.decode(decoded) or nil
end

-- A client config may only route among fixed-host providers with its own
-- keys: every key must be allowed where it appears, every provider allowed.
local function config_problem(value, path)
    if type(value) ~= "table" then return nil end
    local is_array = #value > 0 or next(value) == nil
    if is_array then
        for index, item in ipairs(value) do
            local problem = config_problem(item, path .. "[" .. index .. "]")
            if problem then return problem end
        end
        return nil
    end
    for key, item in pairs(value) do
        if type(key) ~= "string" or not config.config_keys[key] then
            return "key " .. path .. "." .. tostring(key) .. " is not allowed"
        end
        if key == "provider" and not config.config_providers[item] then
            return "provider " .. tostring(item) .. " is not allowed in a config"
        end
        local problem = config_problem(item, path .. "." .. key)
        if problem then return problem end
    end
    return nil
end

local function request_body()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if body then return body end
    local file = ngx.req.get_body_file()
    if file then return read_file(file) end
    return nil
end

-- Fields that point at objects stored at the provider under the
-- organisation's account (other teams' files, responses, vector stores).
local function stored_reference(value, depth, provider)
    if type(value) ~= "table" then
        -- Bedrock reads s3:// URLs (file and image parts) with the task role.
        if provider == "bedrock" and type(value) == "string" and value:lower():find("^%s*s3:") then
            return "an s3:// URL"
        end
        return nil
    end
    if depth > config.max_body_depth then
        return "nesting deeper than " .. config.max_body_depth  -- fail closed: not scanned is not allowed
    end
    for key, item in pairs(value) do
        if type(key) == "string" and config.stored_object_fields[key] then
            return key
        end
        local found = stored_reference(item, depth + 1, provider)
        if found then return found end
    end
    return nil
end

-- The JSON body: the model (some providers put it into the URL beside the
-- key) and references to stored objects.
-- The media type a route takes: multipart for uploads, JSON for the rest.
-- The gateway parses a JSON body whatever the Content-Type says, so a body
-- the data plane did not check must never reach it.
local function media_type()
    return ((ngx_var.content_type or ""):match("^%s*([^;%s]+)") or ""):lower()
end

local function check_content_type(route)
    local expected = config.multipart_routes[route] and "multipart/form-data" or "application/json"
    if media_type() ~= expected then
        return refuse(415, "content-type", route .. " takes Content-Type " .. expected)
    end
    return expected
end

local function check_body(route, provider)
    if config.multipart_routes[route] then
        return nil
    end
    local body = request_body() or ""
    local document = body:find("^%s*{") and cjson.decode(body)
    if type(document) ~= "table" then
        return refuse(400, "body", "the request body is not a JSON object")
    end
    local model = document.model
    if model ~= nil then
        local pattern = config.model_patterns[provider] or config.model_patterns.default
        if type(model) ~= "string" or not ngx.re.find(model, pattern, "jo") then
            return refuse(400, "model", "model must match " .. pattern .. " for " .. provider)
        end
        ngx_var.aigw_model = model
    end
    for key in pairs(document) do
        if config.stored_object_top_level[route] and config.stored_object_top_level[route][key] then
            return refuse(403, "stored-object", key .. " refers to data stored at the provider; not offered")
        end
    end
    local field = stored_reference(document, 0, provider)
    if field then
        return refuse(403, "stored-object", field .. " refers to data stored at the provider; not offered")
    end
    return nil
end

-- The task role's credentials, from the ECS credentials endpoint, cached
-- until shortly before they expire.
-- Seconds since the epoch of an ISO-8601 UTC time (2026-11-29T06:00:00Z),
-- by calendar arithmetic: os.time() would read it as local time.
local function utc_epoch(text)
    local y, mo, d, h, mi, s = text:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
    if not y then return nil end
    y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
    if mo <= 2 then y = y - 1 end
    local era = math.floor(y / 400)
    local year_of_era = y - era * 400
    local day_of_year = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1
    local day_of_era = year_of_era * 365 + math.floor(year_of_era / 4) - math.floor(year_of_era / 100) + day_of_year
    local days = era * 146097 + day_of_era - 719468
    return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

local function task_role_credentials()
    if credentials and ngx.now() < credentials.refresh_at then
        return credentials
    end
    if credentials_url == "" then
        ngx.log(ngx.ERR, "aigw: no credentials endpoint in the environment")
        return nil
    end
    local response = ngx.location.capture("/_aigw/credentials", { method = ngx.HTTP_GET })
    if response.status ~= 200 then
        ngx.log(ngx.ERR, "aigw: the credentials endpoint answered ", response.status)
        return nil
    end
    local document = cjson.decode(response.body)
    if type(document) ~= "table" or not document.AccessKeyId or not document.SecretAccessKey then
        ngx.log(ngx.ERR, "aigw: the credentials endpoint answered without credentials")
        return nil
    end
    local expires = document.Expiration and utc_epoch(document.Expiration) or (ngx.now() + 300)
    credentials = {
        access_key_id = document.AccessKeyId,
        secret_access_key = document.SecretAccessKey,
        session_token = document.Token or "",
        refresh_at = expires - config.credentials_refresh_seconds,
    }
    return credentials
end

function M.access()
    ngx_var.aigw_path = clean(ngx_var.uri)
    local headers = ngx.req.get_headers(100)
    if headers["upgrade"] then
        return refuse(400, "websocket", "WebSocket upgrades (realtime) are not offered by this gateway")
    end
    local route = ngx_var.uri
    local providers_here = config.routes[route]
    if not providers_here then
        return refuse(404, "route", "not an offered route; offered: POST " .. config.route_list)
    end
    if ngx.req.get_method() ~= "POST" then
        return refuse(405, "method", "only POST is offered on " .. route)
    end
    check_content_type(route)
    local authorization, repeated_auth = single_header(headers, "authorization")
    local provider_header, repeated_provider = single_header(headers, "x-portkey-provider")
    local client_config, repeated_config = single_header(headers, "x-portkey-config")
    if repeated_auth or repeated_provider or repeated_config then
        return refuse(400, "header", "authorization, x-portkey-provider and x-portkey-config may appear once each")
    end

    -- Team identity: with org keys, every request passed the load balancer's JWT validation.
    if config.org_keys then
        local claims = jwt_claims(authorization)
        if type(claims) ~= "table" or type(claims.client_id) ~= "string" then
            return refuse(401, "identity", "a request must carry the token the load balancer validated")
        end
        ngx_var.aigw_client_id = claims.client_id
        ngx_var.aigw_team = config.teams[claims.client_id] or ""
    end

    local provider = provider_header and config.provider_slugs[provider_header:lower()]
    if client_config and client_config ~= "" then
        local document = client_config:find("^%s*{") and cjson.decode(client_config)
        if type(document) ~= "table" then
            return refuse(403, "config", "x-portkey-config must be a JSON object")
        end
        local problem = config_problem(document, "config")
        if problem then
            return refuse(403, "config", "x-portkey-config: " .. problem .. "; " .. config.config_help)
        end
        ngx_var.aigw_provider = config.org_keys and "" or (provider or "")
        ngx_var.aigw_authorization = config.org_keys and "" or (authorization or "")
        ngx_var.aigw_api_key = config.org_keys and "" or (headers["x-api-key"] or "")
        ngx_var.aigw_config = client_config
        ngx_var.aigw_upstream_path = route
        return
    end
    if not provider or not providers_here[provider] then
        return refuse(403, "provider", "name a provider offered on " .. route .. " in x-portkey-provider ("
            .. (config.route_help[route] or "none") .. ") or send an x-portkey-config with your own provider keys")
    end
    ngx_var.aigw_provider = provider
    ngx_var.aigw_provider_name = provider
    check_body(route, provider)

    if provider == "bedrock" then
        local role = task_role_credentials()
        if not role then
            return refuse(503, "credentials", "the task role's credentials are unavailable; try again")
        end
        ngx_var.aigw_aws_access_key_id = role.access_key_id
        ngx_var.aigw_aws_secret_access_key = role.secret_access_key
        ngx_var.aigw_aws_session_token = role.session_token
        ngx_var.aigw_aws_region = config.bedrock_region
        ngx_var.aigw_authorization = ""
    elseif config.org_keys then
        ngx_var.aigw_authorization = org_keys[provider] or ""
    else
        ngx_var.aigw_authorization = authorization or ""
        ngx_var.aigw_api_key = headers["x-api-key"] or ""
    end
    if provider == "azure-openai" then
        ngx_var.aigw_azure_resource_name = config.azure.resource_name
        ngx_var.aigw_azure_deployment_id = config.azure.deployment_id
        ngx_var.aigw_azure_api_version = config.azure.api_version
    end
    ngx_var.aigw_upstream_path = route
end

-- Token usage, from the answer the gateway normalised: OpenAI-style `usage`
-- (prompt_tokens / completion_tokens), Anthropic messages (input_tokens /
-- output_tokens; streamed in message_start and message_delta).
local function take_usage(ctx, usage)
    if type(usage) ~= "table" then return end
    local input = usage.prompt_tokens or usage.input_tokens
    local output = usage.completion_tokens or usage.output_tokens
    if type(input) == "number" then ctx.input_tokens = input end
    if type(output) == "number" then ctx.output_tokens = output end
end

local function take_event(ctx, data)
    local event = cjson.decode(data)
    if type(event) ~= "table" then return end
    take_usage(ctx, event.usage)
    if type(event.message) == "table" then
        take_usage(ctx, event.message.usage)
        if ctx.model == nil and type(event.message.model) == "string" then ctx.model = event.message.model end
    end
    if ctx.model == nil and type(event.model) == "string" then ctx.model = event.model end
end

function M.body_filter()
    local ctx = ngx.ctx
    if ctx.usage_done then return end
    local chunk, eof = ngx.arg[1], ngx.arg[2]
    if ctx.streaming == nil then
        local content_type = ngx.header["Content-Type"] or ""
        ctx.streaming = content_type:find("text/event-stream", 1, true) ~= nil
        ctx.json = content_type:find("application/json", 1, true) ~= nil
        ctx.buffer = {}
        ctx.size = 0
    end
    if ctx.streaming then
        local pending = (ctx.pending or "") .. (chunk or "")
        for line, rest in pending:gmatch("([^\n]*)\n()") do
            local data = line:match("^data:%s*(.-)%s*$")
            if data and data:sub(1, 1) == "{" then take_event(ctx, data) end
            ctx.last = rest
        end
        ctx.pending = ctx.last and pending:sub(ctx.last) or pending
        ctx.last = nil
        if #ctx.pending > config.max_event_bytes then ctx.pending = "" end
    elseif ctx.json and chunk and chunk ~= "" then
        ctx.size = ctx.size + #chunk
        if ctx.size <= config.max_usage_body_bytes then
            ctx.buffer[#ctx.buffer + 1] = chunk
        end
    end
    if eof then
        if ctx.json and ctx.size <= config.max_usage_body_bytes then
            take_event(ctx, table.concat(ctx.buffer))
        end
        ctx.buffer, ctx.usage_done = nil, true
        if ctx.input_tokens then ngx_var.aigw_input_tokens = ctx.input_tokens end
        if ctx.output_tokens then ngx_var.aigw_output_tokens = ctx.output_tokens end
        if ctx.model and ngx_var.aigw_model == "" then ngx_var.aigw_model = ctx.model end
    end
end

-- Telemetry: one span per request, linked to the load balancer's trace id;
-- request and token counts per provider, model and team. Queued here,
-- flushed to the collector (OTLP/HTTP JSON) once a second.
local function random_hex(bytes)
    local parts = {}
    for i = 1, bytes do parts[i] = string.format("%02x", math.random(0, 255)) end
    return table.concat(parts)
end

local function trace_id(amzn_trace)
    -- Root=1-<8 hex epoch>-<24 hex>: the OTel trace id is the 32 hex digits.
    local epoch, unique = (amzn_trace or ""):match("^Root=1%-(%x%x%x%x%x%x%x%x)%-(%x+)")
    if epoch and unique and #unique == 24 then return epoch .. unique, true end
    return string.format("%08x", ngx.time()) .. random_hex(12), false
end

local function attribute(key, value)
    if type(value) == "number" then
        return { key = key, value = { intValue = tostring(math.floor(value)) } }
    end
    return { key = key, value = { stringValue = clean(value) } }
end

function M.log()
    if not config.telemetry then return end
    local status = ngx.status
    local provider = ngx_var.aigw_provider_name or ""
    local model = ngx_var.aigw_model or ""
    local team = ngx_var.aigw_team ~= "" and ngx_var.aigw_team or (ngx_var.aigw_client_id or "")
    local input = tonumber(ngx_var.aigw_input_tokens)
    local output = tonumber(ngx_var.aigw_output_tokens)
    local trace, linked = trace_id(ngx_var.http_x_amzn_trace_id)
    -- The route a request was served on, never the client's spelling of a refused one.
    local route = config.routes[ngx_var.uri] and ngx_var.uri or "unmatched"
    local ended = ngx.now()
    local started = ngx.req.start_time()
    local attributes = {
        attribute("http.route", route), attribute("http.response.status_code", status),
        attribute("gen_ai.system", provider), attribute("gen_ai.request.model", model),
        attribute("aigw.client_id", ngx_var.aigw_client_id or ""), attribute("aigw.team", team),
        attribute("aigw.rule", ngx_var.aigw_rule or ""),
    }
    if input then attributes[#attributes + 1] = attribute("gen_ai.usage.input_tokens", input) end
    if output then attributes[#attributes + 1] = attribute("gen_ai.usage.output_tokens", output) end
    if linked then attributes[#attributes + 1] = attribute("aws.xray.trace_id", "1-" .. trace:sub(1, 8) .. "-" .. trace:sub(9)) end
    if #spans < config.max_queued_spans then
        spans[#spans + 1] = {
            traceId = trace, spanId = random_hex(8), name = "POST " .. route, kind = 2,
            startTimeUnixNano = string.format("%d", started * 1e9),
            endTimeUnixNano = string.format("%d", ended * 1e9),
            attributes = attributes,
            status = { code = status >= 500 and 2 or 1 },
        }
    end
    model = clean(model)
    local key = table.concat({ provider, model, team, tostring(status) }, "\31")
    local counter = counters[key]
    if not counter then
        counter = { provider = provider, model = model, team = team, status = status,
                    requests = 0, input = 0, output = 0 }  -- luacheck: ignore
        counters[key] = counter
    end
    counter.requests = counter.requests + 1
    counter.input = counter.input + (input or 0)
    counter.output = counter.output + (output or 0)
end

local function post(path, payload)
    local sock = ngx.socket.tcp()
    sock:settimeout(2000)
    local ok, err = sock:connect(config.otlp_host, config.otlp_port)
    if not ok then
        ngx.log(ngx.WARN, "aigw: telemetry not sent (", err, ")")
        return
    end
    local body = cjson.encode(payload)
    sock:send(table.concat({
        "POST ", path, " HTTP/1.1\r\nHost: ", config.otlp_host, "\r\nContent-Type: application/json\r\n",
        "Content-Length: ", #body, "\r\nConnection: close\r\n\r\n", body,
    }))
    sock:receive("*l")
    sock:close()
end

local function resource()
    return { attributes = { attribute("service.name", config.service_name),
                            attribute("deployment.environment", config.environment) } }
end

local function flush(premature)
    if premature then return end
    if #spans > 0 then
        local batch = spans
        spans = {}
        post("/v1/traces", { resourceSpans = { { resource = resource(),
            scopeSpans = { { scope = { name = "aigw.dataplane" }, spans = batch } } } } })
    end
    if next(counters) then
        local batch = counters
        counters = {}
        local now = string.format("%d", ngx.now() * 1e9)
        local points = { requests = {}, input = {}, output = {} }
        for _, counter in pairs(batch) do
            local attributes = { attribute("provider", counter.provider), attribute("model", counter.model),
                                 attribute("team", counter.team), attribute("status", counter.status) }
            for name in pairs(points) do
                local list = points[name]
                list[#list + 1] = { attributes = attributes, timeUnixNano = now, asInt = tostring(counter[name]) }
            end
        end
        local metrics = {}
        for name, metric in pairs(config.metric_names) do
            metrics[#metrics + 1] = { name = metric, unit = name == "requests" and "1" or "{token}",
                sum = { dataPoints = points[name], aggregationTemporality = 1, isMonotonic = true } }
        end
        post("/v1/metrics", { resourceMetrics = { { resource = resource(),
            scopeMetrics = { { scope = { name = "aigw.dataplane" }, metrics = metrics } } } } })
    end
end

function M.init_worker()
    math.randomseed(ngx.now() * 1000 + ngx.worker.pid())
    if config.telemetry then
        ngx.timer.every(config.flush_seconds, flush)
    end
end

return M
