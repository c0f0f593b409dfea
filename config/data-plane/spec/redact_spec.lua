local redact = require "aigw.redact"

local KEY = "sk-org-4f1c9e0000abcd"
local SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY+x="

local function through(redactor, chunks, lines)
    local state, out = { lines = lines }, {}
    for i, chunk in ipairs(chunks) do
        out[#out + 1] = redactor:filter(state, chunk, i == #chunks)
    end
    return table.concat(out), out
end

local function sizes(parts)
    local list = {}
    for i, part in ipairs(parts) do list[i] = #part end
    return list
end

describe("redact", function()
    local redactor = redact.new({ KEY, SECRET })

    it("masks a credential with as many stars, so the length stays", function()
        local text = '{"error":{"message":"Incorrect API key provided: ' .. KEY .. '"}}'
        local masked = redactor:clean(text)
        assert.equal(#text, #masked)
        assert.is_nil(masked:find(KEY, 1, true))
        assert.truthy(masked:find(string.rep("*", #KEY), 1, true))
    end)

    it("masks every occurrence and every form an answer could carry", function()
        local escaped = SECRET:gsub("/", "\\/")
        local percent = SECRET:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)
        local lower = SECRET:gsub("[^%w%-%._~]", function(c) return string.format("%%%02x", c:byte()) end)
        assert.are_not.equal(percent, lower)
        local text = KEY .. " " .. KEY .. " " .. escaped .. " " .. percent .. " " .. lower
        local masked = redactor:clean(text)
        for _, form in ipairs({ KEY, escaped, percent, lower }) do
            assert.is_nil(masked:find(form, 1, true), form)
        end
    end)

    it("masks a credential percent-encoded with '/' kept, as Python's quote() and URL paths write it", function()
        for _, digits in ipairs({ "%%%02X", "%%%02x" }) do
            local form = SECRET:gsub("[^%w%-%._~/]", function(c) return string.format(digits, c:byte()) end)
            assert.truthy(form:find("/", 1, true))
            assert.is_nil(redactor:clean("GET /v1/" .. form .. "?x=1"):find(form, 1, true), form)
        end
    end)

    for offset = 0, 2 do
        it("masks a credential base64url-encoded inside a longer text, at offset " .. offset, function()
            -- "~" and "?" give base64 its "+" and "/", which base64url spells "-" and "_".
            local secret = "k3y~~~with???marks~?~?"
            local encoded = ngx.encode_base64(string.rep("p", offset) .. secret .. "trailing bytes")
            local url = encoded:gsub("[+/]", { ["+"] = "-", ["/"] = "_" })
            assert.are_not.equal(encoded, url)
            local masked = redact.new({ secret }):clean("echo " .. url)
            local back = masked:sub(6):gsub("%*", "A"):gsub("[-_]", { ["-"] = "+", ["_"] = "/" })
            assert.is_nil(ngx.decode_base64(back):find(secret, 1, true))
        end)
    end

    for offset = 0, 2 do
        it("masks a credential base64-encoded inside a longer text, at offset " .. offset, function()
            local encoded = ngx.encode_base64(string.rep("p", offset) .. KEY .. "trailing bytes")
            local masked = redactor:clean("echo " .. encoded)
            assert.truthy(masked:find("*", 1, true))
            -- Decoded with the stars read as "A": what is left of the key is not the key.
            local decoded = ngx.decode_base64((masked:sub(6):gsub("%*", "A")))
            assert.truthy(decoded)
            assert.is_nil(decoded:find(KEY, 1, true))
            assert.truthy(ngx.decode_base64(encoded):find(KEY, 1, true))  -- it was there before
        end)
    end

    it("masks a credential split across chunks at every point, in a stream and in a body", function()
        local text = "before " .. KEY .. " after\n"
        for _, lines in ipairs({ true, false }) do
            for cut = 1, #text - 1 do
                local whole = through(redactor, { text:sub(1, cut), text:sub(cut + 1) }, lines)
                assert.equal("before " .. string.rep("*", #KEY) .. " after\n", whole, "cut at " .. cut)
            end
        end
    end)

    it("passes the whole lines of a stream on at once and holds an open one", function()
        local _, parts = through(redactor, { 'data: {"x":1}\n\n', "data: [DO", "NE]\n\n", "" }, true)
        assert.same({ 'data: {"x":1}\n\n', "", "data: [DONE]\n\n", "" }, parts)
    end)

    it("holds back the same bytes whether or not a chunk ends in the start of a credential", function()
        -- The framing is an oracle if it depends on the credentials: compare a right and a wrong prefix.
        for _, lines in ipairs({ true, false }) do
            for _, pad in ipairs({ 0, 10, 5000 }) do
                local right = string.rep("A", pad) .. KEY:sub(1, -2)
                local wrong = string.rep("A", pad) .. string.rep("Z", #KEY - 1)
                local _, with_right = through(redactor, { right, "x tail\n", "" }, lines)
                local _, with_wrong = through(redactor, { wrong, "x tail\n", "" }, lines)
                assert.same(sizes(with_wrong), sizes(with_right))
            end
        end
    end)

    it("holds back at most HOLD bytes of a line that does not end", function()
        local long = string.rep("y", redact.HOLD + 100)
        local _, parts = through(redactor, { long, "" }, true)
        assert.same({ 100, redact.HOLD }, sizes(parts))
    end)

    it("lets everything out at the end, a partial credential included", function()
        assert.equal("ends with sk-org-4f", through(redactor, { "ends with sk-org-4f" }, true))
    end)

    it("changes nothing without credentials, and ignores ones too short to be one", function()
        local none = redact.new({})
        assert.equal("abc sk-", through(none, { "abc ", "sk-" }, false))
        assert.equal("a short value", redact.new({ "short", 42, nil }):clean("a short value"))
    end)

    it("masks a longer credential whole when it contains a shorter one", function()
        local both = redact.new({ "abcdefgh", "xxabcdefghyy" })
        assert.equal(string.rep("*", 12), both:clean("xxabcdefghyy"))
    end)

    it("tells whether a text holds a credential in any form", function()
        assert.is_true(redactor:holds("x-echo: " .. KEY))
        assert.is_true(redactor:holds(ngx.encode_base64("Bearer " .. KEY)))
        assert.is_false(redactor:holds("x-echo: sk-org-4f1c9e0000abc"))
        assert.is_false(redact.new({}):holds(KEY))
    end)

    it("masks what was held back again when the redactor was rebuilt with a credential fetched meanwhile", function()
        local before = redact.new({ KEY })
        local state = {}
        local fresh = "fresh-role-credential-after-refresh"
        local sent = before:filter(state, "tail " .. fresh, false)  -- held back: a body's last 4 KiB
        assert.equal("", sent)
        local after = redact.new({ KEY, fresh })  -- the task role's credentials were refreshed
        local rest = after:filter(state, "", true)
        assert.is_nil(rest:find(fresh, 1, true))
    end)

    it("masks again what it held back when the credential's own text has a star", function()
        -- "*" in a credential: masking one can make another appear, so held-back text is not taken as clean.
        local starred = redact.new({ "ab**cdefgh", "ab*cdefg" })
        assert.is_false(starred.starless)
        assert.is_true(redactor.starless)
        for _, chunks in ipairs({ { "ab*ab*cdefgcdefgh", "" }, { "ab*ab*cdefgcdefgh" } }) do
            assert.equal(starred:clean(starred:clean("ab*ab*cdefgcdefgh")), through(starred, chunks, false))
        end
    end)
end)
