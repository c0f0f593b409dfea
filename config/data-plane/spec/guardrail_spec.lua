-- The guardrail's pure parts: what text is checked, the verdict of an
-- ApplyGuardrail answer, masking in place, and SigV4's pieces. The harness
-- (tests/test_guardrails.py) runs the calls against a mock ApplyGuardrail
-- that verifies each signature with botocore.
local cjson = require "cjson.safe"
local crypto = require "aigw.crypto"
local guardrail = require "aigw.guardrail"

local function hex(bytes)
    return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

describe("crypto.hmac_sha256", function()
    it("is HMAC-SHA256 (RFC 4231, test case 2)", function()
        assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            crypto.hmac_sha256_hex("Jefe", "what do ya want for nothing?"))
    end)

    it("derives SigV4's signing key as AWS's documented example does", function()
        local key = crypto.hmac_sha256("AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215")
        key = crypto.hmac_sha256(key, "us-east-1")
        key = crypto.hmac_sha256(key, "iam")
        key = crypto.hmac_sha256(key, "aws4_request")
        assert.equal("f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d", hex(key))
    end)
end)

describe("guardrail.request_text", function()
    local function text(json) return guardrail.request_text(cjson.decode(json)) end
    local function lines(checked)
        local found = {}
        for line in checked:gmatch("[^\n]+") do found[line] = true end
        return found
    end

    it("reads every message's text, string or parts, and the system prompt, messages in their order", function()
        local checked = text('{"model":"gpt-4o","system":"be terse","messages":[{"role":"user","content":"hello"},'
            .. '{"role":"user","content":[{"type":"text","text":"world"}]}]}')
        local found = lines(checked)
        assert.is_true(found["be terse"] and found.hello and found.world)
        assert.truthy(checked:find("hello\n", 1, true) < checked:find("world", 1, true))
    end)

    it("checks every string and every key, whatever field a client puts text in", function()
        local found = lines(text('{"model":"m","metadata":{"note":"hidden words","type":"in a type"},"tools":[{'
            .. '"type":"function","function":{"name":"f","description":"a tool","parameters":{"type":"object",'
            .. '"properties":{"status":{"type":"string","description":"in a schema"}}}}}],'
            .. '"messages":[{"role":"user","content":"hi","name":"a name"}],"id":"in an id","a key chosen":1}'))
        for _, wanted in ipairs({ "hidden words", "in a type", "a tool", "in a schema", "a name", "in an id",
                                  "a key chosen" }) do
            assert.is_true(found[wanted], wanted)
        end
    end)

    it("leaves out only binary the provider reads as binary: base64 image sources and data URLs", function()
        local checked = text('{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":'
            .. '"data:image/png;base64,QUJDRA=="}},{"type":"image","source":{"type":"base64","media_type":'
            .. '"image/png","data":"RUZHSA=="}}]}]}')
        assert.is_nil(checked:find("QUJDRA", 1, true))
        assert.is_nil(checked:find("RUZHSA", 1, true))
    end)

    it("checks text dressed as a data URL, and a text document's data", function()
        assert.truthy(text('{"messages":[{"role":"user","content":"data:;base64, forbidden words"}]}')
            :find("forbidden words", 1, true))
        assert.truthy(text('{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text",'
            .. '"media_type":"text/plain","data":"plain words"}}]}]}'):find("plain words", 1, true))
        assert.truthy(text('{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":'
            .. '"data:text/plain;base64,d29yZHM= and words"}}]}]}'):find("and words", 1, true))
    end)

    it("refuses what it cannot read: files, audio, binary documents, token ids, deep nesting", function()
        for _, case in ipairs({
            { '{"messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"JVBER"}}]}]}', "a file or audio" },
            { '{"input":[{"role":"user","content":[{"type":"input_file","file_data":"JVBER"}]}]}', "a file or audio" },
            { '{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"UklG",'
                .. '"format":"wav"}}]}]}', "a file or audio" },
            { '{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64",'
                .. '"media_type":"application/pdf","data":"JVBER"}}]}]}', "a document (PDF, URL or file)" },
            { '{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":'
                .. '"https://example.com/a.pdf"}}]}]}', "a document (PDF, URL or file)" },
            { '{"model":"m","prompt":[101,102]}', "a prompt as token ids" },
            { '{"model":"m","input":[[101,102]]}', "a prompt as token ids" },
            { string.rep("[", 120) .. '"x"' .. string.rep("]", 120), "nested too deep" },
        }) do
            local checked, why = text(case[1])
            assert.is_nil(checked, case[1])
            assert.equal(case[2], why)
        end
    end)
end)

