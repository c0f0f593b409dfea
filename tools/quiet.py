"""Run a long command with its full output in a log file and a short account
on the terminal: ``python -m tools.quiet <log> -- <command> ...``.

cdktf prints the whole plan (the data plane's bundle included), spinner frames
as separate lines and Terraform's progress for every resource: hundreds of
kilobytes a user does not read. Here every byte goes to ``<log>`` (its path is
printed first); the terminal gets the lines that say what happened (plan
summary, apply or destroy result, errors and warnings), and when the command
fails, the last lines of the log. The exit status is the command's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import deque
from pathlib import Path

# Terminal control sequences (colours, cursor moves) and spinner frames.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|[\r\x07]")
_SPINNER = re.compile(r"^[\u2800-\u28ff]\s")
# Lines worth a user's eye: what the plan does, how it ended, what went wrong.
_SHOWN = re.compile(
    r"Plan: \d+ to add|No changes\.|Apply complete!|Destroy complete!|Error:|error:|\[ERROR\] (?!default - There are "
    r"some problems with the CLI configuration)|Warning: (?!Unable to open CLI configuration file)"
)
TAIL_LINES = 60


def clean(line: str) -> str:
    return _CONTROL.sub("", line).rstrip()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m tools.quiet <log file> -- <command> [args...]", file=sys.stderr)
        return 2
    log_path, command = Path(args[0]), args[2:]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    named = [Path(command[0]).name, *(arg for arg in command[1:3] if len(arg) < 60 and "\n" not in arg)]
    print(f"{' '.join(named)} ...: full output in {log_path}", flush=True)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    shown: set[str] = set()
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        assert process.stdout is not None
        try:
            for raw in process.stdout:
                text = raw.decode("utf-8", errors="replace")
                log.write(text)
                line = clean(text)
                if not line or _SPINNER.match(line):
                    continue
                tail.append(line)
                if _SHOWN.search(line) and line not in shown:
                    shown.add(line)
                    print(f"  {line.strip()}", flush=True)
            status = process.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the command too: let it finish its own way
            status = process.wait()
            print(f"interrupted; the log so far is in {log_path}", file=sys.stderr)
            return status or 130
    if status != 0:
        print(f"failed with exit status {status}; the last lines of {log_path}:", file=sys.stderr)
        for line in tail:
            print(f"  {line}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
