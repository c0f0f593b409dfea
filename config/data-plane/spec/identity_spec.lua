local identity = require "aigw.identity"

local function b64url(text)
    return (ngx.encode_base64(text):gsub("+", "-"):gsub("/", "_"):gsub("=", ""))
end

local function token(claims_json)
    return "Bearer " .. b64url('{"alg":"RS256","kid":"k"}') .. "." .. b64url(claims_json) .. ".c2ln"
end

local TEAMS = { ["4mq0client0a"] = "search" }

describe("identity.resolve", function()
    it("reads the client id of the token and its team", function()
        local who = identity.resolve(token('{"client_id":"4mq0client0a","scope":"x"}'), TEAMS)
        assert.same({ client_id = "4mq0client0a", team = "search" }, who)
    end)

    it("knows a client without a team", function()
        local who = identity.resolve(token('{"client_id":"9zz9other"}'), TEAMS)
        assert.same({ client_id = "9zz9other" }, who)
    end)

    it("reads a payload whatever its base64 padding", function()
        for _, id in ipairs({ "a", "ab", "abc", "abcd", "abcde" }) do
            assert.equal(id, identity.resolve(token('{"client_id":"' .. id .. '"}'), {}).client_id)
        end
    end)

    it("reads a header the same again, with the team of the teams it is given", function()
        local header = token('{"client_id":"4mq0client0a"}')
        for _ = 1, 2 do
            assert.same({ client_id = "4mq0client0a", team = "search" }, identity.resolve(header, TEAMS))
            assert.same({ client_id = "4mq0client0a" }, identity.resolve(header, {}))
            local who, decision = identity.resolve(header .. "!", TEAMS)
            assert.is_nil(who)
            assert.equal(401, decision.status)
        end
    end)

    it("still reads every header after more than it remembers", function()
        for i = 1, 2100 do
            assert.equal("c" .. i, identity.resolve(token('{"client_id":"c' .. i .. '"}'), {}).client_id)
        end
        assert.equal("c1", identity.resolve(token('{"client_id":"c1"}'), {}).client_id)
    end)

    it("accepts the scheme in either case", function()
        local header = token('{"client_id":"abc"}'):gsub("^Bearer", "bearer")
        assert.equal("abc", identity.resolve(header, {}).client_id)
    end)

    for name, header in pairs({
        ["no header"] = nil,
        ["a header that is a table"] = { "Bearer a.b.c", "Bearer d.e.f" },
        ["an API key"] = "Bearer sk-client-own-key",
        ["basic auth"] = "Basic dXNlcjpwYXNz",
        ["no client id"] = token('{"scope":"https://gateway.internal/invoke"}'),
        ["a client id that is a number"] = token('{"client_id":12345}'),
        ["a client id with other characters"] = token('{"client_id":"abc\\ndef"}'),
        ["a client id of a JSON object"] = token('{"client_id":{"id":"abc"}}'),
        ["a payload that is not JSON"] = "Bearer " .. b64url("{}") .. "." .. b64url("not json") .. ".c2ln",
        ["a payload that is a JSON array"] = token('["client_id","abc"]'),
        ["a client id of 129 characters"] = token('{"client_id":"' .. string.rep("a", 129) .. '"}'),
        ["two tokens"] = token('{"client_id":"abc"}') .. " " .. token('{"client_id":"def"}'),
    }) do
        it("refuses " .. name .. " (401, identity)", function()
            local who, decision = identity.resolve(header, TEAMS)
            assert.is_nil(who)
            assert.same({ 401, "identity" }, { decision.status, decision.rule })
        end)
    end
end)
