//! Key Vault keys: Create Key, Get Key and Release (Secure Key Release).
//!
//! Keys are RSA (`RSA`, `RSA-HSM`; 2048, 3072 or 4096 bits) or, in the Managed HSM only,
//! symmetric (`oct-HSM`; 128, 192 or 256 bits), generated here. An exportable key needs an HSM key type and a release policy
//! (and a release policy needs an exportable key), as in Key Vault. Release verifies the
//! caller's MAA token (this emulator's MAA: signature, issuer, expiry), evaluates the key's
//! release policy against its claims, wraps the key material to the RSA key the token carries
//! in `x-ms-runtime.keys` (`CKM_RSA_AES_KEY_WRAP`: RSA-OAEP of an ephemeral AES-256 key, then
//! AES key wrap with padding, RFC 5649) and answers a JWS signed by a key whose certificate
//! chain (to the emulator's CA) is in `x5c`, with the payload Key Vault's answers have.

use std::collections::HashMap;
use std::sync::RwLock;

use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OaepAlgorithm,
    OaepPublicEncryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{decode_b64, random_hex};
use crate::keyvault::{Flavour, KvError};
use crate::maa::Maa;
use crate::pki::{Ca, PkiError};
use crate::release_policy::ReleasePolicy;

/// The release policy content type Key Vault documents (and the SDKs send).
const POLICY_CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// The wrapping key Azure's confidential VMs present; preferred when the token has several.
const TPM_EPHEMERAL_KEY: &str = "TpmEphemeralEncryptionKey";
const DEFAULT_ENC: &str = "CKM_RSA_AES_KEY_WRAP";

/// The vault's keys and the key that signs released keys.
pub struct Keys {
    flavour: Flavour,
    store: RwLock<HashMap<String, KeyEntry>>,
    signer: ReleaseSigner,
}

struct KeyEntry {
    name: String,
    /// Oldest first; the last one is current.
    versions: Vec<KeyVersion>,
}

struct KeyVersion {
    version: String,
    kty: String,
    key_ops: Vec<String>,
    material: Material,
    created: u64,
    enabled: bool,
    exportable: bool,
    release_policy: Option<StoredPolicy>,
    tags: Value,
}