describe("guardrail.stream_texts", function()
    it("joins a stream's generated text per choice, so a word split across events is checked whole", function()
        local events = {
            'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"forbid"}}]}',
            'data: {"id":"c","choices":[{"index":1,"delta":{"content":"other"}}]}',
            'data: {"id":"c","choices":[{"index":0,"delta":{"content":"den"},"finish_reason":null}]}',
            "data: [DONE]", "",
        }
        local texts = guardrail.stream_texts(table.concat(events, "\n\n"))
        assert.equal("forbidden", texts[1])
        assert.equal("other", texts[2])
    end)

    it("keeps other strings of an event out of the joined text (Azure's filter results between the pieces)", function()
        local function chunk(content)
            return 'data: {"choices":[{"index":0,"delta":{"content":"' .. content .. '"},"content_filter_results":'
                .. '{"hate":{"filtered":false,"severity":"safe"}}}]}\n\n'
        end
        local texts = guardrail.stream_texts(chunk("forbid") .. chunk("den"))
        assert.equal("forbidden", texts[1])
    end)

    it("reads Anthropic's content block deltas and the Responses API's", function()
        local body = 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
            .. '{"type":"text_delta","text":"Hel"}}\n\nevent: content_block_delta\ndata: {"type":'
            .. '"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}\n\n'
        assert.equal("Hello", guardrail.stream_texts(body)[1])
        local responses = 'data: {"type":"response.output_text.delta","item_id":"msg_1","output_index":0,'
            .. '"content_index":0,"delta":"Hel"}\n\ndata: {"type":"response.output_text.delta","item_id":"msg_1",'
            .. '"output_index":0,"content_index":0,"delta":"lo"}\n\n'
        assert.equal("Hello", guardrail.stream_texts(responses)[1])
    end)

    it("refuses a stream with an event it cannot read, or an answer with no event at all", function()
        assert.is_nil(guardrail.stream_texts('data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {not json\n\n'))
        assert.is_nil(guardrail.stream_texts('{"choices":[{"message":{"content":"a JSON answer"}}]}'))
        assert.same({}, guardrail.stream_texts(""))
    end)
end)

describe("guardrail.verdict", function()
    it("passes NONE", function()
        assert.same({ action = "none" }, guardrail.verdict({ action = "NONE", assessments = {} }))
    end)

    it("blocks on any BLOCKED finding, whatever its policy, even beside anonymized ones", function()
        local answer = { action = "GUARDRAIL_INTERVENED", assessments = { {
            sensitiveInformationPolicy = { piiEntities = { { type = "EMAIL", match = "a@b.co", action = "ANONYMIZED" } } },
            someNewPolicy = { findings = { { action = "BLOCKED" } } },
        } } }
        assert.equal("blocked", guardrail.verdict(answer).action)
    end)

    it("anonymizes when every finding was anonymized, with Bedrock's tags", function()
        local answer = { action = "GUARDRAIL_INTERVENED", assessments = { { sensitiveInformationPolicy = {
            piiEntities = { { type = "EMAIL", match = "a@b.co", action = "ANONYMIZED" },
                            { type = "PHONE", match = "555-0100", action = "ANONYMIZED" } },
            regexes = { { name = "ticket id", match = "T-1", action = "ANONYMIZED" } } } } } }
        local verdict = guardrail.verdict(answer)
        assert.equal("anonymize", verdict.action)
        local tags = {}
        for _, mask in ipairs(verdict.masks) do tags[mask.match] = mask.tag end
        assert.same({ ["a@b.co"] = "{EMAIL}", ["555-0100"] = "{PHONE}", ["T-1"] = "{ticketid}" }, tags)
    end)

    it("masks beside findings the guardrail took no action on (they neither block nor mask)", function()
        local answer = { action = "GUARDRAIL_INTERVENED", assessments = { {
            sensitiveInformationPolicy = { piiEntities = { { type = "EMAIL", match = "a@b.co", action = "ANONYMIZED" } } },
            contentPolicy = { filters = { { type = "INSULTS", confidence = "LOW", action = "NONE" } } },
        } } }
        assert.same({ action = "anonymize", masks = { { match = "a@b.co", tag = "{EMAIL}" } } },
            guardrail.verdict(answer))
    end)

    it("blocks when one anonymized finding names no match, even beside one that does", function()
        local answer = { action = "GUARDRAIL_INTERVENED", assessments = { { sensitiveInformationPolicy = {
            piiEntities = { { type = "EMAIL", match = "a@b.co", action = "ANONYMIZED" },
                            { type = "PHONE", action = "ANONYMIZED" } } } } } }
        assert.equal("blocked", guardrail.verdict(answer).action)
    end)

    it("blocks an intervention it cannot apply, and refuses an answer that is not a verdict", function()
        assert.equal("blocked", guardrail.verdict({ action = "GUARDRAIL_INTERVENED", assessments = {} }).action)
        local anonymized_without_match = { action = "GUARDRAIL_INTERVENED", assessments = { {
            sensitiveInformationPolicy = { piiEntities = { { type = "EMAIL", action = "ANONYMIZED" } } } } } }
        assert.equal("blocked", guardrail.verdict(anonymized_without_match).action)
        assert.is_nil(guardrail.verdict({ action = "MAYBE" }))
        assert.is_nil(guardrail.verdict("NONE"))
    end)
end)

