"""Run the data plane's Lua unit tests (config/data-plane/spec/*_spec.lua,
busted) inside nginx with ngx_lua, as the code runs in the image: the
modules use ngx.re, ngx.decode_base64 and cjson, which exist only there.
OpenResty's `resty` command does the same; Debian has no `resty`, so this
starts nginx in the foreground with one process and runs busted in a timer
(no request), and busted's exit status is nginx's.

The specs read a settings.json rendered from prod's policy
(AIGW_SPEC_SETTINGS), so they exercise the same tables the bundle ships.

    .venv/bin/python -m tests.lua_specs [busted arguments]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from aigw.data_plane.config import AzureTarget, DataPlaneConfig, TeamLimits
from aigw.data_plane.render import LUA_DIR, SOURCE_DIR, settings_document
from tests import processes

SPEC_DIR = SOURCE_DIR / "spec"
BUSTED_LUA = Path("/usr/share/lua/5.1")
TIMEOUT_SECONDS = 120
MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so", "/usr/lib/nginx/modules/ngx_http_lua_module.so")

# The settings the specs run against: JWT auth on, every org key, Azure and Bedrock (prod's shape).
SPEC_CONFIG = DataPlaneConfig(
    org_keys=("openai", "anthropic", "google", "azure"),
    azure=AzureTarget("example-openai", "gpt-4o", "2024-10-21"),
    bedrock_region="us-east-1",
    environment="spec",
    # The teams the specs' runtime settings name (none counted in a store: limits_spec.lua gives its own).
    teams={"search": TeamLimits(max_tokens=4096), "billing-eu": TeamLimits(), "default": TeamLimits()},
)


def lua_cpath() -> str:
    """Where Debian keeps the Lua 5.1 C modules busted needs (lfs, term, system)."""
    found = sorted(Path("/usr/lib").glob("*/lua/5.1/lfs.so"))
    if not found:
        raise RuntimeError("lua-filesystem for Lua 5.1 is not installed: run `make system-deps`")
    return f"{found[0].parent}/?.so;;"


def missing() -> list[str]:
    needed = [*MODULES, str(BUSTED_LUA / "busted" / "runner.lua")]
    return [path for path in needed if not Path(path).exists()]


def nginx_config(workdir: Path, arguments: list[str]) -> str:
    busted_args = json.dumps(["busted", *arguments])  # a JSON array is a valid Lua table constructor here
    return f"""
{"".join(f"load_module {module};" + chr(10) for module in MODULES)}
master_process off;
daemon off;
worker_processes 1;
error_log stderr error;
pid {workdir}/nginx.pid;
env AIGW_SPEC_SETTINGS;
events {{ worker_connections 16; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    lua_package_path "{LUA_DIR}/?.lua;{SPEC_DIR}/?.lua;{BUSTED_LUA}/?.lua;{BUSTED_LUA}/?/init.lua;;";
    lua_package_cpath "{lua_cpath()}";
    init_worker_by_lua_block {{
        ngx.timer.at(0, function()
            local argv = require("cjson").decode([==[{busted_args}]==])
            local arg = {{ [0] = argv[1] }}
            for i = 2, #argv do arg[i - 1] = argv[i] end
            rawset(_G, "arg", arg)
            -- busted exits by itself when a spec fails; it returns when all pass.
            local ok, err = pcall(require("busted.runner"), {{ standalone = false }})
            if ok then os.exit(0) end
            io.stderr:write("busted did not finish: ", tostring(err), "\\n")
            os.exit(99)
        end)
    }}
}}
"""


def run(arguments: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """busted over the spec directory (TAP output unless ``arguments`` say otherwise)."""
    absent = missing()
    if absent:
        raise RuntimeError(f"{', '.join(absent)} not installed: run `make system-deps`")
    with tempfile.TemporaryDirectory(prefix="aigw-lua-specs-") as tmp:
        workdir = Path(tmp)
        settings = workdir / "settings.json"
        settings.write_text(json.dumps(settings_document(SPEC_CONFIG)))
        config = workdir / "nginx.conf"
        config.write_text(nginx_config(workdir, arguments or ["-o", "TAP", str(SPEC_DIR)]))
        return processes.run(
            ["nginx", "-p", f"{workdir}/", "-c", str(config)],
            cwd=workdir,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "AIGW_SPEC_SETTINGS": str(settings)},
            timeout=TIMEOUT_SECONDS,
        )


if __name__ == "__main__":
    result = run(sys.argv[1:] or None)
    print(result.stdout, end="")
    print(result.stderr, end="", file=sys.stderr)
    sys.exit(result.returncode)
