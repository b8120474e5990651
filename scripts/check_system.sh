#!/usr/bin/env bash
# System prerequisites for sparsepipe's Python dependencies, checked before the venv is made.
# - Python >= 3.11
# - Debian's libusb-1.0-0, which open3d's wheel links against: installed when missing and running as root,
#   otherwise the exact command is printed and the set-up stops.
set -euo pipefail
py="${1:-python3}"
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "sparsepipe needs Python >= 3.11; '$py' is $("$py" --version 2>&1 || echo missing). Run: make PYTHON=python3.11 ..." >&2
  exit 1
fi
if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "Installing Debian's libusb-1.0-0 (needed by open3d) ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null
  else
    echo "open3d needs libusb-1.0-0, which is missing. Run: sudo apt-get install -y libusb-1.0-0" >&2
    exit 1
  fi
fi