enum Material {
    Rsa {
        pkcs8: Vec<u8>,
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Oct(Vec<u8>),
}

#[derive(Clone)]
struct StoredPolicy {
    data: Vec<u8>,
    content_type: String,
    immutable: bool,
    parsed: ReleasePolicy,
}

/// Signs release answers: an RSA key with a certificate issued by the emulator's CA.
struct ReleaseSigner {
    key: RsaKeyPair,
    chain: Vec<Vec<u8>>,
}

impl Keys {
    /// An empty key store whose release answers are signed under `ca`.
    pub fn new(ca: &Ca, flavour: Flavour) -> Result<Self, PkiError> {
        let (key, chain) = ca.rsa_signing_certificate("Custos Azure Emulator Key Release")?;
        Ok(Self {
            flavour,
            store: RwLock::new(HashMap::new()),
            signer: ReleaseSigner { key, chain },
        })
    }
}

#[derive(Deserialize)]
struct CreateKey {
    kty: Option<String>,
    key_size: Option<u32>,
    key_ops: Option<Vec<String>>,
    attributes: Option<CreateAttributes>,
    release_policy: Option<PolicyIn>,
    tags: Option<Value>,
}

#[derive(Deserialize)]
struct CreateAttributes {
    enabled: Option<bool>,
    exportable: Option<bool>,
}

#[derive(Deserialize)]
struct PolicyIn {
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    data: Option<String>,
    immutable: Option<bool>,
}

#[derive(Deserialize)]
struct ReleaseRequest {
    target: Option<String>,
    nonce: Option<String>,
    enc: Option<String>,
}

/// Whether `kty` names an HSM-protected key type (the only ones that may be exportable).
fn is_hsm(kty: &str) -> bool {
    kty.ends_with("-HSM")
}

impl Keys {
    /// Create Key (`POST /keys/{name}/create`): a new version of `name`.
    pub fn create(&self, base: &str, name: &str, body: &[u8], now: u64) -> Result<Value, KvError> {
        let request: CreateKey = serde_json::from_slice(body).map_err(|e| {
            KvError::bad_parameter(format!("The request body is not valid JSON for a key: {e}"))
        })?;
        let kty = request
            .kty
            .ok_or_else(|| KvError::bad_parameter("Property 'kty' is required."))?;
        let exportable = request
            .attributes
            .as_ref()
            .and_then(|a| a.exportable)
            .unwrap_or(false);
        let enabled = request
            .attributes
            .as_ref()
            .and_then(|a| a.enabled)
            .unwrap_or(true);
        if kty == "oct-HSM" && self.flavour == Flavour::Vault {
            return Err(KvError::bad_parameter(
                "The key type oct-HSM is only supported by Managed HSM.",
            ));
        }
        let (material, default_ops) = generate(&kty, request.key_size)?;
        let mut release_policy = request.release_policy.map(parse_policy_in).transpose()?;
        if exportable && !is_hsm(&kty) {
            return Err(KvError::bad_parameter(format!(
                "Exportable keys must be HSM-protected: kty must be RSA-HSM, EC-HSM or oct-HSM, not {kty}."
            )));
        }
        let mut store = self.store.write().expect("keys lock");
        let existing = store.get(&name.to_ascii_lowercase());
        if release_policy.is_none() && exportable {
            // Later versions of an exportable key keep the policy of the current one.
            release_policy = existing
                .and_then(|e| e.versions.last())
                .and_then(|v| v.release_policy.clone());
        }
        match (exportable, &release_policy) {
            (true, None) => {
                return Err(KvError::bad_parameter(
                    "A release policy must be provided when creating the first version of an exportable key (property 'release_policy').",
                ));
            }
            (false, Some(_)) => {
                return Err(KvError::bad_parameter(
                    "A release policy can only be set on an exportable key (attributes.exportable must be true).",
                ));
            }
            _ => {}
        }
        let stored_name = existing.map_or(name.to_owned(), |e| e.name.clone());
        let version = KeyVersion {
            version: random_hex(16),
            kty,
            key_ops: request.key_ops.unwrap_or(default_ops),
            material,
            created: now,
            enabled,
            exportable,
            release_policy,
            tags: request.tags.unwrap_or_else(|| json!({})),
        };
        let bundle = key_bundle(base, &stored_name, &version);
        store
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| KeyEntry {
                name: stored_name,
                versions: Vec::new(),
            })
            .versions
            .push(version);
        Ok(bundle)
    }

    /// Get Key: the public part, attributes and release policy of a version (empty: current).
    pub fn get(&self, base: &str, name: &str, version: Option<&str>) -> Result<Value, KvError> {
        let store = self.store.read().expect("keys lock");
        let (entry, key) = find(&store, name, version)?;
        Ok(key_bundle(base, &entry.name, key))
    }

