"""Application plumbing of the AI Gateway stacks, apart from the constructs
(modules/): the settings schema and the environment loader, version
constraints, the README generator, the provider import speed-up, and what
runs inside a gateway task (aigw/data_plane/: the data plane's bundle and
the container definitions), as plain Python without cdktf.

Importing this package changes nothing in the interpreter; entry points that
synthesize install the import speed-up themselves (aigw.fast_import.install()).
"""
