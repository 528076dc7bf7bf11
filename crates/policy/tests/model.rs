//! A session that uses every feature decodes to the model it describes.

use std::net::IpAddr;
use std::time::Duration;

use custos_policy::placeholder::{self, Format, Unresolved};
use custos_policy::*;
use rcgen::PublicKeyData;
use secrecy::ExposeSecret;

const M1: &str = "291645fc02749ef4f895da626d1ffe9bf45d34aad2177507844e1b87d220219f";
const M2: &str = "83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e";
const PREDECESSOR: &str = "0d9f8e7c6b5a49382716f5e4d3c2b1a00d9f8e7c6b5a49382716f5e4d3c2b1a0";

fn sha256(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data))
}

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(by)))
        .collect()
}

struct Fixture {
    text: String,
    client_spki_hash: String,
}

fn full_session() -> Fixture {
    let client = rcgen::generate_simple_self_signed(vec!["client.example".to_owned()]).unwrap();
    let client_spki_hash = sha256(&client.signing_key.subject_public_key_info());
    let ca = rcgen::generate_simple_self_signed(vec!["maa-ca.example".to_owned()]).unwrap();
    let text = format!(
        r#"name: company/team/app
version: "0.3.11"
predecessor: {PREDECESSOR}
access_policy:
  read:
    - CREATOR
    - |
{client_pem}    - {admin}
  update: [CREATOR]
security:
  attestation:
    mode: hardware
    certificates:
      - |
{ca_pem}    tolerate: [debug, hyperthreading, outdated-tcb]
    ignore_advisories: [INTEL-SA-00289, INTEL-SA-00615]
    trusted_platform_keys: ["{platform}"]
secrets:
  - name: PASSWORD
    kind: ascii
    size: 24
    export:
      - session: company/team/worker
        session_hash: {PREDECESSOR}
      - company/other
  - name: SEED
    kind: binary
    value: DEADBEEF
  - name: CA_KEY
    kind: private-key
    key_type: P-384
  - name: CA
    kind: x509-ca
    private_key: CA_KEY
    common_name: Team CA
    valid_for: 10 years
    export_public: true
  - name: TLS_KEY
    kind: private-key
    migrate: true
  - name: TLS
    kind: x509
    private_key: TLS_KEY
    issuer: CA
    common_name: api.example.com
    dns: [api.example.com, "*.api.example.com"]
    san: ["IP:10.0.0.1", "::1", "DNS:internal.example"]
    valid_for: 90 days
    endpoint: server
  - name: APP_KEY
    kind: private-key
    key_type: RSA-2048
  - name: APP_CERT
    kind: x509
    private_key: APP_KEY
    endpoint: client
  - name: AAD
    kind: aad-token
    tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47
    client_id: 6e8ad3c4-6b06-4c2a-a3c0-4a1b7c4e3b2f
    private_key: APP_CERT
    certificate_thumbprint: 0123456789ABCDEF0123456789ABCDEF01234567
    scope: https://storage.azure.com/.default
  - name: DB_PASSWORD
    kind: ascii
    import_akv:
      vault: db-vault.vault.azure.net
      secret_name: db-password
      version: 0123456789abcdef0123456789abcdef
  - name: SHARED
    import:
      session: company/shared
      secret: SHARED_SECRET
      session_hash: {PREDECESSOR}
services:
  - name: api
    image_name: api-image
    command: ["/usr/bin/api", "--listen", "0.0.0.0:443", "--password=$$SCONE::PASSWORD$$"]
    environment:
      SEED_HEX: $$SCONE::SEED:hex$$
      SEED_B64: $$SCONE::SEED:base64url$$
      DB: "$$SCONE::DB_PASSWORD$$"
      PORT: 443
      TOKEN: $$SCONE::AAD$$
      OTHER: $$SCONE::SHARED:crt$$
    pwd: /srv
    attestation:
      - mrenclave: ["{M1}", "{M2}"]
      - signer:
          mrsigner: "{M2}"
          isvprodid: 7
          isvsvn: 3
    platforms: ["{platform}"]
    refresh:
      interval: 15 minutes
      on_change: signal
      signal: SIGUSR1
      grace: 30 seconds
      on_denial: stop
  - name: worker
    command: /usr/bin/worker --name 'the worker' "$$SCONE::PASSWORD$$"
    mrenclaves: "{M1}"
images:
  - name: api-image
    injection_files:
      - path: /tls/api.crt
        content: $$SCONE::TLS:chain$$
      - path: /tls/api.key
        content: $$SCONE::TLS.key$$
        permission: "0600"
      - path: /etc/ca.pem
        content: |
          # CA
          $$SCONE::CA:crt$$
        permission: 0644
"#,
        client_pem = indent(&client.cert.pem(), 8),
        ca_pem = indent(&ca.cert.pem(), 10),
        admin = "ab".repeat(32),
        platform = "cd".repeat(32),
    );
    Fixture {
        text,
        client_spki_hash,
    }
}