    /// Release (`POST /keys/{name}[/{version}]/release`).
    pub fn release(
        &self,
        maa: &Maa,
        base: &str,
        name: &str,
        version: Option<&str>,
        api_version: &str,
        body: &[u8],
    ) -> Result<Value, KvError> {
        let request: ReleaseRequest = serde_json::from_slice(body).map_err(|e| {
            KvError::bad_parameter(format!(
                "The request body is not valid JSON for a key release: {e}"
            ))
        })?;
        let target = request
            .target
            .filter(|t| !t.is_empty())
            .ok_or_else(|| KvError::bad_parameter("Property 'target' is required."))?;
        let enc = request.enc.as_deref().unwrap_or(DEFAULT_ENC);
        let oaep = oaep_for(enc)?;
        let store = self.store.read().expect("keys lock");
        let (entry, key) = find(&store, name, version)?;
        let kid = format!("{base}/keys/{}/{}", entry.name, key.version);
        if !key.exportable {
            return Err(KvError::new(
                axum::http::StatusCode::FORBIDDEN,
                "Forbidden",
                format!("Key {kid} is not exportable: release needs attributes.exportable = true."),
            ));
        }
        if !key.enabled {
            return Err(KvError::new(
                axum::http::StatusCode::FORBIDDEN,
                "Forbidden",
                "Operation release is not allowed on a disabled key.",
            ));
        }
        let policy = key
            .release_policy
            .as_ref()
            .expect("exportable keys have a release policy");
        let forbidden =
            |message: String| KvError::new(axum::http::StatusCode::FORBIDDEN, "Forbidden", message);
        let claims = maa.verify_token(&target).map_err(|why| {
            forbidden(format!(
                "Target environment attestation statement cannot be verified: {why}."
            ))
        })?;
        let issuer = claims["iss"].as_str().unwrap_or_default();
        policy.parsed.evaluate(issuer, &claims).map_err(|why| {
            forbidden(format!(
                "Target environment attestation does not meet key release policy requirements: {why}."
            ))
        })?;
        let (wrapping_kid, wrapping_spki) = wrapping_key(&claims)?;
        let plaintext = match &key.material {
            Material::Rsa { pkcs8, .. } => pkcs8.as_slice(),
            Material::Oct(bytes) => bytes.as_slice(),
        };
        let ciphertext = rsa_aes_key_wrap(&wrapping_spki, oaep, plaintext)?;
        let key_hsm = json!({
            "schema_version": "1.0",
            "header": { "kid": wrapping_kid, "alg": "dir", "enc": enc },
            "ciphertext": URL_SAFE_NO_PAD.encode(ciphertext),
        });
        let mut released = key_bundle(base, &entry.name, key);
        released["key"]["key_hsm"] = json!(URL_SAFE_NO_PAD.encode(key_hsm.to_string()));
        if let Some(p) = released
            .get_mut("release_policy")
            .and_then(Value::as_object_mut)
        {
            p.remove("contentType");
        }
        // The request as the vault understood it: the key as it was named.
        let requested_kid = match version {
            Some(v) if !v.is_empty() => format!("{base}/keys/{name}/{v}"),
            _ => format!("{base}/keys/{name}"),
        };
        let mut echoed = json!({ "api-version": api_version, "enc": enc, "kid": requested_kid });
        if let Some(nonce) = &request.nonce {
            echoed["nonce"] = json!(nonce);
        }
        let payload = json!({ "request": echoed, "response": { "key": released } });
        Ok(json!({ "value": self.signer.sign(&payload)? }))
    }
}

