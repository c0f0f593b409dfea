local text = require "aigw.text"

describe("text.clean", function()
    it("keeps printable ASCII as it is", function()
        assert.equal("POST /v1/chat/completions ~!", text.clean("POST /v1/chat/completions ~!"))
    end)

    it("turns every byte outside printable ASCII into ?", function()
        assert.equal("a?b?c??d", text.clean("a\255b\nc\0\127d"))
        assert.equal("caf??", text.clean("caf\195\169"))
    end)

    it("cuts to 256 bytes, or to the length asked for", function()
        assert.equal(256, #text.clean(string.rep("x", 1000)))
        assert.equal("abc", text.clean("abcdef", 3))
    end)

    it("prints numbers and nothing of other values (no table address ever)", function()
        assert.equal("42", text.clean(42))
        assert.equal("", text.clean({}))
        assert.equal("", text.clean(nil))
        assert.equal("", text.clean(print))
        assert.equal("", text.clean(true))
    end)
end)
