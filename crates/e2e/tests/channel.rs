//! The enclave API's channel checks, against the real CAS and LAS: a replayed attest request,
//! a request relayed by another TLS client, a nonce used for another service, and evidence
//! that binds other runtime data are all denied, each with its reason.

use custos_e2e::World;
use custos_ids::MrEnclave;
use custos_protocol::enclave::RuntimeData;
use custos_runtime::RunError;
use custos_runtime::attest::request;
use custos_runtime::cas::CasClient;
use custos_runtime::config::{CasTrust, Endpoint};
use custos_runtime::evidence::EvidenceSource;
use custos_runtime::identity::EphemeralKey;

const MRENCLAVE: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

fn session() -> String {
    format!(
        r#"
name: ns/app
version: "0.3"
security: {{ attestation: {{ mode: hardware, tolerate: [debug-mode] }} }}
secrets:
  - {{ name: KEY, kind: ascii, size: 24 }}
services:
  - name: app
    environment: {{ KEY: $$SCONE::KEY$$ }}
    mrenclaves: ["{MRENCLAVE}"]
  - name: other
    mrenclaves: ["{MRENCLAVE}"]
"#
    )
}

fn client(world: &World, key: &EphemeralKey) -> CasClient {
    let cas = Endpoint::parse(&world.cas.enclave_addr, 0).unwrap();
    let pin = CasTrust::Pin(world.cas.key_hash.parse().unwrap());
    CasClient::new(&cas, &pin, key, true).unwrap()
}

fn reasons(error: RunError) -> Vec<String> {
    match error {
        RunError::Denied { detail, .. } => detail.reasons,
        other => panic!("expected a denial, got {other}"),
    }
}

#[test]
fn replayed_relayed_and_rebound_requests_are_denied() {
    let world = World::start(false, &[]);
    world.create("name: ns\nversion: \"0.3\"\n");
    world.create(&session());
    let las = EvidenceSource::Las(format!("http://{}", world.las.addr));
    let measurement: MrEnclave = MRENCLAVE.parse().unwrap();
    let key = EphemeralKey::generate().unwrap();
    let cas = client(&world, &key);

    world.block_on(async {
        // Allowed once.
        let attest = request(&cas, &key, &las, "ns/app/app", &measurement)
            .await
            .unwrap();
        let delivery = cas.attest(&attest).await.unwrap();
        assert_eq!(delivery.env["KEY"].len(), 24);

        // The same request again: its nonce is spent.
        let replayed = reasons(cas.attest(&attest).await.unwrap_err());
        assert_eq!(
            replayed,
            ["nonce: expected one not used before, actual: already used (a replayed request?)"]
        );

        // A fresh request sent by another TLS client: not the key the evidence binds.
        let attest = request(&cas, &key, &las, "ns/app/app", &measurement)
            .await
            .unwrap();
        let thief_key = EphemeralKey::generate().unwrap();
        let thief = client(&world, &thief_key);
        let relayed = reasons(thief.attest(&attest).await.unwrap_err());
        assert_eq!(relayed.len(), 1, "{relayed:?}");
        assert!(
            relayed[0].starts_with("client key: expected the TLS client certificate's key to be the runtime data's jwk"),
            "{relayed:?}"
        );

        // A nonce issued for one service, presented for another.
        let mut attest = request(&cas, &key, &las, "ns/app/app", &measurement)
            .await
            .unwrap();
        attest.config_id = "ns/app/other".into();
        let moved = reasons(cas.attest(&attest).await.unwrap_err());
        assert_eq!(
            moved,
            [
                "nonce: expected one this CAS issued for \"ns/app/other\", actual: not issued by this CAS for \"ns/app/other\" (issued for another config id or by a CAS with another master key, or altered)"
            ]
        );

        // Evidence over other runtime data than the ones sent (a fresh nonce swapped in).
        let mut attest = request(&cas, &key, &las, "ns/app/app", &measurement)
            .await
            .unwrap();
        let fresh = cas.challenge("ns/app/app").await.unwrap();
        attest.runtime_data = serde_json::to_vec(&RuntimeData {
            nonce: fresh,
            jwk: key.jwk(),
        })
        .unwrap();
        let rebound = reasons(cas.attest(&attest).await.unwrap_err());
        assert_eq!(rebound.len(), 1, "{rebound:?}");
        assert!(
            rebound[0].starts_with(
                "evidence: report data does not bind the runtime data: expected report_data[0..32] = "
            ),
            "{rebound:?}"
        );
    });

    // Every attempt that redeemed a nonce is in the audit log: the allowed one, the relayed
    // and the re-bound one; the replay and the moved nonce redeemed none (counted in the
    // metrics, not audited).
    let allowed: Vec<bool> = world
        .attestations("ns/app", 3)
        .iter()
        .map(|e| e.outcome.is_allowed())
        .collect();
    assert_eq!(allowed, [true, false, false]);
}

#[test]
fn unknown_config_ids_and_malformed_requests_get_clear_errors() {
    let world = World::start(false, &[]);
    world.create("name: ns\nversion: \"0.3\"\n");
    world.create(&session());
    let key = EphemeralKey::generate().unwrap();
    let cas = client(&world, &key);
    let las = EvidenceSource::Las(format!("http://{}", world.las.addr));
    let measurement: MrEnclave = MRENCLAVE.parse().unwrap();
    world.block_on(async {
        // The challenge does not tell: the attest request does, to the holder of a nonce.
        let attest = request(&cas, &key, &las, "ns/app/missing", &measurement)
            .await
            .unwrap();
        let error = cas.attest(&attest).await.unwrap_err().to_string();
        assert!(
            error.contains("HTTP 404 Not Found unknown_config_id: config id \"ns/app/missing\": no such session and service"),
            "{error}"
        );
        let error = cas.challenge("nothing").await.unwrap_err().to_string();
        assert!(
            error.contains("HTTP 400 Bad Request bad_config_id: config id \"nothing\": no `/`"),
            "{error}"
        );
    });
}
