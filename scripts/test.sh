#!/usr/bin/env bash
# The test command: installs what the tests need, runs ruff and mypy, then the whole suite inside a
# network namespace that has only loopback, so no test packet can leave 127.0.0.1.
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not slow" tests/platform).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

missing=()
for tool in chromium espeak-ng sox; do command -v "$tool" >/dev/null || missing+=("$tool"); done
# English test speech for the ASR tests: festival's text2wave with the slt voice.
command -v text2wave >/dev/null || missing+=(festival)
[ -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] || missing+=(festvox-us-slt-hts)
command -v unshare >/dev/null || missing+=(util-linux)
command -v ip >/dev/null || missing+=(iproute2)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)  # records tests on PostgreSQL
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

"$PY" -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== ruff"; "$PY" -m ruff check .
echo "== mypy"; "$PY" -m mypy
echo "== pytest (loopback-only network namespace)"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
exec $SUDO unshare -n sh -c 'ip link set lo up && exec "$0" -m pytest "$@"' "$PY" "$@"
