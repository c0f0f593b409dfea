local redact = require "aigw.redact"

local KEY = "sk-org-4f1c9e0000abcd"
local SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

local function through(redactor, chunks)
    local state, out = {}, {}
    for i, chunk in ipairs(chunks) do
        out[#out + 1] = redactor:filter(state, chunk, i == #chunks)
    end
    return table.concat(out), out
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

    it("masks every occurrence, and the JSON-escaped form of a secret with a slash", function()
        local escaped = SECRET:gsub("/", "\\/")
        local masked = redactor:clean(KEY .. " " .. KEY .. " " .. escaped)
        assert.is_nil(masked:find(KEY, 1, true))
        assert.is_nil(masked:find(escaped, 1, true))
    end)

    it("masks a credential split across chunks at every point", function()
        local text = "before " .. KEY .. " after"
        for cut = 1, #text - 1 do
            local whole = through(redactor, { text:sub(1, cut), text:sub(cut + 1) })
            assert.equal("before " .. string.rep("*", #KEY) .. " after", whole, "cut at " .. cut)
        end
    end)

    it("passes a chunk on at once unless its end could begin a credential", function()
        local _, parts = through(redactor, { 'data: {"x":1}\n\n', 'data: [DONE]\n\n' })
        assert.same({ 'data: {"x":1}\n\n', "data: [DONE]\n\n" }, parts)
        local _, held = through(redactor, { "text sk-o", "ther", "" })
        assert.same({ "text ", "sk-other", "" }, held)
    end)

    it("lets everything out at the end, a partial credential included", function()
        local whole = through(redactor, { "ends with sk-org-4f" })
        assert.equal("ends with sk-org-4f", whole)
    end)

    it("changes nothing without credentials, and ignores ones too short to be one", function()
        local none = redact.new({})
        assert.equal("abc sk-", through(none, { "abc ", "sk-" }))
        assert.equal("a short value", redact.new({ "short", 42, nil }):clean("a short value"))
    end)

    it("masks a longer credential whole when it contains a shorter one", function()
        local both = redact.new({ "abcdefgh", "xxabcdefghyy" })
        assert.equal(string.rep("*", 12), both:clean("xxabcdefghyy"))
    end)
end)
