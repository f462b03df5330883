#!/bin/sh
# Entry point of the Python services (seed, Locust): installs requirements.txt
# into the shared /venv volume when it changed, then runs the command.
set -eu
want=$(sha256sum /app/requirements.txt | cut -d' ' -f1)
if [ "$(cat /venv/.stamp 2>/dev/null || true)" != "$want" ]; then
  echo "installing requirements.txt into /venv (first start only)"
  python -m venv /venv
  /venv/bin/pip install --quiet --disable-pip-version-check -r /app/requirements.txt
  echo "$want" > /venv/.stamp
fi
PATH=/venv/bin:$PATH
export PATH
exec "$@"
