-- A refusal: what a rule decided, for the phase handler to send. Modules
-- return `nil, refusal.new(...)`; only the handler ends the request.
local _M = {}

-- status: HTTP status; rule: the rule's stable name (in the access log and
-- the body); message: for the client, built from constants and cleaned
-- text only (never a table, never a key).
function _M.new(status, rule, message)
    return { status = status, rule = rule, message = message }
end

-- The JSON body of a refusal: an OpenAI-style error naming the rule.
function _M.body(refusal)
    return { error = { message = refusal.message, type = "aigw_refused", rule = refusal.rule } }
end

return _M
