"""The data plane's Lua modules, each tested on its own (busted specs in
config/data-plane/spec/, run inside nginx with ngx_lua by tests/lua_specs.py).
The harness tests (test_data_plane.py, test_key_exfiltration.py,
test_gateway_contract.py) then prove the modules together, as deployed."""

from __future__ import annotations

import re
from pathlib import Path

from tests import lua_specs


def test_every_lua_spec_passes() -> None:
    result = lua_specs.run()
    failures = [block for block in re.split(r"\n(?=(?:not )?ok \d+)", result.stdout) if block.startswith("not ok")]
    assert result.returncode == 0 and not failures, "\n".join(failures) or result.stdout[-3000:] + result.stderr
    plan = re.search(r"^1\.\.(\d+)$", result.stdout, re.MULTILINE)
    assert plan and int(plan.group(1)) == result.stdout.count("\nok ") + result.stdout.startswith("ok ")


def test_a_failing_spec_fails_the_run(tmp_path: Path) -> None:
    # The runner must not turn busted's failure into nginx's success.
    (tmp_path / "planted_spec.lua").write_text('describe("planted", function() it("fails", function() '
                                               'assert.equal(1, 2) end) end)\n')  # fmt: skip
    result = lua_specs.run(["-o", "TAP", str(tmp_path)])
    assert result.returncode == 1 and "not ok 1 - planted fails" in result.stdout
