#!/usr/bin/env bash
# Attest the CAS and make it the CLI's default, as the sample's attest-cas.sh does with `scone cas attest`.
#
#   SCONE_CAS_ADDR=10.0.0.4 ./templates/attest-cas.sh
#
# The CAS proves which code it runs and that its TLS key is the one in its evidence; `custos`
# then pins that key, so later commands talk to this CAS and no other (an IP address works).
#
# The flags are the sample's, with SCONE's meaning. The testing flags accept a simulated or
# debug-mode CAS with any measurement, its signer unchecked — right for this sample on machines
# without SGX, wrong for production: there, drop them and pass `--mrenclave <the CAS's
# MRENCLAVE>` instead. -G, -C and -S accept the TCB statuses OutOfDate, ConfigurationNeeded
# (e.g. hyperthreading enabled) and SWHardeningNeeded.
#
# The sample's own script (`scone cas attest …`, and an /etc/hosts entry for an IP address)
# also runs as it is, with a link named `scone` to `custos` on the PATH.
set -euo pipefail

addr=${CUSTOS_CAS_ADDR:-${SCONE_CAS_ADDR:?set SCONE_CAS_ADDR (or CUSTOS_CAS_ADDR) to the CAS address}}
exec "${CUSTOS:-custos}" cas attest "$addr" \
  --only-for-testing-trust-any \
  --only-for-testing-debug \
  --only-for-testing-ignore-signer \
  -G -C -S
