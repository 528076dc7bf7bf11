# shellcheck shell=bash disable=SC2154  # work, target: set by deploy/test.sh, which sources this
# The images and the sample's flow on docker-compose, sourced by deploy/test.sh (which defines
# step, pass, fail, skip, check, on_exit, $work, $target; helm.sh's render for the chart check).
#
# Containers talk over the project's network by service name (cas, cas-2, postgres, las, azure,
# the emulator's alias emulator.vault.azure.net); the host
# reaches them through ports published on 127.0.0.1 (any free port), as a user would.

compose_tests() {
  # Global: the exit handlers use them after this function has returned.
  tag=test-$$-$RANDOM
  project=custos-deploy-test-$$
  here=deploy/compose
  export CUSTOS_IMAGE_TAG=$tag CUSTOS_IMAGE_PREFIX=custos
  export CAS_CLIENT_API_PUBLISH=127.0.0.1: CAS_ENCLAVE_API_PUBLISH=127.0.0.1: API_PUBLISH=127.0.0.1:
  export CAS2_CLIENT_API_PUBLISH=127.0.0.1: CAS2_ENCLAVE_API_PUBLISH=127.0.0.1:
  if [ -z "${COMPOSE:-}" ]; then
    if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"; else COMPOSE=docker-compose; fi
  fi
  export COMPOSE
  compose() { $COMPOSE -p "$project" -f $here/services.yaml -f $here/emulator.yaml -f $here/api.yaml "$@"; }
  cli() { compose run --rm -T cli "$@"; }

  step "images: deploy/images/build.sh --profile ${CUSTOS_DEPLOY_PROFILE:-release} --tag $tag"
  on_exit "docker images --filter 'reference=custos/*:$tag' -q | sort -u | xargs -r docker rmi -f"
  local build_started=$SECONDS
  deploy/images/build.sh --profile "${CUSTOS_DEPLOY_PROFILE:-release}" --tag "$tag" | tee "$work/build.out"
  echo "(images built in $((SECONDS - build_started)) s)"
  export REST_API_MRENCLAVE
  REST_API_MRENCLAVE=$(sed -n 's/^REST_API_MRENCLAVE=//p' "$work/build.out")
  images_tests

  step "chart configuration in the real images"
  chart_config_tests
  las_secret_key_tests

  step "compose: up (deploy/compose/up.sh): postgres, las, azure emulator, two CAS replicas"
  on_exit "compose down -v --remove-orphans --timeout 2; docker ps -aq --filter label=com.docker.compose.project=$project | xargs -r docker rm -f"
  local up_env up_started=$SECONDS
  up_env=$(deploy/compose/up.sh -p "$project")
  eval "$up_env"
  pass "up.sh: postgres, las, azure emulator, cas and cas-2 ready in $((SECONDS - up_started)) s (LAS key $LAS_PLATFORM_KEY_ID)"
  local cas_id cas2_id
  cas_id=$(compose ps -q cas)
  cas2_id=$(compose ps -q cas-2)
  check "cas-2 serves the identity cas made (same key hash, from the store)" \
    grep -q "key_hash=$SCONE_CAS_KEY_HASH" <(docker logs "$cas2_id" 2>&1 | grep 'client API ready')
  check "cas /healthz from the host says simulation" \
    grep -q '"simulation":true' <(curl -sSk --max-time 5 "https://$(compose port cas 8081)/healthz")
  check "cas-2 /healthz from the host answers 200" \
    test "$(curl -sSk --max-time 5 -o /dev/null -w '%{http_code}' "https://$(compose port cas-2 8081)/healthz")" = 200
  local again
  again=$(deploy/compose/up.sh -p "$project" 2>"$work/up-again.err")
  cat "$work/up-again.err"
  check "up.sh again: the secrets kept from the first run" grep -q "secrets: kept from an earlier run" "$work/up-again.err"
  check "... the same password and the same CAS key" bash -c "grep -qx 'export CUSTOS_STORE_PASSWORD=$CUSTOS_STORE_PASSWORD' <<<'$again' && grep -qx 'export SCONE_CAS_KEY_HASH=$SCONE_CAS_KEY_HASH' <<<'$again'"
  store_guard_tests
  chart_replica_tests

  step "compose: the sample's policies through the CLI container, across the replicas"
  # The replicas as one CAS: attested and pinned together, the list becomes the CLI's default
  # CAS; custos-run gets the list too (SCONE_CAS_ADDR). --cas NAME sends a request to one.
  local replicas=cas,cas-2
  cli cas attest "$replicas" --only-for-testing-trust-any --only-for-testing-debug --only-for-testing-ignore-signer >"$work/attest.out"
  cat "$work/attest.out"
  check "custos cas attest cas,cas-2 (simulated CAS, testing flags): both attested, one key" grep -q "attested and pinned" "$work/attest.out"
  check "the CLI pinned the key the CAS logged, for both replicas" \
    test "$(cli cas list | grep -c "key_hash=$SCONE_CAS_KEY_HASH")" -ge 2
  export CAS_NAMESPACE=azure-integration-$RANDOM$RANDOM$RANDOM PYTHON_SESSION_NAME=demo SCONE_CAS_ADDR=$replicas
  check "custos session create --cas cas --use-env namespace.template.yml" \
    cli session create --cas cas --use-env /templates/namespace.template.yml
  cli session create --cas cas-2 --use-env /templates/session.template.yml >"$work/session.out"
  check "custos session create --cas cas-2 --use-env session.template.yml (in the namespace cas made)" \
    grep -q "^name: $CAS_NAMESPACE/demo$" "$work/session.out"
  local session_hash
  session_hash=$(sed -n 's/^hash: //p' "$work/session.out")
  check "cas reads the session cas-2 wrote, same hash" \
    grep -q "^$session_hash" <(cli session verify --cas cas --use-env /templates/session.template.yml 2>&1)

  step "compose: the app without attestation"
  local status=0
  SCONE_CONFIG_ID='' compose run --rm -T api >"$work/unattested.out" 2>&1 || status=$?
  cat "$work/unattested.out"
  check "unattested app exits non-zero" test "$status" -ne 0
  check "... saying it started without attestation" grep -q "without attestation" "$work/unattested.out"
  check "... and naming the missing certificate" grep -q "/tls/flask.crt" "$work/unattested.out"

  step "compose: the app attested (SCONE_CAS_ADDR=$replicas)"
  export SCONE_CONFIG_ID=$CAS_NAMESPACE/$PYTHON_SESSION_NAME/rest-api
  attested_app_tests

  step "compose: cas killed in the middle of the flow; the flow completes through cas-2"
  docker kill "$cas_id" >/dev/null
  check "cas is down (docker kill)" test "$(docker inspect -f '{{.State.Running}}' "$cas_id")" = false
  check "the running app keeps serving (its secrets came at start)" secret_ok
  check "custos cas health (the default CAS, $replicas) answers through cas-2" cli cas health
  PYTHON_SESSION_NAME=after-kill cli session create --use-env /templates/session.template.yml >"$work/after-kill.out"
  check "custos session create (the default CAS, $replicas) creates a session while cas is down" \
    grep -q "^name: $CAS_NAMESPACE/after-kill$" "$work/after-kill.out"
  export SCONE_CONFIG_ID=$CAS_NAMESPACE/after-kill/rest-api
  compose up -d --no-deps --force-recreate api >/dev/null 2>&1
  check "a new attested app starts with SCONE_CAS_ADDR=$replicas while cas is down (custos-run → cas-2 → MAA emulator → Key Vault emulator)" wait_for_app
  check "... attested under the session made after the kill" grep -q "$SCONE_CONFIG_ID attested" <(docker logs "$(compose ps -q api)" 2>&1)
  check "... and serves the secret" secret_ok
  check "no secret value in the replicas', LAS's, app's or database's log" \
    bash -c "! { docker logs $cas_id; docker logs $cas2_id; docker logs $(compose ps -q las); docker logs $(compose ps -q api); docker logs $(compose ps -q postgres); } 2>&1 | grep -q -e a13f688c788626380ae1209e31e664891fc19dcdd0cfa29c27ca7e6e16b83a95 -e $CUSTOS_STORE_PASSWORD"

  step "compose: cas restarted joins with the same identity and sees what cas-2 wrote"
  compose start cas >/dev/null 2>&1
  local deadline=$((SECONDS + 60))
  until [ "$(docker logs "$cas_id" 2>&1 | grep -c 'client API ready')" -ge 2 ] || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
  check "cas ready again, same key" grep -q "key_hash=$SCONE_CAS_KEY_HASH" <(docker logs "$cas_id" 2>&1 | grep 'client API ready' | tail -n1)
  check "cas reads the session made through cas-2 while it was down" \
    grep -q "^name: $CAS_NAMESPACE/after-kill$" <(cli session read --cas cas "$CAS_NAMESPACE/after-kill" 2>&1)

  step "compose: the database stopped and started again"
  store_outage_tests

  step "compose: both replicas stopped, a new app cannot start"
  compose stop cas cas-2 >/dev/null 2>&1
  status=0
  compose run --rm -T api >"$work/no-cas.out" 2>&1 || status=$?
  cat "$work/no-cas.out"
  check "app start without a CAS fails" test "$status" -ne 0
  check "... naming both replicas" bash -c "grep -q 'CAS at cas:18765' '$work/no-cas.out' && grep -q 'CAS at cas-2:18765' '$work/no-cas.out'"
  check "... and the app never ran" bash -c "! grep -q 'listening on' '$work/no-cas.out'"
}

