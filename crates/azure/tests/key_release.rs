//! Secure Key Release end to end over HTTPS on loopback: an enclave's simulated quote with its
//! wrapping key as JSON runtime data is attested by the emulator's MAA; the token is presented
//! to the emulator's Key Vault, which checks it and the key's release policy and releases the
//! key wrapped to that key; the client opens the answer. Refusals come back as Key Vault's
//! errors, naming what failed.

mod common;

use std::time::Duration;

use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use custos_attestation::{PlatformKey, SimReport};
use custos_azure::http::parse_pem_certificates;
use custos_azure::{
    ExportableKeyType, KeyInfo, KeyMaterial, KeyVaultError, KeyVaultKeys, KeyWrapAlgorithm,
    MaaClient, MaaEvidence, ReleasedKey, RuntimeData, SignerTrust, WrappingKey,
};
use custos_azure_emulator::config::{AccessPolicyConfig, RoleAssignmentConfig};
use custos_azure_emulator::{Config, Running};
use custos_ids::MrEnclave;
use serde_json::json;

const ENCLAVE: [u8; 32] = [0x5a; 32];

struct Setup {
    running: Running,
    keys: KeyVaultKeys,
    /// The same, on the emulator's Managed HSM.
    hsm: KeyVaultKeys,
    maa: MaaClient,
    platform: PlatformKey,
}

async fn setup(adjust: impl FnOnce(&mut Config)) -> Setup {
    let platform = PlatformKey::generate().unwrap();
    let (mut config, secret) = common::config(None);
    config.maa.trusted_platform_keys = vec![platform.public_key().id().to_string()];
    adjust(&mut config);
    let running = common::start(config).await;
    let credential = common::secret_credential(&running, &secret);
    let keys =
        KeyVaultKeys::new(&running.urls().vault, &credential, &common::http(&running)).unwrap();
    let hsm = KeyVaultKeys::new(
        &running.urls().managed_hsm,
        &credential,
        &common::http(&running),
    )
    .unwrap();
    let maa = MaaClient::new(&running.urls().maa, &common::http(&running)).unwrap();
    Setup {
        running,
        keys,
        hsm,
        maa,
        platform,
    }
}

impl Setup {
    /// A 2048-bit exportable RSA key `name` under `release_policy` (mutable policy).
    async fn create_rsa_key(&self, name: &str, release_policy: &[u8]) -> KeyInfo {
        self.keys
            .create_exportable_key(
                name,
                ExportableKeyType::RsaHsm { bits: 2048 },
                release_policy,
                false,
            )
            .await
            .unwrap()
    }

    /// Releasing the current version of `name` with `maa_token` (`CKM_RSA_AES_KEY_WRAP`, no
    /// nonce), which must be refused.
    async fn refused_release(&self, name: &str, maa_token: &str) -> KeyVaultError {
        self.keys
            .release_key(
                name,
                None,
                maa_token,
                KeyWrapAlgorithm::CkmRsaAesKeyWrap,
                None,
            )
            .await
            .unwrap_err()
    }
}

fn policy(authority: &str, mrenclave: [u8; 32], debuggable: bool) -> Vec<u8> {
    json!({
        "version": "1.0.0",
        "anyOf": [{
            "authority": authority,
            "allOf": [
                { "claim": "x-ms-sgx-mrenclave", "equals": MrEnclave(mrenclave).to_hex() },
                { "claim": "x-ms-sgx-is-debuggable", "equals": debuggable },
            ]
        }]
    })
    .to_string()
    .into_bytes()
}

/// An MAA token for the enclave `ENCLAVE` whose runtime data is the wrapping key's JWKS.
async fn token(maa: &MaaClient, platform: &PlatformKey, wrapping: &WrappingKey) -> String {
    let runtime = wrapping.runtime_data();
    let quote = platform
        .create_quote(&SimReport::new(MrEnclave(ENCLAVE), &runtime))
        .unwrap();
    maa.attest(
        MaaEvidence::SgxQuote(&quote),
        Some(RuntimeData::Json(&runtime)),
    )
    .await
    .unwrap()
}

