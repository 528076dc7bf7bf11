#!/usr/bin/env bash
# Runs Microsoft's Azure SDKs for Python against the emulator.
#
#   run.sh PATH/TO/custos-azure-emulator
#
# Python: $PYTHON (default python3) with requirements.txt installed. The emulator listens on
# loopback ports the kernel picks and is stopped when the suite ends.
set -euo pipefail

emulator=${1:?usage: run.sh PATH/TO/custos-azure-emulator}
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d)
pid=

cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$python" "$here/fixtures.py" "$work"
"$emulator" --config "$work/config.yaml" --ca-file "$work/ca.pem" >"$work/env" 2>"$work/emulator.log" &
pid=$!

for _ in $(seq 1 300); do
    grep -q '^export REQUESTS_CA_BUNDLE=' "$work/env" 2>/dev/null && break
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "the emulator exited:" >&2
        cat "$work/emulator.log" >&2
        exit 1
    fi
    sleep 0.1
done
grep -q '^export REQUESTS_CA_BUNDLE=' "$work/env" || { echo "the emulator did not start" >&2; cat "$work/emulator.log" >&2; exit 1; }

# shellcheck disable=SC1091
source "$work/env"
export CONFORMANCE_WORK=$work
status=0
(cd "$here" && "$python" -m pytest -v -p no:cacheprovider test_conformance.py) || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- emulator log ---" >&2
    tail -n 50 "$work/emulator.log" >&2
fi
exit "$status"
