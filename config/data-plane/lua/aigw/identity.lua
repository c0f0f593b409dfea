-- Who is calling: the client id of the token the load balancer validated,
-- and the team it belongs to. The load balancer has already checked the
-- token's signature, issuer, expiry and scope (the tasks admit traffic from
-- the load balancer alone); this only reads its claims. Nothing else in a
-- request names a client or a team.
local cjson = require "cjson.safe"
local refusal = require "aigw.refusal"

local type, gsub, rep = type, string.gsub, string.rep
local decode_base64 = ngx.decode_base64

local _M = {}

local BEARER = "^[Bb]earer +([%w_%-]+)%.([%w_%-]+)%.[%w_%-]*$"
local CLIENT_ID = "^%w+$"  -- Cognito app client ids
local MAX_CLIENT_ID = 128

local NO_TOKEN = refusal.new(401, "identity", "a request must carry the token the load balancer validated")

-- The claims of a bearer JWT, or nil.
function _M.claims(authorization)
    if type(authorization) ~= "string" then return nil end
    local _, payload = authorization:match(BEARER)
    if not payload then return nil end
    payload = gsub(gsub(payload, "-", "+"), "_", "/")
    local padding = #payload % 4
    if padding == 1 then return nil end
    if padding > 0 then payload = payload .. rep("=", 4 - padding) end
    local decoded = decode_base64(payload)
    if not decoded then return nil end
    local claims = cjson.decode(decoded)
    return type(claims) == "table" and claims or nil
end

-- The client id of an Authorization header, or false. A client sends the
-- same token until it expires: what a header says is remembered per worker
-- (at most MAX_REMEMBERED headers, forgotten all at once past that; the
-- decoding is a function of the header alone).
local MAX_REMEMBERED = 1000
local MAX_REMEMBERED_BYTES = 4 * 1024 * 1024
local remembered, remembered_count, remembered_bytes = {}, 0, 0

local function client_id_of(authorization)
    local claims = _M.claims(authorization)
    local client_id = claims and claims.client_id
    if type(client_id) ~= "string" or #client_id > MAX_CLIENT_ID or not client_id:find(CLIENT_ID) then
        return false
    end
    return client_id
end

-- { client_id = ..., team = ... (nil when the client has no team) } of the
-- request's Authorization header, or nil and the refusal.
function _M.resolve(authorization, teams)
    if type(authorization) ~= "string" then return nil, NO_TOKEN end
    local client_id = remembered[authorization]
    if client_id == nil then
        client_id = client_id_of(authorization)
        if remembered_count >= MAX_REMEMBERED or remembered_bytes + #authorization > MAX_REMEMBERED_BYTES then
            remembered, remembered_count, remembered_bytes = {}, 0, 0
        end
        remembered[authorization] = client_id
        remembered_count, remembered_bytes = remembered_count + 1, remembered_bytes + #authorization
    end
    if not client_id then return nil, NO_TOKEN end
    return { client_id = client_id, team = teams[client_id] }
end

return _M