fn emulator_ca(running: &Running) -> SignerTrust {
    let ca = parse_pem_certificates(running.ca_pem().as_bytes()).unwrap();
    SignerTrust::Roots(ca.into_iter().map(|c| c.to_vec()).collect())
}

fn refusal(err: &KeyVaultError) -> (u16, String, String) {
    match err {
        KeyVaultError::Service {
            status,
            code,
            message,
            ..
        } => (*status, code.clone().unwrap_or_default(), message.clone()),
        other => panic!("expected Key Vault's refusal, got {other}"),
    }
}

#[tokio::test]
async fn rsa_key_round_trip_for_each_enc() {
    let s = setup(|_| {}).await;
    let release_policy = policy(&s.running.urls().maa, ENCLAVE, true);
    let created = s.create_rsa_key("cas-master", &release_policy).await;
    assert_eq!(created.kty, "RSA-HSM");
    assert!(created.exportable);
    let got = s.keys.get_key("cas-master", None).await.unwrap();
    assert_eq!(got.kid, created.kid);
    assert_eq!(got.release_policy.as_deref(), Some(&release_policy[..]));
    let same = s
        .keys
        .get_key("cas-master", Some(&created.version))
        .await
        .unwrap();
    assert_eq!(same.kid, created.kid);

    // What the CAS does at initialisation: wrap data to the key's public part.
    let public = OaepPublicEncryptingKey::new(
        PublicEncryptingKey::from_der(&got.rsa_public_key_spki().unwrap()).unwrap(),
    )
    .unwrap();
    let mut wrapped = vec![0; public.ciphertext_size()];
    let wrapped = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, b"data key", &mut wrapped, None)
        .unwrap()
        .to_vec();

    let wrapping = WrappingKey::generate(3072, "custos-cas-ephemeral").unwrap();
    let maa_token = token(&s.maa, &s.platform, &wrapping).await;
    let trust = emulator_ca(&s.running);
    for enc in KeyWrapAlgorithm::ALL {
        let released = s
            .keys
            .release_key(
                "cas-master",
                Some(&created.version),
                &maa_token,
                enc,
                Some("n-1"),
            )
            .await
            .unwrap();
        let key = released.unwrap(&wrapping, &trust).unwrap();
        assert_eq!(key.kid, created.kid, "{enc:?}");
        assert_eq!(key.kty, "RSA-HSM");
        assert_eq!(key.signer_chain.len(), 2, "leaf and the emulator's CA");
        let KeyMaterial::RsaPrivateKey(pkcs8) = &key.material else {
            panic!("{:?}", key.material)
        };
        // ... and what it does when attested: unwrap the data key with the released key.
        let private =
            OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(pkcs8).unwrap())
                .unwrap();
        let mut out = vec![0; private.min_output_size()];
        let data_key = private
            .decrypt(&OAEP_SHA256_MGF1SHA256, &wrapped, &mut out, None)
            .unwrap();
        assert_eq!(data_key, b"data key", "{enc:?}");
    }

    // The current version, without naming it.
    let released = s
        .keys
        .release_key(
            "cas-master",
            None,
            &maa_token,
            KeyWrapAlgorithm::CkmRsaAesKeyWrap,
            None,
        )
        .await
        .unwrap();
    released.unwrap(&wrapping, &trust).unwrap();
    // Opting out of the signer check still checks the signature and the chain's links.
    released.unwrap(&wrapping, &SignerTrust::AnySigner).unwrap();

    // Opening fails closed: another signer root, another wrapping key, a forged nonce.
    let other_ca = custos_azure_emulator::pki::Ca::generate().unwrap();
    let err = released
        .unwrap(
            &wrapping,
            &SignerTrust::Roots(vec![other_ca.der().to_vec()]),
        )
        .unwrap_err();
    assert_eq!(err.step, "x5c chain", "{err}");
    let stranger = WrappingKey::generate(2048, "custos-cas-ephemeral").unwrap();
    let err = released.unwrap(&stranger, &trust).unwrap_err();
    assert_eq!(err.step, "RSA-OAEP", "{err}");
    let mut forged = released.clone();
    forged.nonce = Some("n-2".into());
    let err = forged.unwrap(&wrapping, &trust).unwrap_err();
    assert_eq!(err.step, "request", "{err}");
    assert!(err.reason.contains("expected nonce \"n-2\""), "{err}");
    let mut tampered = released.clone();
    tampered.jws.replace_range(tampered.jws.len() - 4.., "AAAA");
    let err = tampered.unwrap(&wrapping, &trust).unwrap_err();
    assert_eq!(err.step, "JWS signature", "{err}");
}

