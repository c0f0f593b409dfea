"""The data plane's bundle packed for ECS: a deterministic tar.gz of its
files, its sha256 (pinned in the task definition), and the environment file
that carries it (an S3 object the task definition names in
`environmentFiles`; ECS reads it when it starts a task and sets its one
variable, the archive in base64)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass

from aigw.data_plane.contract import BUNDLE_KEY_PREFIX, BUNDLE_VARIABLE

# One environment variable holds the bundle, and Linux limits one variable
# (name=value) to 128 KiB (MAX_ARG_STRLEN); leave room.
MAX_ENCODED_BYTES = 120 * 1024
_EXECUTABLE = {"entrypoint.sh"}


@dataclass(frozen=True)
class Bundle:
    files: Mapping[str, bytes]
    archive: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.archive).hexdigest()

    @property
    def encoded(self) -> str:
        return base64.b64encode(self.archive).decode("ascii")

    @property
    def environment_file(self) -> str:
        """The .env file ECS reads: one VARIABLE=VALUE line (Docker's
        env-file format: no quotes, no escapes)."""
        return f"{BUNDLE_VARIABLE}={self.encoded}\n"

    @property
    def object_key(self) -> str:
        """Its S3 key: content-addressed, so a change is a new object and a new task definition."""
        return f"{BUNDLE_KEY_PREFIX}{self.sha256}.env"


def pack(files: Mapping[str, bytes]) -> Bundle:
    """A tar.gz of ``files`` that depends on their names and bytes only:
    sorted, no times, root-owned, fixed modes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        directories = sorted({"/".join(name.split("/")[:i]) for name in files for i in range(1, name.count("/") + 1)})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(files[name]), 0
            info.mode = 0o755 if name in _EXECUTABLE else 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=9, mtime=0, filename="") as archive:
        archive.write(raw.getvalue())
    bundle = Bundle(files=dict(files), archive=compressed.getvalue())
    if len(bundle.encoded) > MAX_ENCODED_BYTES:
        raise ValueError(
            f"the data plane's bundle is {len(bundle.encoded)} bytes in base64, over {MAX_ENCODED_BYTES}: "
            "one environment variable carries it"
        )
    return bundle


def unpack(archive: bytes) -> dict[str, bytes]:
    """The files of a bundle's archive (for checks and the harness)."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
    return files


def read_environment_file(text: str) -> dict[str, str]:
    """The variables of an environment file as ECS sets them (Docker's
    env-file rules: `#` comments and blank lines skipped, the value is
    everything after the first `=`, no quote handling)."""
    variables: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, separator, value = line.partition("=")
        if not separator:
            raise ValueError(f"not a VARIABLE=VALUE line: {line[:40]!r}")
        variables[name] = value
    return variables
