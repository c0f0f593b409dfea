local credentials = require "aigw.credentials"
local cjson = require "cjson.safe"

local function env(values)
    return function(name) return values[name] end
end

describe("credentials.endpoint", function()
    it("is ECS's link-local endpoint with the relative URI", function()
        assert.equal("http://169.254.170.2/v2/credentials/abc-123",
            credentials.endpoint(env({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/v2/credentials/abc-123" })))
    end)

    for _, uri in ipairs({ "http://127.0.0.1:9911/creds", "http://[::1]:80/c", "http://169.254.170.23/v1/creds" }) do
        it("takes a full URI on a loopback or agent address: " .. uri, function()
            assert.equal(uri, credentials.endpoint(env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = uri })))
        end)
    end

    for _, uri in ipairs({ "http://evil.example/creds", "https://127.0.0.1/creds", "http://10.0.0.5/creds",
                           "http://127.0.0.1.evil.example/x", "file:///etc/passwd" }) do
        it("refuses a full URI elsewhere: " .. uri, function()
            local url, err = credentials.endpoint(env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = uri }))
            assert.is_nil(url)
            assert.truthy(err:find("loopback or agent address", 1, true))
        end)
    end

    it("refuses a relative URI that is not a path", function()
        local url, err = credentials.endpoint(env({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "@evil.example/x" }))
        assert.is_nil(url)
        assert.equal("no credentials endpoint in the environment", err)
    end)
end)

describe("credentials.utc_epoch", function()
    it("reads an ISO-8601 UTC time as seconds since the epoch", function()
        assert.equal(0, credentials.utc_epoch("1970-01-01T00:00:00Z"))
        assert.equal(951782400, credentials.utc_epoch("2000-02-29T00:00:00Z"))
        assert.equal(1795910400, credentials.utc_epoch("2026-11-29T00:00:00Z"))  -- Python: calendar.timegm
    end)

    it("reads nothing else", function()
        assert.is_nil(credentials.utc_epoch("tomorrow"))
        assert.is_nil(credentials.utc_epoch(nil))
    end)
end)

describe("credentials:get", function()
    local now = 1000
    local function clock() return now end

    local function endpoint(answers)
        local calls = 0
        return function()
            calls = calls + 1
            local answer = answers[math.min(calls, #answers)]
            return answer[1], answer[2]
        end, function() return calls end
    end

    local function document(id, expires)
        return cjson.encode({ AccessKeyId = id, SecretAccessKey = "s-" .. id, Token = "t-" .. id,
            Expiration = expires })
    end

    it("caches a set until the refresh margin before it expires", function()
        local fetch, calls = endpoint({ { 200, document("A", "1970-01-01T00:30:00Z") } })  -- expires at 1800
        local role = credentials.new(fetch, clock, 300)
        now = 1000
        assert.equal("A", role:get().access_key_id)
        now = 1499
        assert.equal("A", role:get().access_key_id)
        assert.equal(1, calls())
        now = 1500
        role:get()
        assert.equal(2, calls())
    end)

    it("fetches each time when the endpoint gives no expiry", function()
        local fetch, calls = endpoint({ { 200, document("A", nil) } })
        local role = credentials.new(fetch, clock, 300)
        role:get()
        role:get()
        assert.equal(2, calls())
    end)

    for _, answer in ipairs({ { 500, "" }, { 200, "not json" }, { 200, '{"AccessKeyId":"A"}' },
                              { 200, '{"AccessKeyId":1,"SecretAccessKey":"x"}' } }) do
        it("gives no credentials for an answer " .. answer[1] .. " " .. answer[2], function()
            local role = credentials.new(endpoint({ answer }), clock, 300)
            local set, err = role:get()
            assert.is_nil(set)
            assert.is_string(err)
        end)
    end
end)