fn find<'a>(
    store: &'a HashMap<String, KeyEntry>,
    name: &str,
    version: Option<&str>,
) -> Result<(&'a KeyEntry, &'a KeyVersion), KvError> {
    let not_found = || {
        let id = match version {
            Some(v) if !v.is_empty() => format!("{name}/{v}"),
            _ => name.to_owned(),
        };
        KvError::new(
            axum::http::StatusCode::NOT_FOUND,
            "KeyNotFound",
            format!(
                "A key with (name/id) {id} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
        )
    };
    let entry = store
        .get(&name.to_ascii_lowercase())
        .ok_or_else(not_found)?;
    let key = match version {
        None | Some("") => entry.versions.last(),
        Some(v) => entry
            .versions
            .iter()
            .find(|k| k.version.eq_ignore_ascii_case(v)),
    }
    .ok_or_else(not_found)?;
    Ok((entry, key))
}

/// Key material of type `kty` and its default `key_ops`.
fn generate(kty: &str, key_size: Option<u32>) -> Result<(Material, Vec<String>), KvError> {
    let ops = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    match kty {
        "RSA" | "RSA-HSM" => {
            let size = match key_size.unwrap_or(2048) {
                2048 => KeySize::Rsa2048,
                3072 => KeySize::Rsa3072,
                4096 => KeySize::Rsa4096,
                other => {
                    return Err(KvError::bad_parameter(format!(
                        "key_size {other} is not supported for RSA keys (2048, 3072 or 4096)."
                    )));
                }
            };
            let pair = aws_lc_rs::rsa::KeyPair::generate(size)
                .map_err(|_| KvError::internal("RSA key generation failed"))?;
            let pkcs8 = aws_lc_rs::encoding::AsDer::as_der(&pair)
                .map_err(|_| KvError::internal("RSA key encoding failed"))?
                .as_ref()
                .to_vec();
            let public = pair.public_key();
            let material = Material::Rsa {
                pkcs8,
                n: public.modulus().big_endian_without_leading_zero().to_vec(),
                e: public.exponent().big_endian_without_leading_zero().to_vec(),
            };
            Ok((
                material,
                ops(&[
                    "encrypt",
                    "decrypt",
                    "sign",
                    "verify",
                    "wrapKey",
                    "unwrapKey",
                ]),
            ))
        }
        "oct-HSM" => {
            let bits = key_size.unwrap_or(256);
            if ![128, 192, 256].contains(&bits) {
                return Err(KvError::bad_parameter(format!(
                    "key_size {bits} is not supported for oct-HSM keys (128, 192 or 256)."
                )));
            }
            let mut key = vec![0u8; bits as usize / 8];
            aws_lc_rs::rand::fill(&mut key).map_err(|_| KvError::internal("RNG failed"))?;
            Ok((
                Material::Oct(key),
                ops(&["encrypt", "decrypt", "wrapKey", "unwrapKey"]),
            ))
        }
        other => Err(KvError::bad_parameter(format!(
            "kty {other} is not supported by the emulator (RSA, RSA-HSM or oct-HSM)."
        ))),
    }
}

fn parse_policy_in(policy: PolicyIn) -> Result<StoredPolicy, KvError> {
    let content_type = policy
        .content_type
        .unwrap_or_else(|| POLICY_CONTENT_TYPE.to_owned());
    let base_type = content_type.split(';').next().unwrap_or("").trim();
    if !base_type.eq_ignore_ascii_case("application/json") {
        return Err(KvError::bad_parameter(format!(
            "release_policy.contentType {content_type:?} is not supported (expected {POLICY_CONTENT_TYPE:?})."
        )));
    }
    let data = policy.data.as_deref().and_then(decode_b64).ok_or_else(|| {
        KvError::bad_parameter("release_policy.data is required: the policy JSON, base64url.")
    })?;
    let parsed = ReleasePolicy::parse(&data)
        .map_err(|why| KvError::bad_parameter(format!("The release policy is invalid: {why}.")))?;
    Ok(StoredPolicy {
        data,
        content_type,
        immutable: policy.immutable.unwrap_or(false),
        parsed,
    })
}

fn key_bundle(base: &str, name: &str, key: &KeyVersion) -> Value {
    let mut jwk = json!({
        "kid": format!("{base}/keys/{name}/{}", key.version),
        "kty": key.kty,
        "key_ops": key.key_ops,
    });
    if let Material::Rsa { n, e, .. } = &key.material {
        jwk["n"] = json!(URL_SAFE_NO_PAD.encode(n));
        jwk["e"] = json!(URL_SAFE_NO_PAD.encode(e));
    }
    let mut bundle = json!({
        "key": jwk,
        "attributes": {
            "enabled": key.enabled,
            "created": key.created,
            "updated": key.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
            "exportable": key.exportable,
        },
        "tags": key.tags,
    });
    if let Some(p) = &key.release_policy {
        bundle["release_policy"] = json!({
            "contentType": p.content_type,
            "data": URL_SAFE_NO_PAD.encode(&p.data),
            "immutable": p.immutable,
        });
    }
    bundle
}

fn oaep_for(enc: &str) -> Result<&'static OaepAlgorithm, KvError> {
    match enc {
        "CKM_RSA_AES_KEY_WRAP" => Ok(&OAEP_SHA1_MGF1SHA1),
        "RSA_AES_KEY_WRAP_256" => Ok(&OAEP_SHA256_MGF1SHA256),
        "RSA_AES_KEY_WRAP_384" => Ok(&OAEP_SHA384_MGF1SHA384),
        other => Err(KvError::bad_parameter(format!(
            "enc {other:?} is not supported (CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256 or RSA_AES_KEY_WRAP_384)."
        ))),
    }
}

