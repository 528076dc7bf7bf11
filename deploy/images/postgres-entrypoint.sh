#!/bin/sh
# The custos/postgres image's entrypoint: PostgreSQL from Debian's package for the replicated
# CAS's store. POSIX sh with builtins only (the image has dash and PostgreSQL, nothing else).
#
# First start (no $PGDATA/PG_VERSION): initdb as the image's `postgres` user (C locale, UTF8),
# then, in single-user mode, the role POSTGRES_USER (LOGIN, the password read from
# POSTGRES_PASSWORD_FILE) and the database POSTGRES_DB that it owns. The superuser `postgres`
# has no password and so cannot log in over the network.
# Every start: pg_hba.conf is rewritten to accept only TLS connections with SCRAM-SHA-256
# passwords; the server listens on every address with TLS from POSTGRES_TLS_CERT_FILE and
# POSTGRES_TLS_KEY_FILE (the key owned by this user, mode 0600, as PostgreSQL requires);
# no Unix socket. Extra arguments go to `postgres` (e.g. -c max_connections=200).
#
#   POSTGRES_USER          default custos   the role the CAS logs in as
#   POSTGRES_DB            default custos   its database
#   POSTGRES_PASSWORD_FILE                  required on first start: one line, the password
#   POSTGRES_TLS_CERT_FILE default /etc/postgresql/tls/server.crt (PEM, the chain)
#   POSTGRES_TLS_KEY_FILE  default /etc/postgresql/tls/server.key
set -eu

fail() {
  echo "custos-postgres: $*" >&2
  exit 1
}

user=${POSTGRES_USER:-custos}
db=${POSTGRES_DB:-custos}
cert=${POSTGRES_TLS_CERT_FILE:-/etc/postgresql/tls/server.crt}
key=${POSTGRES_TLS_KEY_FILE:-/etc/postgresql/tls/server.key}
: "${PGDATA:?PGDATA is not set (the image sets it)}"

# Names go into SQL unquoted by the caller: only plain identifiers.
for name in "$user" "$db"; do
  case $name in
    '' | [!a-z_]* | *[!a-z0-9_]*)
      fail "POSTGRES_USER/POSTGRES_DB: expected a lower-case identifier ([a-z_][a-z0-9_]*), got '$name'" ;;
  esac
done
[ "$user" != postgres ] || fail "POSTGRES_USER: expected a role other than the superuser postgres, got 'postgres'"

# TLS is not optional: without a certificate and key the server does not start.
[ -r "$cert" ] || fail "TLS certificate: expected a readable file at $cert (POSTGRES_TLS_CERT_FILE)"
[ -r "$key" ] || fail "TLS key: expected a file at $key readable by the postgres user, uid 65533 (POSTGRES_TLS_KEY_FILE)"

# Written last by a first start that finished: a cluster without it is half made.
initialised=$PGDATA/custos-initialised
if [ -s "$PGDATA/PG_VERSION" ] && [ ! -e "$initialised" ]; then
  fail "$PGDATA holds a cluster whose first start did not finish (no $initialised): expected an empty data directory or a finished one; remove the volume and start again"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  file=${POSTGRES_PASSWORD_FILE:-}
  [ -n "$file" ] || fail "POSTGRES_PASSWORD_FILE: expected the file holding $user's password (first start), got nothing"
  [ -r "$file" ] || fail "POSTGRES_PASSWORD_FILE: expected a readable file, got '$file'"
  password=
  IFS= read -r password <"$file" || [ -n "$password" ] || fail "POSTGRES_PASSWORD_FILE $file: expected a password on its first line, got an empty file"
  [ ${#password} -ge 16 ] || fail "POSTGRES_PASSWORD_FILE $file: expected a password of at least 16 characters, got ${#password}"
  # The password goes into SQL between dollar quotes: it must not contain the quote.
  # shellcheck disable=SC2016  # the literal quote tag, not an expansion
  case $password in
    *'$custos_pw$'*) fail "POSTGRES_PASSWORD_FILE $file: the password contains \$custos_pw\$, which cannot be quoted" ;;
  esac

  echo "custos-postgres: initialising a cluster in $PGDATA (role $user, database $db)" >&2
  initdb -D "$PGDATA" -U postgres -E UTF8 --locale=C --auth=reject --no-instructions >&2
  # Single-user mode reads statements from standard input (a pipe: the password is never in
  # a file or an argument); statements that fail are not logged with their text. It goes on
  # after a failed statement and exits 0, so its errors are read from what it printed.
  errors=$(postgres --single -j -D "$PGDATA" -c log_min_error_statement=panic -c password_encryption=scram-sha-256 postgres 2>&1 >/dev/null <<EOF
CREATE ROLE "$user" LOGIN PASSWORD \$custos_pw\$$password\$custos_pw\$;

CREATE DATABASE "$db" OWNER "$user";

EOF
  ) || fail "creating role $user and database $db: postgres --single failed: $errors"
  password=
  case $errors in
    *ERROR:* | *FATAL:* | *PANIC:*) fail "creating role $user and database $db: expected no error, got: $errors" ;;
  esac
  : >"$initialised"
  echo "custos-postgres: role $user and database $db created" >&2
fi

# Only TLS, only SCRAM passwords; anything else finds no pg_hba.conf line and is refused.
printf '%s\n' \
  '# Written by the custos/postgres entrypoint at every start: TLS and SCRAM-SHA-256 only.' \
  'hostssl all all 0.0.0.0/0 scram-sha-256' \
  'hostssl all all ::/0 scram-sha-256' >"$PGDATA/pg_hba.conf"

exec postgres -D "$PGDATA" \
  -c listen_addresses='*' \
  -c unix_socket_directories= \
  -c ssl=on \
  -c ssl_cert_file="$cert" \
  -c ssl_key_file="$key" \
  -c ssl_min_protocol_version=TLSv1.2 \
  -c password_encryption=scram-sha-256 \
  -c log_connections=on \
  "$@"
