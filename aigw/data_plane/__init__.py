"""The data plane in front of the gateway, as plain Python (no cdktf): what
it is (the contract both sides share, its policy, its configuration), how
its bundle is rendered from the environment's settings and packed, and the
task's container definitions. The construct that deploys it is
modules/data_plane.py; the rules themselves are Lua under
config/data-plane/lua/aigw/ (docs/data-plane.md).

- contract.py: ports, paths, timeouts, container and variable names.
- policy.py: routes, headers, configs, models, stored objects: what clients may send.
- config.py: the data plane of one environment (DataPlaneConfig) and its runtime joins.
- render.py: the bundle's files from a DataPlaneConfig (pure).
- bundle.py: the files packed, hashed, and as the environment file ECS reads.
- task.py: the task's container definitions (data plane, gateway, collector).
"""
