local keys = require "aigw.keys"

local function env(values)
    return function(name) return values[name] end
end

describe("keys.load", function()
    it("reads each org key from its variable", function()
        local loaded = keys.load({ openai = "OPENAI_API_KEY", ["azure-openai"] = "AZURE_API_KEY" },
            env({ OPENAI_API_KEY = "sk-proj-abc_DEF-1", AZURE_API_KEY = "0123456789abcdef" }))
        assert.same({ openai = "sk-proj-abc_DEF-1", ["azure-openai"] = "0123456789abcdef" }, loaded)
    end)

    it("refuses a missing or empty key", function()
        assert.same({ nil, "OPENAI_API_KEY is not set" }, { keys.load({ openai = "OPENAI_API_KEY" }, env({})) })
        assert.same({ nil, "OPENAI_API_KEY is not set" },
            { keys.load({ openai = "OPENAI_API_KEY" }, env({ OPENAI_API_KEY = "" })) })
    end)

    for _, bad in ipairs({ "sk key", "sk\n", "sk\"", "sk$x", "sk;x", "\tsk" }) do
        it("refuses a key a provider never issues: " .. bad:gsub("%c", "?"), function()
            local loaded, err = keys.load({ openai = "OPENAI_API_KEY" }, env({ OPENAI_API_KEY = bad }))
            assert.is_nil(loaded)
            assert.equal("OPENAI_API_KEY has characters a provider API key never has", err)
        end)
    end
end)
