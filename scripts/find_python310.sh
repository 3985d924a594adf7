#!/usr/bin/env bash
# Prints the path of a Python 3.10 interpreter, or explains what to install.
# TFX 1.16 (and its ml-metadata / tfx-bsl wheels) is published for Python
# 3.9-3.10 only, so nothing newer will do.
set -u
is_310() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; }
candidates=()
command -v python3.10 >/dev/null 2>&1 && candidates+=("$(command -v python3.10)")
for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10.*/bin/python3.10 /root/.pyenv/versions/3.10.*/bin/python3.10; do
  [ -x "$p" ] && candidates+=("$p")
done
for p in "${candidates[@]}"; do
  if is_310 "$p"; then echo "$p"; exit 0; fi
done
cat >&2 <<'MSG'
error: Python 3.10 not found.
TFX 1.16 supports Python 3.9-3.10 only. Install Python 3.10, for example
  pyenv install 3.10.13          (then re-run make)
  apt-get install python3.10 python3.10-venv
and make sure `python3.10` is on PATH.
MSG
exit 1
