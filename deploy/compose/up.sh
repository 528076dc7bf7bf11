#!/usr/bin/env bash
# Starts the replicated CAS, the LAS and the Azure emulator with docker-compose, in the order
# they need: the secrets first, then PostgreSQL, the LAS (its platform key id is in its log),
# the emulator (its MAA must trust that key; it writes its CA to a volume), then the CAS
# replicas (which trust that CA and the LAS, and share the store).
#
#   eval "$(deploy/compose/up.sh [-p PROJECT])"
#
# Secrets, made on the first run only (a later run finds them in the volumes and keeps them):
#   cas-secrets   master.key (the replicas' shared master key, the CAS user's, 0400) and
#                 store-ca.pem (the CA of PostgreSQL's certificate)
#   postgres-tls  server.crt and server.key (the name `postgres`, from that CA; the CA's key is
#                 thrown away once it has signed) and password (the custos role's), the
#                 postgres user's, 0600
# They are written into the volumes with `docker cp` from a tar stream, so that each file has
# the owner and mode its reader requires, whoever runs this script.
#
# Progress goes to stderr; stdout is `export` lines for what comes next (the sample's variables
# for the emulator; LAS_PLATFORM_KEY_ID and CUSTOS_STORE_PASSWORD — keep both set for later
# docker-compose commands of this project; SCONE_CAS_KEY_HASH, the CAS key custos-run pins).
# Images: deploy/images/build.sh (CUSTOS_IMAGE_PREFIX, CUSTOS_IMAGE_TAG). COMPOSE overrides the
# compose command. Needs openssl and tar.
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

# The images' users: custos-cas runs as 65532, PostgreSQL as 65533 (deploy/images/build.sh).
cas_uid=65532 postgres_uid=65533

# volume_of CONTAINER PATH: the name of the volume mounted at PATH in CONTAINER.
volume_of() {
  docker inspect -f "{{range .Mounts}}{{if eq .Destination \"$2\"}}{{.Name}}{{end}}{{end}}" "$1"
}

# fill VOLUME IMAGE UID MODE DIR FILE...: copies DIR's FILEs into VOLUME owned by UID with MODE,
# through a container that is created and never started (the services mount it read-only).
fill() {
  local volume=$1 image=$2 uid=$3 mode=$4 dir=$5 helper
  shift 5
  helper=$(docker create -v "$volume:/fill" "$image")
  tar -C "$dir" --owner="$uid" --group="$uid" --numeric-owner --mode="$mode" -cf - "$@" \
    | docker cp - "$helper:/fill/" || { docker rm "$helper" >/dev/null; return 1; }
  docker rm "$helper" >/dev/null
}

# read_file CONTAINER PATH: the content of a file in a (created or running) container.
read_file() {
  docker cp "$1:$2" - 2>/dev/null | tar -xOf - 2>/dev/null
}

started=$SECONDS
# Created (not started) so that their volumes exist; existing containers are left as they are.
if [ -z "$(compose ps -q postgres)" ] || [ -z "$(compose ps -q cas)" ] || [ -z "$(compose ps -q cas-2)" ]; then
  compose up --no-start --no-deps postgres cas cas-2 >&2
fi
cas_id=$(compose ps -q cas)
postgres_id=$(compose ps -q postgres)
has_key=no
read_file "$cas_id" /etc/custos-cas/secrets/master.key >/dev/null && has_key=yes
password=$(read_file "$postgres_id" /etc/postgresql/tls/password || true)
if [ "$has_key" = yes ] && [ -n "$password" ]; then
  say "secrets: kept from an earlier run (volumes $(volume_of "$cas_id" /etc/custos-cas/secrets), $(volume_of "$postgres_id" /etc/postgresql/tls))"
elif [ "$has_key" = yes ] || [ -n "$password" ]; then
  # Making new ones would replace a master key that may seal a store: never.
  say "secrets: expected both the master key (volume $(volume_of "$cas_id" /etc/custos-cas/secrets)) and the database password (volume $(volume_of "$postgres_id" /etc/postgresql/tls)) or neither, found only the $([ "$has_key" = yes ] && echo "master key" || echo "password"); restore the missing one, or remove both volumes (docker-compose down -v) to start afresh"
  exit 1
else
  secrets=$(mktemp -d)
  trap 'rm -rf "$secrets"' EXIT
  (
    set -e
    umask 077
    cd "$secrets"
    { echo 'custos-cas master key v1'; openssl rand -base64 32; } >master.key
    openssl rand -hex 24 >password
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=custos compose PostgreSQL CA" -keyout ca.key -out store-ca.pem 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=postgres \
      -keyout server.key -out server.csr 2>/dev/null
    printf '%s\n' 'subjectAltName=DNS:postgres,DNS:localhost,IP:127.0.0.1' 'basicConstraints=critical,CA:FALSE' \
      'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' >server.ext
    openssl x509 -req -in server.csr -CA store-ca.pem -CAkey ca.key -CAcreateserial -days 825 \
      -extfile server.ext -out server.crt 2>/dev/null
    rm -f ca.key
  ) || { say "secrets: openssl failed"; exit 1; }
  fill "$(volume_of "$postgres_id" /etc/postgresql/tls)" "$(docker inspect -f '{{.Config.Image}}' "$postgres_id")" \
    "$postgres_uid" 0600 "$secrets" server.crt server.key password
  fill "$(volume_of "$cas_id" /etc/custos-cas/secrets)" "$(docker inspect -f '{{.Config.Image}}' "$cas_id")" \
    "$cas_uid" 0400 "$secrets" master.key
  fill "$(volume_of "$cas_id" /etc/custos-cas/secrets)" "$(docker inspect -f '{{.Config.Image}}' "$cas_id")" \
    "$cas_uid" 0444 "$secrets" store-ca.pem
  password=$(cat "$secrets/password")
  say "secrets: made a master key, a PostgreSQL CA, certificate and password"
fi
export CUSTOS_STORE_PASSWORD=$password

compose up -d --no-deps postgres >&2
wait_for postgres 'database system is ready to accept connections' >/dev/null
say "postgres ready"

compose up -d las >&2
LAS_PLATFORM_KEY_ID=$(wait_for las 'platform key id [0-9a-f]{64}' | awk '{print $4}')
export LAS_PLATFORM_KEY_ID
say "las ready, platform key id $LAS_PLATFORM_KEY_ID"

compose up -d --no-deps azure >&2
wait_for azure 'export MAA_PROVIDER=' >/dev/null
say "azure emulator ready"

# One replica first: it makes the TLS identity in the store; the second loads it.
compose up -d --no-deps cas >&2
key_hash=$(wait_for cas 'key_hash=[0-9a-f]{64}' | cut -d= -f2)
compose up -d --no-deps cas-2 >&2
key_hash_2=$(wait_for cas-2 'key_hash=[0-9a-f]{64}' | cut -d= -f2)
if [ "$key_hash" != "$key_hash_2" ]; then
  say "cas and cas-2 serve different TLS keys: expected one identity from the store, got $key_hash and $key_hash_2"
  exit 1
fi
say "cas and cas-2 ready, one key hash $key_hash ($((SECONDS - started)) s)"

sed -n 's/^\([A-Z_]*=.*\)$/export \1/p' "$here/emulator/sample.env"
echo "export LAS_PLATFORM_KEY_ID=$LAS_PLATFORM_KEY_ID"
echo "export CUSTOS_STORE_PASSWORD=$CUSTOS_STORE_PASSWORD"
echo "export SCONE_CAS_KEY_HASH=$key_hash"