#[tokio::test]
async fn symmetric_key_is_released_as_its_bytes_by_a_managed_hsm_only() {
    let s = setup(|_| {}).await;
    let policy = policy(&s.running.urls().maa, ENCLAVE, true);
    let oct = ExportableKeyType::OctHsm { bits: 256 };
    let err = s
        .keys
        .create_exportable_key("data-key", oct, &policy, true)
        .await
        .unwrap_err();
    let (status, code, message) = refusal(&err);
    assert_eq!((status, code.as_str()), (400, "BadParameter"), "{message}");
    assert!(
        message.contains("only supported by Managed HSM"),
        "{message}"
    );

    let created = s
        .hsm
        .create_exportable_key("data-key", oct, &policy, true)
        .await
        .unwrap();
    assert_eq!(
        (created.kty.as_str(), created.rsa_public.is_none()),
        ("oct-HSM", true)
    );
    assert!(
        created
            .kid
            .starts_with(&format!("{}/keys/data-key/", s.running.urls().managed_hsm)),
        "{}",
        created.kid
    );
    let wrapping = WrappingKey::generate(2048, "w").unwrap();
    let maa_token = token(&s.maa, &s.platform, &wrapping).await;
    let trust = emulator_ca(&s.running);
    let mut bytes = Vec::new();
    for enc in [
        KeyWrapAlgorithm::RsaAesKeyWrap256,
        KeyWrapAlgorithm::RsaAesKeyWrap384,
    ] {
        let key = s
            .hsm
            .release_key("data-key", None, &maa_token, enc, None)
            .await
            .unwrap()
            .unwrap(&wrapping, &trust)
            .unwrap();
        let KeyMaterial::Symmetric(k) = key.material else {
            panic!("{:?}", key.material)
        };
        assert_eq!(k.len(), 32);
        bytes.push(k.to_vec());
    }
    assert_eq!(bytes[0], bytes[1], "the same key, released twice");
}

#[tokio::test]
async fn unmet_policies_are_refused_naming_the_claim() {
    let s = setup(|_| {}).await;
    let authority = s.running.urls().maa.clone();
    let cases = [
        (
            "wrong-enclave",
            policy(&authority, [0x11; 32], true),
            "claim x-ms-sgx-mrenclave: expected equals \"1111",
        ),
        (
            "production-only",
            policy(&authority, ENCLAVE, false),
            "claim x-ms-sgx-is-debuggable: expected equals false, actual true",
        ),
        (
            "other-authority",
            policy("https://sharedeus2.eus2.attest.azure.net", ENCLAVE, true),
            "no rule for authority",
        ),
    ];
    let wrapping = WrappingKey::generate(2048, "w").unwrap();
    let maa_token = token(&s.maa, &s.platform, &wrapping).await;
    for (name, release_policy, expected) in cases {
        s.create_rsa_key(name, &release_policy).await;
        let err = s.refused_release(name, &maa_token).await;
        let (status, code, message) = refusal(&err);
        assert_eq!((status, code.as_str()), (403, "Forbidden"), "{name}: {err}");
        assert!(
            message.starts_with(
                "Target environment attestation does not meet key release policy requirements: "
            ),
            "{name}: {message}"
        );
        assert!(message.contains(expected), "{name}: {message}");
        assert!(
            err.to_string()
                .contains(&format!("key \"{name}\": HTTP 403 Forbidden")),
            "{err}"
        );
    }

    // A malformed policy is refused when the key is created.
    let err = s
        .keys
        .create_exportable_key(
            "bad-policy",
            ExportableKeyType::RsaHsm { bits: 2048 },
            br#"{"version":"1.0.0","anyOf":[{"authority":"x","allOf":[{"claim":"c","matches":1}]}]}"#,
            false,
        )
        .await
        .unwrap_err();
    let (status, code, message) = refusal(&err);
    assert_eq!((status, code.as_str()), (400, "BadParameter"));
    assert!(
        message.contains("unknown operator \"matches\""),
        "{message}"
    );
}

