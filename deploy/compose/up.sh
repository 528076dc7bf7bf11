#!/usr/bin/env bash
# Starts the CAS, the LAS and the Azure emulator with docker-compose, in the order they need:
# the LAS first (its platform key id is in its log), then the emulator (its MAA must trust that
# key; it writes its CA to a volume), then the CAS (which trusts that CA and the LAS).
#
#   eval "$(deploy/compose/up.sh [-p PROJECT])"
#
# Progress goes to stderr; stdout is `export` lines for what comes next (the sample's variables
# for the emulator, LAS_PLATFORM_KEY_ID — keep it set for later docker-compose commands of this
# project — and SCONE_CAS_KEY_HASH, the CAS key custos-run pins). Images: deploy/images/build.sh
# (CUSTOS_IMAGE_PREFIX, CUSTOS_IMAGE_TAG). COMPOSE overrides the compose command.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=
while [ $# -gt 0 ]; do
  case $1 in
    -p|--project-name) project=${2:?-p needs a name}; shift 2 ;;
    *) echo "up.sh: unknown argument $1 (usage: up.sh [-p PROJECT])" >&2; exit 2 ;;
  esac
done
if [ -z "${COMPOSE:-}" ]; then
  if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"; else COMPOSE=docker-compose; fi
fi
compose() { $COMPOSE ${project:+-p "$project"} -f "$here/services.yaml" -f "$here/emulator.yaml" "$@"; }
say() { echo "up.sh: $*" >&2; }

# wait_for SERVICE REGEX: prints the first match of REGEX in SERVICE's log; fails with the log
# when the container stops or 60 s pass.
wait_for() {
  local service=$1 regex=$2 deadline=$((SECONDS + 60)) match id
  id=$(compose ps -q "$service")
  while :; do
    match=$(docker logs "$id" 2>&1 | grep -Eo "$regex" | head -n1 || true)
    [ -n "$match" ] && { echo "$match"; return; }
    if [ "$(docker inspect -f '{{.State.Running}}' "$id" 2>/dev/null)" != true ] || [ $SECONDS -ge $deadline ]; then
      say "$service did not become ready (waited for /$regex/); its log:"
      docker logs "$id" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

started=$SECONDS
compose up -d las >&2
LAS_PLATFORM_KEY_ID=$(wait_for las 'platform key id [0-9a-f]{64}' | awk '{print $4}')
export LAS_PLATFORM_KEY_ID
say "las ready, platform key id $LAS_PLATFORM_KEY_ID"

compose up -d azure >&2
wait_for azure 'export MAA_PROVIDER=' >/dev/null
say "azure emulator ready"

compose up -d --no-deps cas >&2
key_hash=$(wait_for cas 'key_hash=[0-9a-f]{64}' | cut -d= -f2)
say "cas ready, key hash $key_hash ($((SECONDS - started)) s)"

sed -n 's/^\([A-Z_]*=.*\)$/export \1/p' "$here/emulator/sample.env"
echo "export LAS_PLATFORM_KEY_ID=$LAS_PLATFORM_KEY_ID"
echo "export SCONE_CAS_KEY_HASH=$key_hash"
