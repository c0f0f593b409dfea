"""The AI Gateway's constructs, settings and their loader.

Importing this package installs the provider fast-import path first, so every
entry point (main.py, cdktf synth, tests, benchmarks) gets it before any
provider binding is loaded; see modules/fast_import.py.
"""

from modules import fast_import

fast_import.install()