describe("guardrail.mask", function()
    local function json_texts(bytes)
        local document = cjson.decode(bytes)
        return document and { guardrail.request_text(document) } or nil
    end

    it("replaces every match in place, longest first", function()
        local masks = { { match = "b.co", tag = "{X}" }, { match = "a@b.co", tag = "{EMAIL}" } }
        local masked = guardrail.mask('{"content":"mail a@b.co or a@b.co"}', masks, json_texts)
        assert.equal('{"content":"mail {EMAIL} or {EMAIL}"}', masked)
    end)

    it("gives up (the caller blocks) on a match JSON spells differently", function()
        assert.is_nil(guardrail.mask('{"content":"say \\"hi\\""}', { { match = 'say "hi"', tag = "{X}" } }, json_texts))
        -- An escaped spelling of the match: not found in the bytes, still in the text.
        assert.is_nil(guardrail.mask('{"content":"a\\u0040b.co"}', { { match = "a@b.co", tag = "{E}" } }, json_texts))
    end)

    it("gives up on a stream that split a match across events", function()
        local body = 'data: {"choices":[{"index":0,"delta":{"content":"a@b"}}]}\n\n'
            .. 'data: {"choices":[{"index":0,"delta":{"content":".co"}}]}\n\n'
        assert.is_nil(guardrail.mask(body, { { match = "a@b.co", tag = "{EMAIL}" } }, guardrail.stream_texts))
    end)
end)

describe("guardrail.authorization", function()
    it("signs the host, date, content type and session token, over the body's hash", function()
        local credentials = { access_key_id = "AKIDEXAMPLE", secret_access_key = "secret", session_token = "tok" }
        local header = guardrail.authorization(credentials, "us-east-1", "bedrock-runtime.us-east-1.amazonaws.com",
            "/guardrail/abc/version/1/apply", "{}", "20261206T010203Z")
        assert.truthy(header:find("^AWS4%-HMAC%-SHA256 Credential=AKIDEXAMPLE/20261206/us%-east%-1/bedrock/aws4_request, "
            .. "SignedHeaders=content%-type;host;x%-amz%-date;x%-amz%-security%-token, Signature=%x+$"))
        local other = guardrail.authorization(credentials, "us-east-1", "bedrock-runtime.us-east-1.amazonaws.com",
            "/guardrail/abc/version/1/apply", "{ }", "20261206T010203Z")
        assert.are_not.equal(header, other)
    end)

    it("writes SigV4's date from nginx's UTC time", function()
        assert.equal("20261206T010203Z", guardrail.amz_date("2026-12-06 01:02:03"))
    end)
end)