/// The RSA key in the token's `x-ms-runtime.keys` that the released key is wrapped to:
/// `TpmEphemeralEncryptionKey` if present, else the first RSA key whose `key_ops` has
/// `encrypt`. Its `kid` (may be empty) and SubjectPublicKeyInfo.
fn wrapping_key(claims: &Value) -> Result<(String, Vec<u8>), KvError> {
    let missing = || {
        KvError::bad_parameter(
            "The attestation token carries no key to wrap the released key with: x-ms-runtime.keys must hold an RSA JWK with key_ops [\"encrypt\"] (e.g. kid TpmEphemeralEncryptionKey).",
        )
    };
    let keys = claims["x-ms-runtime"]["keys"]
        .as_array()
        .ok_or_else(missing)?;
    let is_candidate = |k: &&Value| {
        k["kty"] == "RSA"
            && k["key_ops"]
                .as_array()
                .is_some_and(|ops| ops.iter().any(|o| o == "encrypt"))
    };
    let jwk = keys
        .iter()
        .filter(is_candidate)
        .find(|k| k["kid"] == TPM_EPHEMERAL_KEY)
        .or_else(|| keys.iter().find(is_candidate))
        .ok_or_else(missing)?;
    let component = |name: &str| {
        jwk[name]
            .as_str()
            .and_then(decode_b64)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                KvError::bad_parameter(format!(
                    "The wrapping key in x-ms-runtime.keys has no base64url '{name}'."
                ))
            })
    };
    let (n, e) = (component("n")?, component("e")?);
    let n_stripped = strip_zeros(&n);
    if n_stripped.len() < 256 {
        return Err(KvError::bad_parameter(format!(
            "The wrapping key in x-ms-runtime.keys is RSA-{} bits; at least 2048 are required.",
            n_stripped.len() * 8
        )));
    }
    let kid = jwk["kid"].as_str().unwrap_or_default().to_owned();
    Ok((kid, custos_ids::spki::rsa_spki(n_stripped, &e)))
}

/// CKM_RSA_AES_KEY_WRAP: RSA-OAEP(`oaep`) of a fresh AES-256 key, then that key wraps
/// `plaintext` with padding (RFC 5649); the two concatenated.
fn rsa_aes_key_wrap(
    spki: &[u8],
    oaep: &'static OaepAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, KvError> {
    let unusable = |why: String| {
        KvError::bad_parameter(format!(
            "The wrapping key in x-ms-runtime.keys is not a usable RSA key: {why}."
        ))
    };
    let public = PublicEncryptingKey::from_der(spki).map_err(|e| unusable(e.to_string()))?;
    let public =
        OaepPublicEncryptingKey::new(public).map_err(|_| unusable("not for OAEP".into()))?;
    let mut aes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut aes).map_err(|_| KvError::internal("RNG failed"))?;
    let mut head = vec![0u8; public.ciphertext_size()];
    let head_len = public
        .encrypt(oaep, &aes, &mut head, None)
        .map_err(|_| KvError::internal("RSA-OAEP encryption failed"))?
        .len();
    head.truncate(head_len);
    let kek = AesKek::new(&AES_256, &aes).map_err(|_| KvError::internal("AES KEK"))?;
    let mut tail = vec![0u8; plaintext.len() + 16];
    let tail_len = kek
        .wrap_with_padding(plaintext, &mut tail)
        .map_err(|_| KvError::internal("AES key wrap failed"))?
        .len();
    tail.truncate(tail_len);
    head.extend(tail);
    Ok(head)
}

impl ReleaseSigner {
    /// A compact JWS of `payload`, RS256, with the header Key Vault's release answers carry.
    fn sign(&self, payload: &Value) -> Result<String, KvError> {
        let leaf = &self.chain[0];
        let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf);
        let header = json!({
            "alg": "RS256",
            "kid": hex::encode_upper(sha1),
            "x5t": URL_SAFE_NO_PAD.encode(sha1),
            "typ": "JWT",
            "x5t#S256": crate::pki::x5t_s256(leaf),
            "x5c": self.chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| KvError::internal("signing the release answer failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;

    #[test]
    fn spki_from_components_matches_aws_lc() {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let spki = custos_ids::spki::rsa_spki(
            public.modulus().big_endian_without_leading_zero(),
            public.exponent().big_endian_without_leading_zero(),
        );
        assert_eq!(spki, public.as_der().unwrap().as_ref());
    }
}
