#!/usr/bin/env bash
# Print the directory of a local Terraform provider mirror holding hashicorp/aws
# (the layout `terraform providers mirror` writes:
# <dir>/<host>/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_*),
# or nothing. Used when TF_PLUGIN_DIR is not set, by `make deploy`/`destroy`
# and by the tests (tests/conftest.py); air-gapped users set TF_PLUGIN_DIR themselves.
set -uo pipefail
for root in /opt /usr/local /usr/share "$HOME" /; do
  [ -d "$root" ] || continue
  provider=$(find "$root" -xdev \( -path /proc -o -path /sys -o -path '*/node_modules' -o -path '*/.venv' \) -prune \
    -o -type f -name 'terraform-provider-aws_*' -path '*/hashicorp/aws/*' -print -quit 2>/dev/null)
  if [ -n "$provider" ]; then
    dir=$provider
    for _ in 1 2 3 4 5 6; do dir=$(dirname "$dir"); done
    echo "$dir"
    exit 0
  fi
done
exit 0
