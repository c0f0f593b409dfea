-- The organisation's Bedrock guardrail ([guardrails]), applied by the data
-- plane itself with the task role's credentials: every request's text
-- before it reaches the gateway, and (with output checks) every generated
-- answer before the client gets it, whatever provider answered. The gateway
-- 1.15.2 can call a Bedrock guardrail from a config's hooks, but it runs no
-- output hook on a stream and would need the task role's credentials in the
-- config; checking here covers streams and keeps them in the data plane.
--
-- What is checked: every string of the JSON body or answer, and every
-- object key, whatever field holds it (a client or a model chooses field
-- names too: a tool's schema, a tool call's input); only binary is left
-- out, where the provider reads it as binary: a base64 image source, an
-- image's data URL, a generated image's b64_json. Content that is binary
-- and could carry text the guardrail cannot read (a document or file, audio,
-- a prompt as token ids) is refused while inputs are checked (`unchecked`).
-- A streamed answer is read per part (a choice, a content block, a tool
-- call): the fields that carry generated text are joined as they arrived,
-- so a word split across events is checked whole; every other string is
-- checked on its own.
--
-- ApplyGuardrail is called over TLS (verified against Amazon's roots) on a
-- pooled connection, signed with SigV4. Its verdict: NONE passes; any
-- BLOCKED finding blocks; findings that were only ANONYMIZED are masked in
-- place (`{EMAIL}`), and where a match cannot be masked in the bytes (its
-- JSON spelling differs, or a stream split it across events), blocked.
local cjson = require "cjson.safe"
local crypto = require "aigw.crypto"

local type, pairs, ipairs, tostring, tonumber, sort, concat = type, pairs, ipairs, tostring, tonumber, table.sort,
    table.concat
local find, sub, gsub, match, lower = string.find, string.sub, string.gsub, string.match, string.lower
local setmetatable = setmetatable

local _M = {}
local mt = { __index = _M }

-- Tables of numbers and of tokens that repeat the text (logprobs): not read.
local SKIPPED = { usage = true, logprobs = true, top_logprobs = true }
-- Fields of a streamed event that carry generated text, joined per part.
local TEXT_FIELDS = { content = true, text = true, refusal = true, arguments = true, partial_json = true,
                      thinking = true, delta = true }
-- Fields that number a streamed part.
local PART_INDEXES = { "index", "output_index", "content_index" }
-- Parts whose content is binary that may carry text: refused while inputs are checked.
local UNCHECKED_TYPES = { file = true, input_file = true, input_audio = true }
local MAX_DEPTH = 100
local MAX_RESPONSE_BYTES = 1024 * 1024

-- A data URL of an image in base64: binary the provider decodes as an image.
local function image_data_url(value)
    return type(value) == "string" and find(value, "^data:image/[%w.+-]+;base64,[%w+/=%s]*$") ~= nil
end

-- Why a part cannot be checked, or nil.
local function unchecked(value, key)
    if UNCHECKED_TYPES[value.type] or value.file_data ~= nil or value.input_audio ~= nil then
        return "a file or audio"
    end
    local source = value.source
    if value.type == "document" and type(source) == "table" and source.type ~= "text" and source.type ~= "content" then
        return "a document (PDF, URL or file)"
    end
    if (key == "prompt" or key == "input") and type(value[1]) == "number" then return "a prompt as token ids" end
    return nil
end

local function sorted_keys(object)
    local keys = {}
    for name in pairs(object) do
        if type(name) == "string" then keys[#keys + 1] = name end
    end
    sort(keys)
    return keys
end

-- Walks a decoded JSON value: sink(part, text, joined) for each string
-- (joined: a generated-text field of a streamed part) and each object key.
-- Returns false and why when it cannot be checked.
local function collect(value, key, part, depth, sink)
    local kind = type(value)
    if kind == "string" then
        if value ~= "" then sink(part, value, TEXT_FIELDS[key]) end
        return true
    end
    if kind ~= "table" or value == cjson.null then return true end
    if depth > MAX_DEPTH then return false, "nested too deep" end
    local why = unchecked(value, key)
    if why then return false, why end
    for _, name in ipairs(PART_INDEXES) do
        local index = value[name]
        if type(index) == "number" then part = part .. "/" .. name .. tostring(index) end
    end
    if #value > 0 then
        for _, item in ipairs(value) do
            local ok, err = collect(item, key, part, depth + 1, sink)
            if not ok then return false, err end
        end
        return true
    end
    local binary_data = value.type == "base64"  -- an image's base64 source (a document's is refused above)
    for _, name in ipairs(sorted_keys(value)) do
        sink(part, name, false)
        local item = value[name]
        local binary = (name == "data" and binary_data) or name == "b64_json"
            or (name == "url" and image_data_url(item))
        if not (SKIPPED[name] or binary) then
            local ok, err = collect(item, name, part, depth + 1, sink)
            if not ok then return false, err end
        end
    end
    return true
end

-- Texts to check, from a sink's parts: each part's joined generated text,
-- then every other string once, one per line.
local function gather()
    local parts, order, others, seen = {}, {}, {}, {}
    local function sink(part, text, joined)
        if joined then
            local list = parts[part]
            if not list then
                list = {}
                parts[part] = list
                order[#order + 1] = part
            end
            list[#list + 1] = text
        elseif not seen[text] then
            seen[text] = true
            others[#others + 1] = text
        end
    end
    local function texts()
        local out = {}
        for _, part in ipairs(order) do out[#out + 1] = concat(parts[part]) end
        if others[1] then out[#out + 1] = concat(others, "\n") end
        return out
    end
    return sink, texts
end

-- The text of a decoded request body, as one string (every string and key,
-- one per line), or nil and why it cannot be checked.
function _M.request_text(document)
    local pieces, seen = {}, {}
    local ok, err = collect(document, nil, "", 0, function(_, text)
        if not seen[text] then
            seen[text] = true
            pieces[#pieces + 1] = text
        end
    end)
    if not ok then return nil, err end
    return concat(pieces, "\n")
end

-- The texts of a JSON answer: one string.
function _M.answer_texts(body)
    local document = cjson.decode(body)
    if type(document) ~= "table" then return nil end
    local text = _M.request_text(document)
    if not text then return nil end
    return text == "" and {} or { text }
end

-- The texts of a streamed answer (server-sent events); nil when an event
-- cannot be read, or a non-empty answer has none.
function _M.stream_texts(body)
    local sink, texts = gather()
    local events = 0
    for line in body:gmatch("[^\n]+") do
        local payload = match(line, "^data:%s?(.-)\r?$")
        if payload and payload ~= "" and payload ~= "[DONE]" then
            local event = cjson.decode(payload)
            if type(event) ~= "table" then return nil end
            if not collect(event, nil, "", 0, sink) then return nil end
            events = events + 1
        elseif payload == "[DONE]" then
            events = events + 1
        end
    end
    if events == 0 and find(body, "%S") then return nil end
    return texts()
end

-- The ApplyGuardrail request body.
function _M.request_body(source, texts)
    local content = {}
    for index, text in ipairs(texts) do content[index] = { text = { text = text } } end
    return cjson.encode({ source = source, content = content })
end

local function tag_of(finding)
    local name = finding.type or finding.name
    name = type(name) == "string" and gsub(name, "[^%w_]", "") or ""
    return "{" .. (name ~= "" and name or "REDACTED") .. "}"
end

-- Every finding (a table with an action) of an assessment, whatever its policy.
local function findings(value, depth, out)
    if type(value) ~= "table" or depth > 8 then return end
    if type(value.action) == "string" then out[#out + 1] = value end
    for _, item in pairs(value) do findings(item, depth + 1, out) end
end

-- The guardrail's verdict on an ApplyGuardrail answer: { action = "none" },
-- { action = "blocked" }, { action = "anonymize", masks = { { match, tag } } };
-- or nil and why when the answer is not one. An intervention with nothing
-- this code can apply blocks (fail closed).
function _M.verdict(document)
    if type(document) ~= "table" then return nil, "the answer is not JSON" end
    if document.action == "NONE" then return { action = "none" } end
    if document.action ~= "GUARDRAIL_INTERVENED" then
        return nil, "unknown action " .. tostring(document.action)
    end
    local found = {}
    findings(document.assessments, 0, found)
    local masks, seen = {}, {}
    for _, finding in ipairs(found) do
        if finding.action == "BLOCKED" then return { action = "blocked" } end
        if finding.action == "ANONYMIZED" then
            local text = finding.match
            if type(text) ~= "string" or text == "" then return { action = "blocked" } end
            if not seen[text] then
                seen[text] = true
                masks[#masks + 1] = { match = text, tag = tag_of(finding) }
            end
        end
    end
    if masks[1] then return { action = "anonymize", masks = masks } end
    return { action = "blocked" }
end

local function replace_plain(text, pattern, replacement)
    local out, from = {}, 1
    while true do
        local first, last = find(text, pattern, from, true)
        if not first then break end
        out[#out + 1] = sub(text, from, first - 1)
        out[#out + 1] = replacement
        from = last + 1
    end
    if from == 1 then return text end
    out[#out + 1] = sub(text, from)
    return concat(out)
end

-- `raw` (JSON or events) with every match replaced by its tag, in place; nil
-- when a match is not spelled as itself in JSON (a quote, a backslash, a
-- control character) or is still in the texts read back (`texts_of`).
function _M.mask(raw, masks, texts_of)
    sort(masks, function(a, b) return #a.match > #b.match end)
    for _, mask in ipairs(masks) do
        if find(mask.match, '["\\%c]') then return nil end
        raw = replace_plain(raw, mask.match, mask.tag)
    end
    local texts = texts_of(raw)
    if not texts then return nil end
    for _, text in ipairs(texts) do
        for _, mask in ipairs(masks) do
            if find(text, mask.match, 1, true) then return nil end
        end
    end
    return raw
end

-- SigV4 (service "bedrock"): the Authorization header of a POST of `body`
-- to `path` on `host`, at `amz_date` (YYYYMMDDTHHMMSSZ).
function _M.authorization(credentials, region, host, path, body, amz_date)
    local date = sub(amz_date, 1, 8)
    local scope = date .. "/" .. region .. "/bedrock/aws4_request"
    local token = credentials.session_token or ""
    local headers = "content-type:application/json\nhost:" .. host .. "\nx-amz-date:" .. amz_date .. "\n"
    local signed = "content-type;host;x-amz-date"
    if token ~= "" then
        headers = headers .. "x-amz-security-token:" .. token .. "\n"
        signed = signed .. ";x-amz-security-token"
    end
    local canonical = concat({ "POST", path, "", headers, signed, crypto.sha256_hex(body) }, "\n")
    local to_sign = concat({ "AWS4-HMAC-SHA256", amz_date, scope, crypto.sha256_hex(canonical) }, "\n")
    local key = crypto.hmac_sha256("AWS4" .. credentials.secret_access_key, date)
    key = crypto.hmac_sha256(key, region)
    key = crypto.hmac_sha256(key, "bedrock")
    key = crypto.hmac_sha256(key, "aws4_request")
    return "AWS4-HMAC-SHA256 Credential=" .. credentials.access_key_id .. "/" .. scope .. ", SignedHeaders="
        .. signed .. ", Signature=" .. crypto.hmac_sha256_hex(key, to_sign)
end

-- ngx.utctime() ("2026-12-06 01:02:03") as SigV4's date.
function _M.amz_date(utc)
    return (gsub(utc, "[-: ]", function(c) return c == " " and "T" or "" end)) .. "Z"
end

-- settings: the guardrail's (host, region, id, version, timeout_ms,
-- connect_host, connect_port, pool_size, idle_ms).
function _M.new(settings)
    return setmetatable({ settings = settings,
        path = "/guardrail/" .. settings.id .. "/version/" .. settings.version .. "/apply" }, mt)
end

local function read_body(sock, length, chunked, limit)
    if length then
        if length > limit then return nil, "answer too large" end
        return sock:receive(length)
    end
    if not chunked then return nil, "answer without a length" end
    local parts, size = {}, 0
    while true do
        local line, err = sock:receive("*l")
        if not line then return nil, err end
        local chunk = tonumber(match(line, "^(%x+)"), 16)
        if not chunk then return nil, "bad chunk" end
        if chunk == 0 then
            repeat line, err = sock:receive("*l") until not line or line == ""
            if not line then return nil, err end
            return concat(parts)
        end
        size = size + chunk
        if size > limit then return nil, "answer too large" end
        local data
        data, err = sock:receive(chunk)
        if not data then return nil, err end
        parts[#parts + 1] = data
        line, err = sock:receive(2)
        if not line then return nil, err end
    end
end

-- One ApplyGuardrail call: the verdict, or nil and why (the caller fails closed).
function _M:apply(source, texts, credentials, utc)
    local s = self.settings
    local body = _M.request_body(source, texts)
    local amz_date = _M.amz_date(utc)
    local request = {
        "POST ", self.path, " HTTP/1.1\r\nHost: ", s.host, "\r\nContent-Type: application/json\r\n",
        "Accept: application/json\r\nContent-Length: ", tostring(#body), "\r\nX-Amz-Date: ", amz_date, "\r\n",
    }
    if (credentials.session_token or "") ~= "" then
        request[#request + 1] = "X-Amz-Security-Token: " .. credentials.session_token .. "\r\n"
    end
    request[#request + 1] = "Authorization: "
        .. _M.authorization(credentials, s.region, s.host, self.path, body, amz_date) .. "\r\n\r\n"
    request[#request + 1] = body
    local sock = ngx.socket.tcp()
    sock:settimeouts(s.timeout_ms, s.timeout_ms, s.timeout_ms)
    local ok, err = sock:connect(s.connect_host, s.connect_port, { pool = "aigw-guardrail" })
    if not ok then return nil, "connect: " .. tostring(err) end
    if sock:getreusedtimes() == 0 then
        ok, err = sock:sslhandshake(nil, s.host, true)
        if not ok then
            sock:close()
            return nil, "TLS: " .. tostring(err)
        end
    end
    ok, err = sock:send(request)
    if not ok then
        sock:close()
        return nil, "send: " .. tostring(err)
    end
    local line
    line, err = sock:receive("*l")
    local status = line and tonumber(match(line, "^HTTP/1%.[01] (%d%d%d)"))
    if not status then
        sock:close()
        return nil, "no status line (" .. tostring(err) .. ")"
    end
    local length, chunked, closing = nil, false, false
    for _ = 1, 100 do
        line, err = sock:receive("*l")
        if not line then
            sock:close()
            return nil, "headers: " .. tostring(err)
        end
        if line == "" then break end
        local name, value = match(line, "^([^:]+):%s*(.-)%s*$")
        name = name and lower(name)
        if name == "content-length" then
            length = tonumber(value)
        elseif name == "transfer-encoding" then
            chunked = find(lower(value), "chunked", 1, true) ~= nil
        elseif name == "connection" then
            closing = lower(value) == "close"
        end
    end
    local answer
    -- Its answer may repeat the text (masked): room for twice what was sent.
    answer, err = read_body(sock, length, chunked, math.max(MAX_RESPONSE_BYTES, 2 * #body + 65536))
    if not answer then
        sock:close()
        return nil, "body: " .. tostring(err)
    end
    if closing then sock:close() else sock:setkeepalive(s.idle_ms, s.pool_size) end
    if status ~= 200 then
        local document = cjson.decode(answer)
        local kind = type(document) == "table" and (document.__type or document.message) or nil
        return nil, "ApplyGuardrail answered " .. status .. (type(kind) == "string" and (": " .. sub(kind, 1, 200)) or "")
    end
    return _M.verdict(cjson.decode(answer))
end

return _M
