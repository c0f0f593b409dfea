-- SHA-256 and HMAC-SHA256 from the OpenSSL the nginx binary links
-- (OpenResty's, or Debian's libcrypto): the response cache's keys and the
-- guardrail calls' SigV4 signatures.
local ffi = require "ffi"

local format, concat = string.format, table.concat

local _M = {}

pcall(ffi.cdef, [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size, const EVP_MD *type,
               void *impl);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len, const unsigned char *d, size_t n,
                    unsigned char *md, unsigned int *md_len);
]])
local digest = ffi.new("unsigned char[32]")
local digest_size = ffi.new("unsigned int[1]")

local function hex(bytes)
    local out = {}
    for i = 0, 31 do out[i + 1] = format("%02x", bytes[i]) end
    return concat(out)
end

function _M.sha256_hex(text)
    if ffi.C.EVP_Digest(text, #text, digest, digest_size, ffi.C.EVP_sha256(), nil) ~= 1 then
        error("aigw: EVP_Digest failed")
    end
    return hex(digest)
end

-- The raw 32 bytes of HMAC-SHA256(key, text).
function _M.hmac_sha256(key, text)
    if ffi.C.HMAC(ffi.C.EVP_sha256(), key, #key, text, #text, digest, digest_size) == nil then
        error("aigw: HMAC failed")
    end
    return ffi.string(digest, 32)
end

function _M.hmac_sha256_hex(key, text)
    _M.hmac_sha256(key, text)
    return hex(digest)
end

return _M