#[tokio::test]
async fn tokens_of_other_authorities_and_expired_tokens_are_refused() {
    let s = setup(|c| c.maa.token_lifetime_secs = 1).await;
    s.create_rsa_key("k", &policy(&s.running.urls().maa, ENCLAVE, true))
        .await;
    let wrapping = WrappingKey::generate(2048, "w").unwrap();

    // Another MAA instance (another emulator): its tokens cannot be verified here.
    let other = setup(|_| {}).await;
    let foreign = token(&other.maa, &other.platform, &wrapping).await;
    let err = s.refused_release("k", &foreign).await;
    let (status, _, message) = refusal(&err);
    assert_eq!(status, 403);
    assert!(
        message.starts_with(&format!(
            "Target environment attestation statement cannot be verified: issuer {} is not an attestation authority this vault can verify",
            other.running.urls().maa
        )),
        "{message}"
    );

    // A token of the vault's own MAA, one second long: refused once it expired.
    let short = token(&s.maa, &s.platform, &wrapping).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let err = s.refused_release("k", &short).await;
    let (status, _, message) = refusal(&err);
    assert_eq!(status, 403);
    assert!(
        message.contains("cannot be verified: the token expired at"),
        "{message}"
    );

    // A token of the vault's MAA whose signature was tampered with (checked before expiry).
    let mut tampered = token(&s.maa, &s.platform, &wrapping).await.into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let err = s.refused_release("k", &tampered).await;
    let (status, _, message) = refusal(&err);
    assert_eq!(status, 403);
    assert!(
        message.contains("cannot be verified: the token's signature does not verify"),
        "{message}"
    );

    // Not a token at all.
    let err = s.refused_release("k", "not-a-jwt").await;
    assert_eq!(refusal(&err).0, 403);
}

#[tokio::test]
async fn release_needs_the_release_permission() {
    let client = custos_azure_emulator::demo::CLIENT_ID.to_owned();
    let s = setup(|c| {
        c.keyvault.access_policies = vec![AccessPolicyConfig {
            client_id: client.clone(),
            keys: vec!["get".into(), "create".into()],
            ..Default::default()
        }]
    })
    .await;
    s.create_rsa_key("k", &policy(&s.running.urls().maa, ENCLAVE, true))
        .await;
    s.keys.get_key("k", None).await.unwrap();
    let wrapping = WrappingKey::generate(2048, "w").unwrap();
    let maa_token = token(&s.maa, &s.platform, &wrapping).await;
    let err = s.refused_release("k", &maa_token).await;
    let (status, code, message) = refusal(&err);
    assert_eq!((status, code.as_str()), (403, "Forbidden"));
    assert!(
        message.contains(&format!("'appid={client};"))
            && message.contains("does not have keys release permission"),
        "{message}"
    );
    // A key that is not there: Key Vault's KeyNotFound.
    let err = s.keys.get_key("missing", None).await.unwrap_err();
    let (status, code, _) = refusal(&err);
    assert_eq!((status, code.as_str()), (404, "KeyNotFound"));
}

