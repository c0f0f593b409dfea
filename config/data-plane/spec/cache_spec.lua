-- The response cache's pure parts: the SHA-256 (OpenSSL through the FFI),
-- the canonical body, the namespaces, the bypass and what may be stored. The
-- harness (tests/test_response_cache.py) runs it against a real store.
local cache = require "aigw.cache"
local cjson = require "cjson.safe"

describe("cache.sha256_hex", function()
    it("is SHA-256 (FIPS 180-2 test vectors)", function()
        assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", cache.sha256_hex("abc"))
        assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", cache.sha256_hex(""))
    end)

    it("reads every byte, a NUL among them", function()
        assert.are_not.equal(cache.sha256_hex("a\0b"), cache.sha256_hex("a\0c"))
    end)
end)

describe("cache.canonical", function()
    it("sorts the keys of every object, at any depth", function()
        local one = cjson.decode('{"b":1,"a":{"y":[1,{"q":2,"p":3}],"x":null},"c":"t"}')
        local two = cjson.decode('{"c":"t","a":{"x":null,"y":[1,{"p":3,"q":2}]},"b":1}')
        assert.equal('{"a":{"x":null,"y":[1,{"p":3,"q":2}]},"b":1,"c":"t"}', cache.canonical(one))
        assert.equal(cache.canonical(one), cache.canonical(two))
    end)

    it("keeps what changes the answer apart", function()
        local function text(json) return cache.canonical(cjson.decode(json)) end
        assert.are_not.equal(text('{"t":0.2}'), text('{"t":0.3}'))
        assert.are_not.equal(text('{"m":["a","b"]}'), text('{"m":["b","a"]}'))
        assert.are_not.equal(text('{"s":"1"}'), text('{"s":1}'))
        assert.are_not.equal(text('{"a":{"b":"c"}}'), text('{"a":"{\\"b\\":\\"c\\"}"}'))
    end)
end)

describe("cache.namespace and cache.key", function()
    it("keeps each private team apart, joins the shared ones, and caches nothing of a no-store team", function()
        assert.equal("team:search", cache.namespace("search", "private"))
        assert.equal("shared", cache.namespace("search", "shared"))
        assert.equal("shared", cache.namespace("billing", "shared"))
        assert.is_nil(cache.namespace("secret", "no-store"))
        assert.is_nil(cache.namespace(nil, "private"))
    end)

    it("hashes the namespace, the path, the target and the body", function()
        local body = '{"model":"gpt-4o"}'
        local base = cache.key("team:a", "/v1/chat/completions", "provider:openai", { "", "" }, body)
        assert.matches("^aigw:cache:%x+$", base)
        assert.equal(64, #base - #"aigw:cache:")
        for _, other in ipairs({
            cache.key("team:b", "/v1/chat/completions", "provider:openai", { "", "" }, body),
            cache.key("team:a", "/v1/completions", "provider:openai", { "", "" }, body),
            cache.key("team:a", "/v1/chat/completions", "route:chat", { "", "" }, body),
            cache.key("team:a", "/v1/chat/completions", "provider:openai", { "2023-06-01", "" }, body),
            cache.key("team:a", "/v1/chat/completions", "provider:openai", { "", "" }, '{"model":"gpt-4o-mini"}'),
            cache.key("team:a", "/v1/chat/completions", "provider:openai", { "", "" }, '{"model": "gpt-4o"}'),
        }) do
            assert.are_not.equal(base, other)
        end
        -- The parts are separated: moving text across a boundary is another key.
        assert.are_not.equal(cache.key("team:a", "/x", "y", {}, body), cache.key("team:a", "/x\ny", "", {}, body))
    end)
end)

describe("cache.bypassed and cache.storable", function()
    it("takes no-cache and no-store in Cache-Control, and any x-aigw-cache value (the handler allows bypass only)", function()
        assert.is_true(cache.bypassed("no-cache", nil))
        assert.is_true(cache.bypassed("max-age=0, No-Store", nil))
        assert.is_true(cache.bypassed(nil, "bypass"))
        assert.is_false(cache.bypassed("max-age=60", nil))
        assert.is_false(cache.bypassed(nil, nil))
    end)

    it("stores a 200 JSON answer only", function()
        assert.is_true(cache.storable(200, "application/json"))
        assert.is_true(cache.storable(200, "application/json; charset=utf-8"))
        for _, case in ipairs({ { 201, "application/json" }, { 429, "application/json" },
                                { 500, "application/json" }, { 200, "text/event-stream" }, { 200, nil } }) do
            assert.is_false(cache.storable(case[1], case[2]))
        end
    end)
end)
