local refusal = require "aigw.refusal"

describe("refusal", function()
    it("is a status, a rule and a message", function()
        assert.same({ status = 403, rule = "provider", message = "m" }, refusal.new(403, "provider", "m"))
    end)

    it("has an OpenAI-style body naming the rule", function()
        assert.same({ error = { message = "m", type = "aigw_refused", rule = "route" } },
            refusal.body(refusal.new(404, "route", "m")))
    end)
end)
