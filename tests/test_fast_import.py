"""The provider fast-import path (aigw/fast_import.py) changes nothing but
speed: byte-identical stacks, the stock import as a safe fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aigw import fast_import
from tests import processes

ROOT = Path(__file__).resolve().parent.parent


def run_python(
    code_or_args: list[str], env_extra: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", **env_extra}
    return processes.run([sys.executable, *code_or_args], cwd=ROOT, env=env, timeout=timeout)


@pytest.mark.cli
def test_fast_and_stock_imports_synthesize_byte_identical_stacks(tmp_path: Path) -> None:
    fast = run_python(["-m", "bench.synth_all", "--outdir", str(tmp_path / "fast")], {})
    assert fast.returncode == 0, fast.stderr
    stock = run_python(
        ["-m", "bench.synth_all", "--outdir", str(tmp_path / "stock")], {fast_import.DISABLE_VARIABLE: "1"}
    )
    assert stock.returncode == 0, stock.stderr
    fast_files = sorted(p.relative_to(tmp_path / "fast") for p in (tmp_path / "fast").rglob("*") if p.is_file())
    stock_files = sorted(p.relative_to(tmp_path / "stock") for p in (tmp_path / "stock").rglob("*") if p.is_file())
    assert fast_files == stock_files
    stacks = [f for f in fast_files if f.name == "cdk.tf.json"]
    assert len(stacks) >= 4  # dev, prod and every example
    for relative in fast_files:
        assert (tmp_path / "fast" / relative).read_bytes() == (tmp_path / "stock" / relative).read_bytes(), relative


@pytest.mark.cli
def test_main_loads_only_a_few_dozen_provider_submodules() -> None:
    code = textwrap.dedent(
        """
        import os, sys, tempfile
        os.environ["CDKTF_OUTDIR"] = tempfile.mkdtemp()
        import main
        assert main.main() == 0
        loaded = [m for m in sys.modules if m.startswith("cdktf_cdktf_provider_aws.") and m.count(".") == 1]
        print(len(loaded))
        """
    )
    result = run_python(["-c", code], {})
    assert result.returncode == 0, result.stderr
    loaded = int(result.stdout.strip().splitlines()[-1])
    # The stack uses ~45 resource types (+ the _jsii registration); the stock import loads ~2,200.
    assert 20 < loaded < 100, loaded


def fake_package(root: Path, init: str, submodules: int) -> Path:
    package = root / fast_import.PACKAGE
    (package / "_jsii").mkdir(parents=True)
    (package / "_jsii" / "__init__.py").write_text("")
    for index in range(submodules):
        (package / f"res_{index}").mkdir()
        (package / f"res_{index}" / "__init__.py").write_text(f"VALUE = {index}\n")
    (package / "__init__.py").write_text(init)
    return package


GENERATED_SHAPE = "import sys\n__all__ = ['res_0']\nSTOCK_BODY_RAN = True\n"


def test_known_shape_is_trimmed_to_the_preamble(tmp_path: Path) -> None:
    imports = "".join(f"from . import res_{i}\n" for i in range(150))
    package = fake_package(tmp_path, GENERATED_SHAPE + imports, 150)
    trimmed = fast_import.trimmed_package_code(package / "__init__.py")
    assert trimmed is not None
    code, names = trimmed
    assert names == [f"res_{i}" for i in range(150)]
    namespace: dict[str, object] = {}
    exec(code, namespace)
    assert namespace["STOCK_BODY_RAN"] is True and "res_0" not in namespace


@pytest.mark.parametrize(
    "init",
    [
        GENERATED_SHAPE + "".join(f"from . import res_{i}\n" for i in range(150)) + "x = 1\n",  # code after imports
        GENERATED_SHAPE + "".join(f"from . import res_{i}\n" for i in range(10)),  # too few: not the bindings
        GENERATED_SHAPE + "from . import res_0\nfrom . import does_not_exist\n" * 60,  # missing subpackage
        "this is not python(\n",
    ],
)
def test_unexpected_shapes_are_not_trimmed(tmp_path: Path, init: str) -> None:
    package = fake_package(tmp_path, init, 150)
    assert fast_import.trimmed_package_code(package / "__init__.py") is None


def test_unexpected_shape_falls_back_to_the_stock_import_with_one_note(tmp_path: Path) -> None:
    init = GENERATED_SHAPE + "".join(f"from . import res_{i}\n" for i in range(150)) + "TAIL = 'ran'\n"
    fake_package(tmp_path, init, 150)
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from aigw import fast_import
        assert fast_import.install()
        import {fast_import.PACKAGE} as package
        from {fast_import.PACKAGE}.res_3 import VALUE
        print(package.TAIL, package.res_149.VALUE, VALUE)
        """
    )
    result = run_python(["-c", code], {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ran", "149", "3"]
    assert result.stderr.count("unexpected shape; using the stock (slow) import") == 1


def test_fast_path_keeps_attribute_access_to_submodules(tmp_path: Path) -> None:
    imports = "".join(f"from . import res_{i}\n" for i in range(150))
    fake_package(tmp_path, GENERATED_SHAPE + imports, 150)
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from aigw import fast_import
        assert fast_import.install()
        import {fast_import.PACKAGE} as package
        assert "{fast_import.PACKAGE}.res_7" not in sys.modules
        print(package.res_7.VALUE, package.STOCK_BODY_RAN)
        """
    )
    result = run_python(["-c", code], {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "True"]
    assert result.stderr == ""


def test_disable_variable_turns_the_fast_path_off() -> None:
    code = "from aigw import fast_import; print(fast_import.install())"
    assert run_python(["-c", code], {fast_import.DISABLE_VARIABLE: "1"}).stdout.strip() == "False"


def fake_js_package(root: Path, index: str, submodules: int) -> Path:
    lib = root / "node_modules" / "@cdktf" / "provider-aws" / "lib"
    for i in range(submodules):
        (lib / f"res-{i}").mkdir(parents=True)
        (lib / f"res-{i}" / "index.js").write_text(
            f"globalThis.loaded = (globalThis.loaded || 0) + 1; exports.VALUE = {i};\n"
        )
    (lib / "index.js").write_text(index)
    return lib / "index.js"


JS_HEADER = '"use strict";\n/**\n * header\n */\nObject.defineProperty(exports, "__esModule", { value: true });\n'


def run_node(index: Path) -> subprocess.CompletedProcess[str]:
    script = (
        f"const m = require({json.dumps(str(index))});"
        "const before = globalThis.loaded || 0; const v = m.res7.VALUE;"
        "console.log(before, v, globalThis.loaded, Object.keys(m).length);"
    )
    return processes.run(["node", "--require", fast_import.NODE_HOOK, "-e", script], timeout=60)


def test_node_hook_requires_submodules_only_when_used(tmp_path: Path) -> None:
    names = [f"res{i}" for i in range(150)]
    index = JS_HEADER + f"exports.{' = exports.'.join(names)} = void 0;\n"
    index += "".join(f'exports.res{i} = require("./res-{i}");\n' for i in range(150))
    index += "//# sourceMappingURL=data:application/json;base64,AAAA\n"
    result = run_node(fake_js_package(tmp_path, index, 150))
    assert result.returncode == 0, result.stderr
    # nothing loaded at require time, one submodule after one lookup, all 150 names still exported
    assert result.stdout.split() == ["0", "7", "1", "150"]
    assert result.stderr == ""


def test_node_hook_loads_an_unexpected_shape_eagerly_with_one_note(tmp_path: Path) -> None:
    index = JS_HEADER + "".join(f'exports.res{i} = require("./res-{i}");\n' for i in range(150))
    index += "exports.extra = 42;\n"
    result = run_node(fake_js_package(tmp_path, index, 150))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["150", "7", "150", "151"]
    assert result.stderr.count("unexpected shape; loading it eagerly") == 1


class _GeneratedStub:
    """Stands in for a binding's stub: its module looks like a generated package."""

    value: int


_GeneratedStub.__module__ = "cdktf_cdktf_provider_aws.some_resource"


def test_type_hint_memo_answers_repeated_calls_for_generated_stubs_from_its_memo() -> None:
    calls: list[tuple[object, tuple[object, ...], dict[str, object]]] = []

    def original(obj: object, *args: object, **kwargs: object) -> dict[str, object]:
        calls.append((obj, args, kwargs))
        return {"value": int}

    memoized = fast_import.memoized_type_hints(original)
    assert memoized(_GeneratedStub) == memoized(_GeneratedStub) == {"value": int}
    assert len(calls) == 1


def test_type_hint_memo_passes_any_other_signature_through_unchanged() -> None:
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def original(obj: object, *args: object, **kwargs: object) -> str:
        calls.append((args, kwargs))
        return "original"

    memoized = fast_import.memoized_type_hints(original)
    # Python 3.14 added a `format` keyword; positional namespaces exist since 3.5.
    assert memoized(_GeneratedStub, format="STRING") == "original"
    assert memoized(_GeneratedStub, None, None, True) == "original"
    assert memoized(int) == "original"
    assert calls == [((), {"format": "STRING"}), ((None, None, True), {}), ((), {})]


def test_importing_the_settings_leaves_the_interpreter_untouched() -> None:
    code = textwrap.dedent(
        """
        import os, sys, typing
        before = (list(sys.meta_path), os.environ.get("NODE_OPTIONS"), typing.get_type_hints)
        import aigw.settings, aigw.environments, aigw.docs, aigw.data_plane.render, aigw.data_plane.task
        aigw.environments.load_environments()
        after = (list(sys.meta_path), os.environ.get("NODE_OPTIONS"), typing.get_type_hints)
        print(before == after)
        """
    )
    # This process has installed the speed-up (its NODE_OPTIONS carry the hook): start clean.
    result = run_python(["-c", code], {"NODE_OPTIONS": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_install_is_what_patches_the_interpreter() -> None:
    # The counterpart of the test above: the same check sees install()'s changes.
    code = textwrap.dedent(
        """
        import os, sys, typing
        before = (len(sys.meta_path), os.environ.get("NODE_OPTIONS"), typing.get_type_hints)
        from aigw import fast_import
        fast_import.install()
        after = (len(sys.meta_path), os.environ.get("NODE_OPTIONS"), typing.get_type_hints)
        print([b != a for b, a in zip(before, after)])
        """
    )
    result = run_python(["-c", code], {"NODE_OPTIONS": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[True, True, True]"
