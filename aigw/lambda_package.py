"""A Lambda function's deployment package, built deterministically from its
folder: the same files give the same bytes (sorted entries, a fixed time
and mode, no directory entries), so its hash changes exactly when the code
does, and a synth on another machine plans no change."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = ROOT / "lambdas"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Package:
    data: bytes

    @property
    def sha256_base64(self) -> str:
        """What Lambda reports as the code's hash (`source_code_hash`)."""
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def package(folder: Path) -> Package:
    """The folder's Python files (not tests, not caches) as a zip; refuses a folder without handler.py."""
    if not (folder / "handler.py").is_file():
        raise FileNotFoundError(f"{folder}: no handler.py to package")
    files = sorted(
        path for path in folder.rglob("*.py") if "__pycache__" not in path.parts and not path.name.startswith("test_")
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return Package(buffer.getvalue())


def package_file(name: str, built: Package) -> Path:
    """The package on disk for cdktf to copy into the stack's assets: named by its hash, written once, atomically."""
    directory = Path(tempfile.gettempdir()) / "aigw-lambda-packages"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{built.sha256}.zip"
    if not path.exists():
        partial = directory / f".{name}-{built.sha256}.{os.getpid()}"
        partial.write_bytes(built.data)
        partial.replace(path)
    return path