# The shared store's guards: the database's certificate must name the host the URL names, and a
# replica with another master key is refused. A replica started by hand on the project's
# network, as compose starts them, with its own secrets volume.
store_guard_tests() {
  local other=custos-cas-other-$$ volume=custos-cas-other-$$ network postgres_name
  network=$(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' "$(compose ps -q cas)")
  # The container's own name resolves on the network too, but is not in the certificate.
  postgres_name=$(docker inspect -f '{{.Name}}' "$(compose ps -q postgres)")
  postgres_name=${postgres_name#/}
  on_exit "docker rm -f $other; docker volume rm $volume"
  mkdir -p "$work/other-key"
  { echo 'custos-cas master key v1'; openssl rand -base64 32; } >"$work/other-key/master.key"
  docker cp "$(compose ps -q cas):/etc/custos-cas/secrets/store-ca.pem" "$work/other-key/store-ca.pem"
  docker volume create "$volume" >/dev/null
  # other_replica HOST: runs a replica with the other key against the database at
  # HOST until it exits (60 s at most); its log in $work/other.out, "running exit-code" in
  # $other_status.
  other_replica() {
    docker rm -f "$other" >/dev/null 2>&1 || true
    docker create --name "$other" --network "$network" -v "$volume:/etc/custos-cas/secrets" \
      -v "$PWD/$here/cas.toml:/etc/custos-cas/cas.toml:ro" \
      -e CUSTOS_CAS_STORE="postgres://custos:$CUSTOS_STORE_PASSWORD@$1:5432/custos?sslmode=verify-full" \
      -e CUSTOS_CAS_STORE_CA=/etc/custos-cas/secrets/store-ca.pem -e CUSTOS_CAS_MASTER_KEY_FILE=/etc/custos-cas/secrets/master.key \
      "custos/cas:$tag" --config /etc/custos-cas/cas.toml >/dev/null
    tar -C "$work/other-key" --owner=65532 --group=65532 --numeric-owner --mode=0400 -cf - master.key store-ca.pem \
      | docker cp - "$other:/etc/custos-cas/secrets/"
    docker start "$other" >/dev/null
    local deadline=$((SECONDS + 60))
    until [ "$(docker inspect -f '{{.State.Running}}' "$other")" = false ] || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
    docker logs "$other" >"$work/other.out" 2>&1
    tail -n 2 "$work/other.out"
    other_status=$(docker inspect -f '{{.State.Running}} {{.State.ExitCode}}' "$other")
  }
  other_replica "$postgres_name"
  check "a replica given the database as $postgres_name, a name not in its certificate, does not start (running, exit code: $other_status)" \
    bash -c "[[ '$other_status' == false* && '$other_status' != 'false 0' ]]"
  check "... naming the certificate's names as the reason" grep -qiE 'certificate.*(name|NotValidForName)|NotValidForName' "$work/other.out"
  other_replica postgres
  check "a replica with another master key is refused at start-up (running, exit code: $other_status)" \
    bash -c "[[ '$other_status' == false* && '$other_status' != 'false 0' ]]"
  check "... saying the master key does not open the store, without either key" bash -c \
    "grep -q 'master key does not open this store' '$work/other.out' && ! grep -qF \"\$(sed -n 2p '$work/other-key/master.key')\" '$work/other.out'"
}

# The database down and back: /healthz answers 503 (the readiness probe's signal) while it is
# down, 200 and requests served again once it is back.
store_outage_tests() {
  local healthz
  healthz="https://$(compose port cas-2 8081)/healthz"
  compose stop postgres >/dev/null 2>&1
  local code deadline=$((SECONDS + 30))
  until code=$(curl -sSk --max-time 5 -o "$work/healthz.json" -w '%{http_code}' "$healthz"); [ "$code" = 503 ] || [ $SECONDS -ge $deadline ]; do sleep 0.5; done
  cat "$work/healthz.json"; echo
  check "postgres stopped: cas-2 /healthz answers 503" test "$code" = 503
  check '... {"status":"store unavailable"}' grep -q '"status":"store unavailable"' "$work/healthz.json"
  local status=0
  cli session read --cas cas-2 "$CAS_NAMESPACE" >"$work/outage-read.out" 2>&1 || status=$?
  cat "$work/outage-read.out"
  check "... and a request through cas-2 fails with 503 store_unavailable" \
    bash -c "[ $status -ne 0 ] && grep -q '503 store_unavailable' '$work/outage-read.out'"
  compose start postgres >/dev/null 2>&1
  deadline=$((SECONDS + 60))
  until code=$(curl -sSk --max-time 5 -o /dev/null -w '%{http_code}' "$healthz"); [ "$code" = 200 ] || [ $SECONDS -ge $deadline ]; do sleep 0.5; done
  check "postgres back: cas-2 /healthz answers 200 again" test "$code" = 200
  # The connections each replica held across the restart are dead: the first request must not
  # fail on one of them, at either replica (cas was not asked while the database was down).
  local replica
  for replica in cas-2 cas; do
    status=0
    PYTHON_SESSION_NAME=after-outage-$replica cli session create --cas "$replica" --use-env /templates/session.template.yml \
      >"$work/after-outage.out" 2>&1 || status=$?
    cat "$work/after-outage.out"
    check "postgres back: the first write through $replica succeeds" test "$status" = 0
  done
}

# The images: what they contain and how they start.
images_tests() {
  local image size
  for image in cas las rest-api-sample cli azure-emulator postgres; do
    size=$(docker image inspect -f '{{.Size}}' "custos/$image:$tag")
    check "image custos/$image:$tag exists ($((size / 1000000)) MB)" test "$size" -gt 0
  done
  check "rest-api-sample image: entrypoint custos-run rest-api-sample, non-root" test \
    "$(docker image inspect -f '{{json .Config.Entrypoint}} {{.Config.User}}' "custos/rest-api-sample:$tag")" = '["custos-run","rest-api-sample"] 65532:65532'
  # The label must be the measurement of the binary that is really in the image.
  local container
  container=$(docker create "custos/rest-api-sample:$tag")
  docker cp "$container:/usr/local/bin/rest-api-sample" "$work/rest-api-sample" && docker rm "$container" >/dev/null
  chmod 0755 "$work/rest-api-sample"
  check "io.custos.mrenclave label = custos mrenclave of the image's rest-api-sample" test \
    "$(docker run --rm -v "$work/rest-api-sample:/probe:ro" "custos/cli:$tag" mrenclave /probe)" = "$REST_API_MRENCLAVE"
  check "label = build.sh's REST_API_MRENCLAVE" test \
    "$(docker image inspect -f '{{index .Config.Labels "io.custos.mrenclave"}}' "custos/rest-api-sample:$tag")" = "$REST_API_MRENCLAVE"
  check "no shell in the images" bash -c "! docker run --rm --entrypoint /bin/sh custos/cas:$tag -c true >/dev/null 2>&1"
  check "postgres image: Debian's PostgreSQL, runs as postgres (uid 65533)" test \
    "$(docker image inspect -f '{{json .Config.Entrypoint}} {{.Config.User}} {{index .Config.Labels "io.custos.postgresql"}}' "custos/postgres:$tag")" \
    = "[\"/bin/sh\",\"/usr/local/bin/custos-postgres\"] 65533:65533 $(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -n1)"
}

# The cas chart's rendered cas.toml and generated master key, run in the CAS image as the
# StatefulSet runs them (root without capabilities, read-only root, key file 0400).
chart_config_tests() {
  if [ ! -s "$work/rendered/sample-cas.yaml" ]; then
    skip "chart configuration in the image: run deploy/test.sh helm compose to render it first"
    return
  fi
  "$target/venv-deploy/bin/python" - "$work/rendered/sample-cas.yaml" "$work/chart" <<'EOF'
import base64, os, sys, yaml
out = sys.argv[2]
os.makedirs(out + "/key")
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "ConfigMap":
        open(out + "/cas.toml", "w").write(doc["data"]["cas.toml"])
    if doc and doc["kind"] == "Secret":
        with open(out + "/key/master.key", "wb") as f:
            f.write(base64.b64decode(doc["data"]["master.key"]))
        os.chmod(out + "/key/master.key", 0o400)
EOF
  local name=custos-chart-check-$$ volume=custos-chart-check-$$ port
  on_exit "docker rm -f $name; docker volume rm $volume"
  docker volume create "$volume" >/dev/null
  # The key reaches the volume through docker cp, so that it is root's with mode 0400 as a
  # Secret file is.
  docker create --name "$name" --user 0:0 --cap-drop ALL --security-opt no-new-privileges --read-only \
    --tmpfs /tmp --tmpfs /var/lib/custos-cas:mode=0755 \
    -v "$work/chart/cas.toml:/etc/custos-cas/cas.toml:ro" -v "$volume:/etc/custos-cas/master-key" \
    -p 127.0.0.1::8081 "custos/cas:$tag" --config /etc/custos-cas/cas.toml >/dev/null
  docker cp "$work/chart/key/master.key" "$name:/etc/custos-cas/master-key/master.key"
  docker start "$name" >/dev/null
  local deadline=$((SECONDS + 30))
  until docker logs "$name" 2>&1 | grep -q 'client API ready' || [ $SECONDS -ge $deadline ] \
    || [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]; do sleep 0.2; done
  docker logs "$name" 2>&1 | tail -n 5
  check "custos-cas starts with the chart's cas.toml and master key" grep -q 'client API ready' <(docker logs "$name" 2>&1)
  check "... using the Secret's master key" grep -q 'master key loaded.*/etc/custos-cas/master-key/master.key' <(docker logs "$name" 2>&1)
  port=$(docker port "$name" 8081/tcp | head -n1)
  check "... and answers /healthz" grep -q '"status"' <(curl -sSk --max-time 5 "https://$port/healthz")
}

# The las chart's platformKey.existingSecret: a key made as its README says, in a read-only
# directory, as a Secret volume is; the LAS must sign with it, not make its own.
las_secret_key_tests() {
  mkdir -p "$work/las-key"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/las-key/platform-key.pem" 2>/dev/null
  chmod 0444 "$work/las-key/platform-key.pem"
  local name=custos-las-check-$$ first second
  on_exit "docker rm -f $name"
  key_id() {
    docker run -d --name "$name" --read-only --cap-drop ALL -v "$work/las-key:/var/lib/custos-las:ro" "custos/las:$tag" >/dev/null
    local deadline=$((SECONDS + 20))
    until docker logs "$name" 2>&1 | grep -q 'platform key id' || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
    docker logs "$name" 2>&1 | grep -Eo 'platform key id [0-9a-f]{64}' | awk '{print $4}'
    docker rm -f "$name" >/dev/null
  }
  first=$(key_id)
  second=$(key_id)
  check "las signs with a shared key from a read-only Secret-like mount (same id twice: ${first:-none})" \
    test -n "$first" -a "$first" = "$second"
}

wait_for_app() {
  local id deadline=$((SECONDS + 60))
  id=$(compose ps -q api)
  until docker logs "$id" 2>&1 | grep -q 'listening on https' || [ $SECONDS -ge $deadline ] \
    || [ "$(docker inspect -f '{{.State.Running}}' "$id")" != true ]; do sleep 0.2; done
  docker logs "$id" 2>&1 | tail -n 5
  docker logs "$id" 2>&1 | grep -q 'listening on https'
}

# The Key Vault's certificate `flask`, fetched from the emulator as any Azure client would:
# a token from Entra ID, then the certificate's secret from Key Vault.
vault_certificate() {
  local entra vault token emulator=emulator.vault.azure.net
  entra=$(compose port azure 9443)
  vault=$(compose port azure 9444)
  docker cp "$(compose ps -q azure):/run/custos-azure/ca.pem" "$work/azure-ca.pem"
  token=$(curl -sS --fail --cacert "$work/azure-ca.pem" --connect-to "$emulator:9443:$entra" \
    "https://$emulator:9443/$AZURE_TENANT_ID/oauth2/v2.0/token" -d grant_type=client_credentials \
    --data-urlencode "client_id=$AZURE_CLIENT_ID" --data-urlencode "client_secret=$AZURE_CLIENT_SECRET" \
    --data-urlencode "scope=https://vault.azure.net/.default" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  curl -sS --fail --cacert "$work/azure-ca.pem" --connect-to "$emulator:9444:$vault" -H "Authorization: Bearer $token" \
    "${AKV_VAULT%/}/secrets/$AKV_CERT_SECRET_NAME?api-version=7.4" \
    | python3 -c 'import json, re, sys; print(re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", json.load(sys.stdin)["value"], re.S).group(0))' \
    >"$work/flask.crt"
}

# GET /secret as the sample's README does, trusting only the vault's certificate; checks the JSON.
secret_ok() {
  local api_port
  api_port=$(compose port api 4996 | cut -d: -f2)
  curl -sS --max-time 10 --cacert "$work/flask.crt" --resolve "rest-api.scone.sample:$api_port:127.0.0.1" \
    "https://rest-api.scone.sample:$api_port/secret" >"$work/secret.json" || return 1
  cat "$work/secret.json"; echo
  python3 - "$work/secret.json" <<'EOF'
import json, sys
body = json.load(open(sys.argv[1]))
assert set(body) == {"access_timestamp", "secret"}, body.keys()
assert isinstance(body["access_timestamp"], float), body["access_timestamp"]
assert body["secret"] == "a13f688c788626380ae1209e31e664891fc19dcdd0cfa29c27ca7e6e16b83a95", "wrong secret"
EOF
}

attested_app_tests() {
  compose up -d --no-deps api >/dev/null 2>&1
  check "attested app starts and listens (custos-run → CAS → MAA emulator → Key Vault emulator)" wait_for_app
  check "custos-run says it was attested" grep -q "$SCONE_CONFIG_ID attested" <(docker logs "$(compose ps -q api)" 2>&1)
  vault_certificate
  check "GET /secret returns the Key Vault secret over the Key Vault certificate" secret_ok
  check "the quote went through MAA (emulator) and the values through Key Vault (emulator)" emulator_was_used

  # The same app under a session that names another measurement: denied, saying why.
  local status=0 wrong=0000000000000000000000000000000000000000000000000000000000000000
  PYTHON_SESSION_NAME=wrong-mrenclave REST_API_MRENCLAVE=$wrong \
    cli session create --use-env /templates/session.template.yml >/dev/null
  SCONE_CONFIG_ID=$CAS_NAMESPACE/wrong-mrenclave/rest-api compose run --rm -T api >"$work/denied.out" 2>&1 || status=$?
  cat "$work/denied.out"
  check "app under a session with another mrenclave is refused" test "$status" -ne 0
  check "... naming the expected and the actual measurement" \
    bash -c "grep -q '$wrong' '$work/denied.out' && grep -q '$REST_API_MRENCLAVE' '$work/denied.out'"
  check "... and the app never ran" bash -c "! grep -q 'listening on' '$work/denied.out'"
}

# The emulator's counters: MAA attested and Key Vault served reads (values a direct path would not).
emulator_was_used() {
  local maa
  maa=$(compose port azure 9445)
  curl -sS --fail --cacert "$work/azure-ca.pem" --connect-to "emulator.vault.azure.net:9445:$maa" \
    https://emulator.vault.azure.net:9445/_emulator/stats | python3 -c '
import json, sys
stats = json.load(sys.stdin)
print("emulator:", {k: stats.get(k) for k in ("maa_attestations", "keyvault_reads", "tokens_issued")})
sys.exit(0 if stats.get("maa_attestations", 0) >= 1 and stats.get("keyvault_reads", 0) >= 2 else 1)'
}

# The cas chart's replicated Deployment run for real: its cas.toml, its environment (the store's
# URL from the Secret, CUSTOS_CAS_STORE_CA at the chart's mount path) and its master key mount,
# as a third replica on the compose network's database. It must join with the compose
# replicas' identity: the chart wires the store the way the binary reads it.
chart_replica_tests() {
  if [ ! -s "$work/rendered/cas-replicated.yaml" ]; then
    skip "the chart's replicated Deployment in the image: run deploy/test.sh helm compose to render it first"
    return
  fi
  local dir=$work/chart-replica name=custos-chart-replica-$$ volume=custos-chart-replica-$$ network
  mkdir -p "$dir/secrets/master-key" "$dir/secrets/store-ca"
  # What the Deployment's container gets: cas.toml, env (a secretKeyRef becomes the compose
  # database's URL), and the paths its Secrets are mounted at.
  "$target/venv-deploy/bin/python" - "$work/rendered/cas-replicated.yaml" "$dir" \
    "postgres://custos:$CUSTOS_STORE_PASSWORD@postgres:5432/custos?sslmode=verify-full" <<'PYEOF'
import sys, yaml
rendered, out, url = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
config = next(d for d in docs if d["kind"] == "ConfigMap")
open(out + "/cas.toml", "w").write(config["data"]["cas.toml"])
deployment = next(d for d in docs if d["kind"] == "Deployment")
container = deployment["spec"]["template"]["spec"]["containers"][0]
with open(out + "/env", "w") as env:
    for var in container.get("env", []):
        if "valueFrom" in var:
            ref = var["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == ("cas-store", "url"), ref
            env.write(f"{var['name']}={url}\n")
        else:
            env.write(f"{var['name']}={var['value']}\n")
mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
ca_item = volumes["store-ca"]["secret"]["items"][0]["path"]
with open(out + "/mounts", "w") as f:
    f.write(f"{mounts['master-key']} {mounts['store-ca']} {ca_item}\n")
PYEOF
  local key_dir ca_dir ca_item
  read -r key_dir ca_dir ca_item <"$dir/mounts"
  docker cp "$(compose ps -q cas-2):/etc/custos-cas/secrets/master.key" "$dir/secrets/master-key/master.key"
  docker cp "$(compose ps -q cas-2):/etc/custos-cas/secrets/store-ca.pem" "$dir/secrets/store-ca/$ca_item"
  network=$(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' "$(compose ps -q cas-2)")
  on_exit "docker rm -f $name; docker volume rm $volume"
  docker volume create "$volume" >/dev/null
  # As the chart runs it: root without capabilities, read-only root, an emptyDir data directory;
  # the Secrets root's, the key 0400 (one volume holds both mount points).
  docker create --name "$name" --network "$network" --env-file "$dir/env" --user 0:0 --cap-drop ALL \
    --security-opt no-new-privileges --read-only --tmpfs /tmp --tmpfs /var/lib/custos-cas:mode=0755 \
    -v "$dir/cas.toml:/etc/custos-cas/cas.toml:ro" -v "$volume:/etc/custos-cas" \
    "custos/cas:$tag" --config /etc/custos-cas/cas.toml >/dev/null
  tar -C "$dir/secrets" --owner=0 --group=0 --numeric-owner --mode=0400 -cf - master-key/master.key \
    | docker cp - "$name:${key_dir%/master-key}/"
  tar -C "$dir/secrets" --owner=0 --group=0 --numeric-owner --mode=0444 -cf - "store-ca/$ca_item" \
    | docker cp - "$name:${ca_dir%/store-ca}/"
  docker start "$name" >/dev/null
  local deadline=$((SECONDS + 60))
  until docker logs "$name" 2>&1 | grep -q 'client API ready' || [ $SECONDS -ge $deadline ] \
    || [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]; do sleep 0.2; done
  docker logs "$name" 2>&1 | tail -n 3
  check "the chart's replicated Deployment (cas.toml, env, Secret mounts) starts on the shared store" \
    grep -q 'client API ready' <(docker logs "$name" 2>&1)
  check "... and serves the replicas' identity (key hash $SCONE_CAS_KEY_HASH)" \
    grep -q "key_hash=$SCONE_CAS_KEY_HASH" <(docker logs "$name" 2>&1 | grep 'client API ready')
}
