# shellcheck shell=bash disable=SC2154  # work, target: set by deploy/test.sh, which sources this
# The CAS's Gramine manifest, checked without SGX or Gramine (deploy/gramine/check.py): rendered
# as gramine-manifest does, parsed, and checked against the CAS image's root filesystem (made by
# mkrootfs.py, as build.sh makes it, plus the enclave's cas.toml) and `ldd custos-cas`. Signing,
# MRENCLAVE and running in an enclave need Gramine and SGX: not here.

jinja=jinja2==3.1.6

gramine_tests() {
  step "gramine: the CAS's manifest"
  local venv=$target/venv-deploy
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c 'import jinja2' 2>/dev/null \
    || "$venv/bin/pip" install --quiet --disable-pip-version-check "$jinja"
  local profile=${CUSTOS_DEPLOY_PROFILE:-release}
  local binary=$target/$profile/custos-cas dir=$work/gramine
  if [ ! -x "$binary" ]; then
    fail "gramine: $binary is missing (cargo build --bins, or CUSTOS_DEPLOY_PROFILE=debug)"
    return
  fi
  mkdir -p "$dir"
  # As build.sh and the Dockerfile put it in the image: without debug information.
  cp "$binary" "$dir/custos-cas"
  if command -v strip >/dev/null; then strip --strip-debug "$dir/custos-cas"; fi
  # The image's files: the CAS image's, the enclave's cas.toml, and a store CA (the
  # -Dstore_postgres=true variant lists it).
  if ! python3 deploy/images/mkrootfs.py --bin "$dir/custos-cas" --dir /var/lib/custos-cas=0700:65532 \
    --file deploy/gramine/cas.toml=/etc/custos-cas/cas.toml \
    --file deploy/gramine/cas.toml=/etc/custos-cas/store-ca.pem >"$dir/rootfs.tar"; then
    fail "gramine: mkrootfs.py"
    return
  fi
  if "$venv/bin/python" deploy/gramine/check.py --rootfs "$dir/rootfs.tar" --binary "$dir/custos-cas" --self-test >"$dir/check.out" 2>&1; then
    pass "gramine: check.py: $(tail -n1 "$dir/check.out")"
  else
    fail "gramine: check.py: $(cat "$dir/check.out")"
  fi
  local mutants
  mutants=$(grep -c '^self-test ok' "$dir/check.out" || true)
  check "gramine: check.py --self-test refused $mutants broken manifests and configurations, each naming its check" test "$mutants" -ge 15
  # The enclave's cas.toml is one custos-cas accepts: outside an enclave it gets past the
  # configuration and stops at Gramine's attestation files.
  local out
  out=$(timeout 20 "$dir/custos-cas" --config deploy/gramine/cas.toml --data-dir "$dir/data" 2>&1 || true)
  if [[ $out == *"Gramine attestation: /dev/attestation/user_report_data"* ]]; then
    pass "gramine: custos-cas takes deploy/gramine/cas.toml and, outside an enclave, stops at /dev/attestation"
  else
    fail "gramine: custos-cas --config deploy/gramine/cas.toml: expected a stop at /dev/attestation, actual: $out"
  fi
  # The Dockerfile's ldd check is the same list: every library it would look for is trusted.
  local lib missing=""
  for lib in $(ldd "$dir/custos-cas" | awk '$3 ~ /^\// {print $3}'); do
    grep -q "\"file:$lib\"" deploy/gramine/custos-cas.manifest.template || missing+=" $lib"
  done
  if [ -z "$missing" ]; then pass "gramine: the Dockerfile's ldd check passes for this build"; else fail "gramine: not trusted:$missing"; fi
}