#[test]
fn every_feature_decodes() {
    let fixture = full_session();
    let s = match parse("full.yml", &fixture.text) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };

    assert_eq!(s.name.as_str(), "company/team/app");
    assert_eq!(s.name.parent().unwrap().as_str(), "company/team");
    assert_eq!(s.version, LanguageVersion { patch: Some(11) });
    assert_eq!(s.predecessor.unwrap().to_string(), PREDECESSOR);

    // Access policy: the certificate counts by its public key.
    let read = &s.access_policy.read;
    assert_eq!(read[0], Principal::Creator);
    let Principal::Certificate(cert) = &read[1] else {
        panic!("{:?}", read[1])
    };
    assert_eq!(cert.public_key_hash().to_string(), fixture.client_spki_hash);
    assert_eq!(
        read[2],
        Principal::PublicKey("ab".repeat(32).parse().unwrap())
    );
    let caller: custos_ids::KeyHash = fixture.client_spki_hash.parse().unwrap();
    let creator: custos_ids::KeyHash = "ef".repeat(32).parse().unwrap();
    assert!(AccessPolicy::admits(read, &caller, &creator));
    assert!(!AccessPolicy::admits(
        &s.access_policy.update,
        &caller,
        &creator
    ));
    assert!(AccessPolicy::admits(
        &s.access_policy.update,
        &creator,
        &creator
    ));
    // create_sessions defaults to the update list.
    assert_eq!(s.access_policy.create_sessions, s.access_policy.update);

    let att = &s.security.attestation;
    assert_eq!(att.mode, AttestationMode::Hardware);
    assert_eq!(att.url, None);
    assert_eq!(att.certificates.len(), 1);
    assert_eq!(
        att.tolerate.iter().copied().collect::<Vec<_>>(),
        [
            Tolerance::DebugMode,
            Tolerance::Hyperthreading,
            Tolerance::OutdatedTcb
        ]
    );
    assert!(att.ignore_advisories.ignores("INTEL-SA-00615"));
    assert!(!att.ignore_advisories.ignores("INTEL-SA-00334"));
    assert_eq!(att.min_rsa_signing_key_size, 2048);
    assert_eq!(att.trusted_platform_keys[0].to_string(), "cd".repeat(32));

    // Secrets.
    let secret = |n: &str| s.secret(n).unwrap();
    let p = secret("PASSWORD");
    assert!(matches!(
        p.source,
        SecretSource::Generated(Generation::Ascii { size: 24 })
    ));
    assert_eq!(p.export.len(), 2);
    assert_eq!(p.export[0].session.as_str(), "company/team/worker");
    assert!(p.export[0].session_hash.is_some());
    assert_eq!(p.export[1].session.as_str(), "company/other");
    let SecretSource::Value(seed) = &secret("SEED").source else {
        panic!()
    };
    assert_eq!(seed.expose_secret(), "DEADBEEF");
    assert!(matches!(
        secret("CA_KEY").source,
        SecretSource::Generated(Generation::PrivateKey {
            key_type: KeyType::P384
        })
    ));
    assert!(matches!(
        secret("TLS_KEY").source,
        SecretSource::Generated(Generation::PrivateKey {
            key_type: KeyType::P256
        })
    ));
    assert!(secret("TLS_KEY").migrate);
    assert!(!secret("CA_KEY").migrate);
    let ca = secret("CA");
    assert!(ca.export_public);
    let SecretSource::Generated(Generation::X509Ca(req)) = &ca.source else {
        panic!()
    };
    assert_eq!(req.valid_for, Some(Duration::from_secs(10 * 365 * 86_400)));
    assert_eq!(req.issuer, None);
    let SecretSource::Generated(Generation::X509(tls)) = &secret("TLS").source else {
        panic!()
    };
    assert_eq!(tls.private_key.as_ref().unwrap().as_str(), "TLS_KEY");
    assert_eq!(tls.issuer.as_ref().unwrap().as_str(), "CA");
    assert_eq!(tls.common_name.as_deref(), Some("api.example.com"));
    assert_eq!(
        tls.dns,
        ["api.example.com", "*.api.example.com", "internal.example"]
    );
    assert_eq!(
        tls.ip,
        [
            "10.0.0.1".parse::<IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
    assert_eq!(tls.valid_for, Some(Duration::from_secs(90 * 86_400)));
    assert_eq!(tls.endpoint, Endpoint::Server);

    let SecretSource::Generated(Generation::AadToken(aad)) = &secret("AAD").source else {
        panic!()
    };
    assert_eq!(aad.tenant_id, "72f988bf-86f1-41af-91ab-2d7cd011db47");
    assert_eq!(aad.scope, "https://storage.azure.com/.default");
    let AadCredential::Certificate {
        private_key,
        certificate_thumbprint: Some(CertificateThumbprint::Sha1(t)),
    } = &aad.credential
    else {
        panic!("{:?}", aad.credential)
    };
    assert_eq!(private_key.as_str(), "APP_CERT");
    assert_eq!(hex::encode(t), "0123456789abcdef0123456789abcdef01234567");

    let SecretSource::ImportAkv(akv) = &secret("DB_PASSWORD").source else {
        panic!()
    };
    assert_eq!(akv.vault, "https://db-vault.vault.azure.net");
    assert_eq!(akv.secret_name, "db-password");
    assert_eq!(
        akv.version.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(
        akv.token.as_str(),
        "AAD",
        "the only aad-token is the default"
    );

    let shared = secret("SHARED");
    assert_eq!(shared.kind, None);
    let SecretSource::Import(import) = &shared.source else {
        panic!()
    };
    assert_eq!(import.session.as_str(), "company/shared");
    assert_eq!(import.secret.as_str(), "SHARED_SECRET");

    // Services.
    let api = s.service("api").unwrap();
    assert_eq!(api.image_name.as_ref().unwrap().as_str(), "api-image");
    assert_eq!(api.command.as_ref().unwrap().len(), 4);
    assert_eq!(api.environment["PORT"], "443");
    assert_eq!(api.environment["SEED_HEX"], "$$SCONE::SEED:hex$$");
    assert_eq!(api.pwd.as_deref(), Some("/srv"));
    assert_eq!(api.attestation.len(), 2);
    assert_eq!(api.attestation[0].mrenclaves.len(), 2);
    assert_eq!(api.attestation[0].signer, None);
    let signer = api.attestation[1].signer.unwrap();
    assert_eq!(signer.mrsigner.to_string(), M2);
    assert_eq!((signer.isvprodid, signer.min_isvsvn), (7, 3));
    assert!(api.attestation[1].mrenclaves.is_empty());
    assert_eq!(api.platforms.len(), 1);
    assert_eq!(
        api.refresh,
        Some(Refresh {
            interval: Duration::from_secs(15 * 60),
            on_change: OnChange::Signal,
            signal: RefreshSignal::Sigusr1,
            grace: Duration::from_secs(30),
            on_denial: OnDenial::Stop,
        })
    );

    let worker = s.service("worker").unwrap();
    assert_eq!(
        worker.command.as_ref().unwrap(),
        &[
            "/usr/bin/worker",
            "--name",
            "the worker",
            "$$SCONE::PASSWORD$$"
        ]
    );
    assert_eq!(worker.attestation[0].mrenclaves[0].to_string(), M1);
    assert!(worker.environment.is_empty());
    assert_eq!(worker.refresh, None);

    // Images.
    let files = &s.image("api-image").unwrap().injection_files;
    assert_eq!(files[0].mode, None);
    assert_eq!(files[1].mode, Some(0o600));
    assert_eq!(files[2].mode, Some(0o644));
    assert_eq!(files[2].content, "# CA\n$$SCONE::CA:crt$$\n");
}

#[test]
fn debug_output_never_shows_secret_values() {
    let s = parse(
        "s.yml",
        "name: ns/app\nversion: '0.3'\nsecrets:\n  - {name: A, kind: ascii, value: hunter2-value}\n  - {name: T, kind: aad-token, tenant_id: t, client_id: c, application_secret: hunter3-value}\nimages:\n  - name: i\n    injection_files: [{path: /f, content: hunter4-content}]\nsecurity: {attestation: {mode: none}}\nservices:\n  - {name: s, command: [app, --password=hunter5-arg], environment: {PASSWORD: hunter6-env}}\n",
    )
    .unwrap();
    let debug = format!("{s:?}");
    for secret in ["hunter2", "hunter3", "hunter4", "hunter5", "hunter6"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(
        debug.contains("PASSWORD"),
        "variable names are shown: {debug}"
    );
}

#[test]
fn rendering_uses_the_resolver_and_reports_unknown_names() {
    let fixture = full_session();
    let s = parse("full.yml", &fixture.text).unwrap();
    let api = s.service("api").unwrap();
    // A resolver the CAS might write: look the secret up in the session, check the format.
    let resolve = |p: &placeholder::Placeholder<'_>| {
        let secret = s
            .secret(p.secret.as_str())
            .ok_or(Unresolved::UnknownSecret)?;
        if let Some(kind) = secret.kind
            && !p.format.fits(kind)
        {
            return Err(Unresolved::UnsupportedFormat {
                kind,
                format: p.format,
            });
        }
        Ok(format!("<{}{}>", p.secret, p.format.as_str()))
    };
    let rendered = placeholder::render(&api.environment["SEED_HEX"], resolve).unwrap();
    assert_eq!(rendered.as_str(), "<SEEDhex>");
    let arg = placeholder::render(&api.command.as_ref().unwrap()[3], resolve).unwrap();
    assert_eq!(arg.as_str(), "--password=<PASSWORD>");
    let err = placeholder::render("$$SCONE::NOPE$$ $$SCONE::PASSWORD:crt$$", resolve).unwrap_err();
    assert_eq!(
        err.0,
        vec![
            placeholder::RenderProblem::Unresolved {
                text: "$$SCONE::NOPE$$".into(),
                offset: 0,
                reason: Unresolved::UnknownSecret
            },
            placeholder::RenderProblem::Unresolved {
                text: "$$SCONE::PASSWORD:crt$$".into(),
                offset: 16,
                reason: Unresolved::UnsupportedFormat {
                    kind: SecretKind::Ascii,
                    format: Format::Certificate
                }
            }
        ]
    );
}

#[test]
fn context_checks_follow_the_predecessor_rules() {
    let fixture = full_session();
    let s = parse("full.yml", &fixture.text).unwrap();
    let current: SessionHash = PREDECESSOR.parse().unwrap();
    assert!(check_update(&s, &current).is_ok());
    let other: SessionHash = "11".repeat(32).parse().unwrap();
    let err = check_update(&s, &other).unwrap_err();
    let d = err.iter().next().unwrap();
    assert_eq!(d.problem, Problem::Predecessor);
    assert_eq!(d.path.as_str(), "predecessor");
    assert_eq!((d.position.line, d.position.column), (3, 14));
    assert!(d.message.contains(&other.to_string()), "{d}");
    assert!(check_create(&s).is_err());
}

#[test]
fn every_problem_name_is_distinct() {
    let names: std::collections::BTreeSet<_> = Problem::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(names.len(), Problem::ALL.len());
}

#[test]
fn too_many_problems_are_capped_and_counted() {
    let mut text = String::from("name: ns/app\nversion: '0.3'\n");
    for i in 0..(MAX_DIAGNOSTICS + 50) {
        text.push_str(&format!("unknown_{i}: x\n"));
    }
    let err = parse("many.yml", &text).unwrap_err();
    assert_eq!(err.len(), MAX_DIAGNOSTICS + 1);
    assert_eq!(
        err.iter().last().unwrap().message,
        format!("50 more problems not shown (at most {MAX_DIAGNOSTICS} are reported)")
    );
}
