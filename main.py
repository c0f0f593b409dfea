#!/usr/bin/env python
"""cdktf app: one stack per environment file (``environments/*.toml``).

Every environment file is validated before any construct is built. On a bad
file, every problem is printed as ``<file>: <field>: <problem>``, the process
exits with status 2 and nothing is written (an existing cdktf.out is kept).
"""

from __future__ import annotations

import sys

from aigw.environments import ConfigError, load_environments

EXIT_BAD_CONFIG = 2


def main() -> int:
    try:
        environments = load_environments()
    except ConfigError as error:
        for line in error.lines:
            print(line, file=sys.stderr)
        print(f"{len(error.lines)} problem(s) found; nothing was synthesized.", file=sys.stderr)
        return EXIT_BAD_CONFIG

    # Only now: loading the provider bindings is the slow part. The speed-up
    # is installed explicitly, before the first binding is imported.
    from aigw import fast_import

    fast_import.install()
    from modules.stack import synthesize

    synthesize(environments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