/// Releasing the current version of `kek` from the Managed HSM.
async fn release(s: &Setup, maa_token: &str) -> Result<ReleasedKey, KeyVaultError> {
    s.hsm
        .release_key(
            "kek",
            None,
            maa_token,
            KeyWrapAlgorithm::CkmRsaAesKeyWrap,
            None,
        )
        .await
}

#[tokio::test]
async fn a_managed_hsm_authorizes_by_its_local_rbac_roles() {
    let client = custos_azure_emulator::demo::CLIENT_ID.to_owned();
    let assign = |roles: &[&str]| {
        let client = client.clone();
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        move |c: &mut Config| {
            c.managed_hsm.role_assignments = roles
                .into_iter()
                .map(|role| RoleAssignmentConfig {
                    client_id: client.clone(),
                    role,
                })
                .collect()
        }
    };
    let rsa = ExportableKeyType::RsaHsm { bits: 2048 };
    let wrapping = WrappingKey::generate(2048, "w").unwrap();
    let denied = |err: KeyVaultError, action: &str| {
        let (status, code, message) = refusal(&err);
        assert_eq!((status, code.as_str()), (403, "Forbidden"), "{message}");
        assert!(
            message.contains(&format!("appid={client};"))
                && message.contains(&format!("Microsoft.KeyVault/managedHsm/keys/{action}"))
                && message.contains("'/keys/kek'"),
            "{message}"
        );
    };

    // The auditor reads but neither creates nor releases; roles are checked before the key
    // is looked up, and the vault's access policies play no part.
    let s = setup(assign(&["Managed HSM Crypto Auditor"])).await;
    let release_policy = policy(&s.running.urls().maa, ENCLAVE, true);
    let err = s
        .hsm
        .create_exportable_key("kek", rsa, &release_policy, false)
        .await
        .unwrap_err();
    denied(err, "create");
    let maa_token = token(&s.maa, &s.platform, &wrapping).await;
    denied(release(&s, &maa_token).await.unwrap_err(), "release/action");

    // The release user (assigned by role id) releases but does not read.
    let s = setup(assign(&["21dbd100-6940-42c2-9190-5d6cb909625c"])).await;
    let err = s.hsm.get_key("kek", None).await.unwrap_err();
    denied(err, "read/action");

    // Crypto User creates, reads and releases.
    let s = setup(assign(&["Managed HSM Crypto User"])).await;
    let release_policy = policy(&s.running.urls().maa, ENCLAVE, true);
    let created = s
        .hsm
        .create_exportable_key("kek", rsa, &release_policy, false)
        .await
        .unwrap();
    s.hsm.get_key("kek", None).await.unwrap();
    let maa_token = token(&s.maa, &s.platform, &wrapping).await;
    let key = release(&s, &maa_token)
        .await
        .unwrap()
        .unwrap(&wrapping, &emulator_ca(&s.running))
        .unwrap();
    let KeyMaterial::RsaPrivateKey(pkcs8) = key.material else {
        panic!("{:?}", key.material)
    };
    // The released private key opens what is encrypted to the created key's public half.
    let public = PublicEncryptingKey::from_der(&created.rsa_public_key_spki().unwrap()).unwrap();
    let public = OaepPublicEncryptingKey::new(public).unwrap();
    let mut sealed = vec![0; public.ciphertext_size()];
    let sealed = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, b"data key", &mut sealed, None)
        .unwrap();
    let private = PrivateDecryptingKey::from_pkcs8(&pkcs8).unwrap();
    let private = OaepPrivateDecryptingKey::new(private).unwrap();
    let mut opened = vec![0; private.min_output_size()];
    let opened = private
        .decrypt(&OAEP_SHA256_MGF1SHA256, sealed, &mut opened, None)
        .unwrap();
    assert_eq!(opened, b"data key");
}
