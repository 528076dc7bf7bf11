//! Key and certificate files: platform keys (PKCS#8 and SubjectPublicKeyInfo, PEM and DER),
//! root CA certificates, MAA signing certificates.
#![no_main]

use custos_attestation::dcap::RootCa;
use custos_attestation::maa::MaaSigningKey;
use custos_attestation::maa::signers::check_signer;
use custos_attestation::{PlatformKey, PlatformPublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = PlatformKey::from_pkcs8_pem(data, "fuzz");
    let _ = PlatformKey::from_pkcs8_der(data, "fuzz");
    let _ = PlatformPublicKey::from_spki_pem(data);
    let _ = PlatformPublicKey::from_spki_der(data);
    let _ = RootCa::from_pem(data);
    let _ = RootCa::from_der(data);
    if let Ok(key) = MaaSigningKey::from_certificate("fuzz", data) {
        let _ = check_signer(&key, None);
    }
});
