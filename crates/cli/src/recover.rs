//! `custos cas recover`: an operator's part in recovering a locked CAS's master key. The CLI
//! fetches the encrypted shares from the (attested, pinned) CAS, finds the one made for the
//! operator's recovery key, decrypts it locally with the private key (RSA-OAEP-SHA256), and
//! hands the share to the CAS over the pinned TLS connection. The private key never leaves
//! this machine.

use std::path::PathBuf;
use std::process::ExitCode;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use custos_client::{Method, StatusCode};
use custos_ids::KeyHash;
use custos_protocol::recovery::{
    RECOVERY_PATH, RecoveryStatus, SHARE_PATH, ShareAccepted, ShareSubmission,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use zeroize::Zeroizing;

use crate::cas::{error_lines, fail, pinned_client, runtime};

#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    /// The locked CAS (host[:port]); default: the default CAS. Attest it first
    /// (`custos cas attest`): the share goes only to the key its evidence binds.
    #[arg(long, env = "CUSTOS_CAS_ADDR")]
    cas: Option<String>,
    /// Your recovery private key (PEM, PKCS#8): the one whose public key the CAS's
    /// master_key.recovery.keys lists.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
}

/// The private key in `path` and the hash of its public key.
fn recovery_key(path: &std::path::Path) -> Result<(OaepPrivateDecryptingKey, KeyHash), String> {
    let error = |reason: String| format!("--key {}: {reason}", path.display());
    let pem = Zeroizing::new(std::fs::read(path).map_err(|e| error(e.to_string()))?);
    let der = match PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| error(format!("expected a PEM private key: {e}")))?
    {
        PrivateKeyDer::Pkcs8(der) => der,
        _ => {
            return Err(error(
                "expected a PKCS#8 PEM private key (BEGIN PRIVATE KEY)".into(),
            ));
        }
    };
    let private = PrivateDecryptingKey::from_pkcs8(der.secret_pkcs8_der())
        .map_err(|e| error(format!("expected an RSA private key: {e}")))?;
    let spki = private
        .public_key()
        .as_der()
        .map_err(|_| error("its public key cannot be encoded".into()))?;
    let hash = KeyHash::of_spki(spki.as_ref());
    let private = OaepPrivateDecryptingKey::new(private)
        .map_err(|_| error("not usable for RSA-OAEP".into()))?;
    Ok((private, hash))
}

pub(crate) fn run(args: &RecoverArgs) -> ExitCode {
    let (private, key_hash) = match recovery_key(&args.key) {
        Ok(key) => key,
        Err(e) => return fail(2, [e]),
    };
    let client = match pinned_client(args.cas.as_deref()) {
        Ok(client) => client,
        Err((code, e)) => return fail(code, [e]),
    };
    let result: Result<ShareAccepted, Vec<String>> = runtime().block_on(async {
        let status: RecoveryStatus = client
            .request(Method::GET, RECOVERY_PATH, None)
            .await
            .and_then(|r| r.decode(StatusCode::OK))
            .map_err(|e| error_lines(&e))?;
        let mine = status
            .shares
            .iter()
            .find(|s| s.key_hash == key_hash.to_string())
            .ok_or_else(|| {
                vec![format!(
                    "no share of this CAS was made for your key (SHA-256 {key_hash}); its {} shares are for: {}",
                    status.shares.len(),
                    status.shares.iter().map(|s| s.key_hash.as_str()).collect::<Vec<_>>().join(", ")
                )]
            })?;
        let ciphertext = STANDARD
            .decode(&mine.ciphertext)
            .map_err(|e| vec![format!("share {}: not base64: {e}", mine.index)])?;
        let mut plain = Zeroizing::new(vec![0u8; private.min_output_size()]);
        let plain = private
            .decrypt(&OAEP_SHA256_MGF1SHA256, &ciphertext, &mut plain, None)
            .map_err(|_| vec![format!("share {}: your key does not decrypt it", mine.index)])?;
        eprintln!(
            "share {} of {} decrypted; the CAS has {} of the {} it needs",
            mine.index,
            status.shares.len(),
            status.received,
            status.threshold
        );
        let submission = ShareSubmission {
            share: STANDARD.encode(&*plain),
        };
        let body = Zeroizing::new(serde_json::to_vec(&submission).unwrap_or_default());
        client
            .request(Method::POST, SHARE_PATH, Some(body.to_vec()))
            .await
            .and_then(|r| r.decode(StatusCode::OK))
            .map_err(|e| error_lines(&e))
    });
    match result {
        Ok(accepted) if accepted.unlocked => {
            println!(
                "share {} accepted ({} of {}): the CAS is unlocked and starts",
                accepted.index, accepted.received, accepted.threshold
            );
            ExitCode::SUCCESS
        }
        Ok(accepted) => {
            println!(
                "share {} accepted ({} of {}): {} more needed",
                accepted.index,
                accepted.received,
                accepted.threshold,
                accepted.threshold.saturating_sub(accepted.received)
            );
            ExitCode::SUCCESS
        }
        Err(lines) => fail(1, lines),
    }
}
