-- The limits' arithmetic and their use of the store, with a store stand-in
-- that runs each script's logic in Lua (the harness, tests/test_team_limits.py,
-- runs the real scripts on a real redis-server over TLS).
local limits = require "aigw.limits"

-- 2026-12-05 10:30:15 UTC.
local NOW = 1796466615

describe("limits.keys", function()
    it("puts every key of a team under its hash tag, by minute and by period", function()
        local keys = limits.keys("search", NOW, "day")
        local minute = math.floor(NOW / 60)
        assert.same({
            rate = "aigw:{search}:rpm:" .. minute,
            last_rate = "aigw:{search}:rpm:" .. (minute - 1),
            inflight = "aigw:{search}:inflight",
            budget = "aigw:{search}:tokens:20261205",
        }, keys)
        assert.equal("aigw:{search}:tokens:202612", limits.keys("search", NOW, "month").budget)
    end)

    it("names the team's keys after the team alone", function()
        assert.are_not.equal(limits.keys("a", NOW).rate, limits.keys("b", NOW).rate)
        assert.equal(limits.keys("a", NOW).rate, limits.keys("a", NOW + 1).rate)
    end)
end)

describe("limits.period_left", function()
    it("counts to midnight UTC for a day", function()
        assert.equal(13 * 3600 + 29 * 60 + 45, limits.period_left(NOW, "day"))
    end)

    it("counts to the first of next month for a month", function()
        assert.equal(26 * 86400 + 13 * 3600 + 29 * 60 + 45, limits.period_left(NOW, "month"))
    end)

    it("rolls a December month over into January", function()
        local last_second = 1798761599  -- 2026-12-31 23:59:59 UTC
        assert.equal(1, limits.period_left(last_second, "month"))
        assert.equal(1, limits.period_left(last_second, "day"))
    end)
end)

describe("limits.rate_retry_after", function()
    it("waits for the next minute when this minute alone is full", function()
        assert.equal(45, limits.rate_retry_after(10, 10, 0, 15000))
    end)

    it("waits until last minute's share has slid far enough", function()
        -- 10 a minute, 4 now, 12 last minute, 15 s in: 12 * 45/60 + 4 = 13 > 9; room once 12 * x/60 <= 5.
        local wait = limits.rate_retry_after(10, 4, 12, 15000)
        assert.equal(20, wait)
        local into = 15000 + wait * 1000
        assert.is_true(12 * (60000 - into) / 60000 + 4 + 1 <= 10)
    end)

    it("is never less than a second", function()
        assert.equal(1, limits.rate_retry_after(10, 0, 0, 0))
    end)
end)

describe("limits.bound", function()
    local budget = { unknown_usage_tokens = 4096 }

    it("is the output asked for, times the answers, plus the input estimated from the body", function()
        assert.equal(512 * 3 + 250, limits.bound(budget, 512, 3, 1000))
        assert.equal(4096 + 1, limits.bound(budget, nil, nil, 3))
    end)
end)

describe("limits.tokens_to_count", function()
    it("counts the usage the answer reported, whatever the status", function()
        assert.equal(30, limits.tokens_to_count(10, 20, 900, true, 200))
        assert.equal(10, limits.tokens_to_count(10, nil, 900, true, 499))
    end)

    it("never counts unknown usage as zero once the provider may have worked", function()
        for _, status in ipairs({ 200, 408, 499, 500, 502, 504 }) do
            assert.equal(900, limits.tokens_to_count(nil, nil, 900, true, status))
        end
    end)

    it("counts nothing when the gateway was not called or the answer was a refusal", function()
        assert.equal(0, limits.tokens_to_count(nil, nil, 900, false, 413))
        assert.equal(0, limits.tokens_to_count(nil, nil, 900, false, 502))
        for _, status in ipairs({ 400, 401, 403, 404, 429 }) do
            assert.equal(0, limits.tokens_to_count(nil, nil, 900, true, status))
        end
    end)
end)

describe("limits.crossed_alert", function()
    local budget = { tokens = 1000, alert_at_percent = 80 }

    it("is true for the one request that takes the total past the threshold", function()
        assert.is_true(limits.crossed_alert(budget, 800, 50))
        assert.is_true(limits.crossed_alert(budget, 900, 150))
    end)

    it("is false before and after it", function()
        assert.is_false(limits.crossed_alert(budget, 799, 50))
        assert.is_false(limits.crossed_alert(budget, 900, 50))
    end)
end)
