-- What every spec needs: the settings the bundle would ship for prod's policy
-- (rendered by tests/lua_specs.py into AIGW_SPEC_SETTINGS), with runtime
-- settings joined when a spec gives them.
local settings_loader = require "aigw.settings"

local _M = {}

function _M.settings(runtime_text)
    local path = os.getenv("AIGW_SPEC_SETTINGS")
    assert(path, "AIGW_SPEC_SETTINGS is not set: run the specs through tests/lua_specs.py")
    local settings, err = settings_loader.load(path, runtime_text)
    assert(settings, err)
    return settings
end

return _M
