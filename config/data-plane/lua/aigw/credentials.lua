-- The task role's credentials, for Bedrock: the gateway 1.15.2 signs
-- Bedrock requests only with credentials sent per request and never reads
-- the ECS credentials endpoint itself. Fetched from that endpoint, cached per
-- worker until shortly before they expire.
local cjson = require "cjson.safe"

local type, tonumber, floor, setmetatable = type, tonumber, math.floor, setmetatable

local _M = {}
local mt = { __index = _M }

local AGENT_HOSTS = { ["127.0.0.1"] = true, ["[::1]"] = true, ["169.254.170.2"] = true, ["169.254.170.23"] = true }

-- Where the credentials are: 169.254.170.2 + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
-- (what ECS sets), or, as the AWS SDKs allow, AWS_CONTAINER_CREDENTIALS_FULL_URI
-- on a loopback or ECS/EKS agent address. nil and why when neither is usable.
function _M.endpoint(getenv)
    local relative = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    if relative and relative:find("^/[%w%-_/.]*$") then
        return "http://169.254.170.2" .. relative
    end
    local full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if full then
        local host = full:match("^http://([%d.]+):?%d*/") or full:match("^http://(%[::1%]):?%d*/")
        if AGENT_HOSTS[host] then return full end
        return nil, "AWS_CONTAINER_CREDENTIALS_FULL_URI must be http:// on a loopback or agent address"
    end
    return nil, "no credentials endpoint in the environment"
end

-- Seconds since the epoch of an ISO-8601 UTC time (2026-11-29T06:00:00Z), by
-- calendar arithmetic: os.time() would read it as local time.
function _M.utc_epoch(text)
    if type(text) ~= "string" then return nil end
    local y, mo, d, h, mi, s = text:match("^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)")
    if not y then return nil end
    y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
    if mo <= 2 then y = y - 1 end
    local era = floor(y / 400)
    local year_of_era = y - era * 400
    local day_of_year = floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1
    local day_of_era = year_of_era * 365 + floor(year_of_era / 4) - floor(year_of_era / 100) + day_of_year
    local days = era * 146097 + day_of_era - 719468
    return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

-- fetch(): status, body of a GET of the endpoint; now(): seconds.
function _M.new(fetch, now, refresh_seconds)
    return setmetatable({ fetch = fetch, now = now, refresh_seconds = refresh_seconds }, mt)
end

-- { access_key_id, secret_access_key, session_token }, or nil and why.
function _M:get()
    local cached = self.cached
    if cached and self.now() < cached.refresh_at then
        return cached
    end
    local status, body = self.fetch()
    if status ~= 200 then
        return nil, "the credentials endpoint answered " .. tostring(status)
    end
    local document = cjson.decode(body or "")
    if type(document) ~= "table" or type(document.AccessKeyId) ~= "string"
            or type(document.SecretAccessKey) ~= "string" then
        return nil, "the credentials endpoint answered without credentials"
    end
    local expires = _M.utc_epoch(document.Expiration) or (self.now() + self.refresh_seconds)
    cached = {
        access_key_id = document.AccessKeyId,
        secret_access_key = document.SecretAccessKey,
        session_token = type(document.Token) == "string" and document.Token or "",
        refresh_at = expires - self.refresh_seconds,
    }
    self.cached = cached
    return cached
end

return _M
