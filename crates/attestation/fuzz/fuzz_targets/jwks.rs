//! JWKS parsing, the certificates in them, and the MAA signer self-check on each key.
#![no_main]

use custos_attestation::maa::MaaKeySet;
use custos_attestation::maa::signers::check_signer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = MaaKeySet::from_jwks(data) else {
        return;
    };
    for key in keys.keys() {
        let _ = check_signer(key, None);
    }
});
