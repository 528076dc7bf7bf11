//! Values delivered with SCONE's meanings (issue #13), end to end: a real `custos-run`
//! attests to the real `custos-cas` and receives its command, environment and files.
//! - a `binary` secret's `value` is hex (SCONE: "explicit secret values have to be
//!   specified encoded as a hexadecimal string");
//! - `:chain` is the issuers from the first intermediate to the root, without the
//!   certificate; the legacy `.chain` is the reverse: root first, the certificate last;
//! - an expired generated certificate is refused at start, naming it and its dates, and
//!   the create that made it said it would expire.

use custos_client::ClientError;
use custos_e2e::{World, stderr, stdout};

const NAMESPACE: &str = "name: ns\nversion: \"0.3\"\n";

/// 32 bytes in hex: also valid base64, which would decode to 48 other bytes.
fn key_hex() -> String {
    (0u8..32).map(|b| format!("{:02x}", b * 7)).collect()
}

#[test]
fn binary_values_are_hex_and_chains_come_in_scones_orders() {
    let world = World::start(false, &[]);
    world.create(NAMESPACE);
    let out = world.dir.path().join("out");
    let file = |name: &str, content: &str| {
        format!(
            "      - {{ path: {}/{name}, content: \"{content}\" }}\n",
            out.display()
        )
    };
    let text = format!(
        r#"name: ns/app
version: "0.3"
security: {{ attestation: {{ mode: none }} }}
secrets:
  - {{ name: KEY, kind: binary, value: "{key}" }}
  - {{ name: ROOT_KEY, kind: private-key }}
  - {{ name: ROOT, kind: x509-ca, private_key: ROOT_KEY, common_name: Root }}
  - {{ name: INT_KEY, kind: private-key }}
  - {{ name: INT, kind: x509-ca, private_key: INT_KEY, issuer: ROOT, common_name: Intermediate }}
  - {{ name: LEAF_KEY, kind: private-key }}
  - {{ name: LEAF, kind: x509, private_key: LEAF_KEY, issuer: INT, common_name: leaf }}
services:
  - name: app
    image_name: files
    command: ["sh", "-c", "printf '%s' \"$KEY\""]
    environment:
      KEY: $$SCONE::KEY:hex$$
images:
  - name: files
    injection_files:
{files}"#,
        key = key_hex(),
        files = [
            file("chain", "$$SCONE::LEAF:chain$$"),
            file("legacy", "$$SCONE::LEAF.chain$$"),
            file("leaf", "$$SCONE::LEAF:crt$$"),
            file("int", "$$SCONE::INT:crt$$"),
            file("root", "$$SCONE::ROOT:crt$$"),
        ]
        .concat()
    );
    world.create(&text);

    let output = world.run("ns/app/app", &["sh"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        key_hex(),
        "the value read as hex, as written"
    );

    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let (leaf, int, root) = (read("leaf"), read("int"), read("root"));
    assert!(leaf.starts_with("-----BEGIN CERTIFICATE-----"), "{leaf}");
    assert!(leaf != int && int != root && leaf != root);
    assert_eq!(read("chain"), format!("{int}{root}"), ":chain");
    assert_eq!(read("legacy"), format!("{root}{int}{leaf}"), ".chain");
}

#[test]
fn an_expired_generated_certificate_is_renewed_at_start_and_was_warned_of() {
    let world = World::start(false, &[]);
    world.create(NAMESPACE);
    let marker = world.dir.path().join("started");
    let text = r#"name: ns/app
version: "0.3"
security: { attestation: { mode: none } }
secrets:
  - { name: TLS_KEY, kind: private-key }
  - { name: TLS, kind: x509, private_key: TLS_KEY, valid_for: 1 second }
services:
  - name: app
    environment:
      CERT: $$SCONE::TLS$$
"#;
    let written = world.try_create(text).expect("created");
    assert_eq!(
        written.warnings,
        [
            "secret TLS: `valid_for` 1 seconds ends within 30 days of generation; the CAS renews the certificate when a service attests after half of that time, and a running program gets the renewed one only when it attests again (`refresh`)"
        ]
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));

    // Expired: renewed before it is delivered (crates/cas/tests/renewal.rs has the details).
    let script = format!("touch {}", marker.display());
    let output = world.run("ns/app/app", &["sh", "-c", &script]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(marker.exists(), "the program started");
}

#[test]
fn the_cas_refuses_at_create_what_used_to_fail_at_start_or_reach_the_program_literally() {
    let world = World::start(false, &[]);
    world.create(NAMESPACE);
    let refused = |body: &str| {
        let text = format!("name: ns/app\nversion: \"0.3\"\n{body}");
        match world.try_create(&text) {
            Err(ClientError::Refused { status, error, .. }) => {
                assert_eq!(status, 400, "{error:?}");
                format!("{}\n{}", error.message, error.reasons.join("\n"))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    // An aad-token credential without a certificate: accepted before, failed at every start.
    let answer = refused(
        "secrets:\n  - { name: KEY, kind: private-key, key_type: RSA-2048 }\n  - { name: AAD, kind: aad-token, tenant_id: t, client_id: c, private_key: KEY, certificate_thumbprint: 0123456789abcdef0123456789abcdef01234567 }\n",
    );
    assert!(answer.contains("`KEY` is a bare private key"), "{answer}");
    // SCONE's inline PEM key: refused without quoting it.
    let answer = refused(
        "secrets:\n  - name: AAD\n    kind: aad-token\n    tenant_id: t\n    client_id: c\n    private_key: |\n      -----BEGIN PRIVATE KEY-----\n      MIIEvAIBADANBgkqhkiG9w0BAQEFAASC\n      -----END PRIVATE KEY-----\n    certificate_thumbprint: B033DB596639F3CA02D6537055E85B8EFE060756\n",
    );
    assert!(answer.contains("inline PEM private key"), "{answer}");
    assert!(!answer.contains("MIIEv"), "{answer}");
    // SCONE's host arguments would have reached the program as the text `@@1`.
    let answer = refused(
        "security: { attestation: { mode: none } }\nservices:\n  - { name: app, command: \"sh -c @@1\" }\n",
    );
    assert!(answer.contains("host program arguments"), "{answer}");
    // `insecure-igpu` was accepted and tolerated nothing.
    let answer = refused(
        "security: { attestation: { tolerate: [debug-mode, insecure-igpu] } }\nservices:\n  - { name: app, mrenclaves: [\"0101010101010101010101010101010101010101010101010101010101010101\"] }\n",
    );
    assert!(answer.contains("insecure-igpu"), "{answer}");
    // SCONE's `isvsvn` is exact: `isvsvn_min` is its minimum, which the CAS now knows.
    world.create(
        "name: ns/signed\nversion: \"0.3\"\nservices:\n  - { name: app, attestation: { signer: { mrsigner: \"0101010101010101010101010101010101010101010101010101010101010101\", isvprodid: 1, isvsvn_min: 4 } } }\n",
    );
}
