//! Quote, OE report and simulated quote parsing (and JSON rendering), plus simulated-quote
//! verification against a fixed trusted key. Nothing may panic or allocate without bound.
#![no_main]

use std::sync::LazyLock;

use custos_attestation::evidence::ParsedEvidence;
use custos_attestation::{PlatformKey, TrustedPlatforms};
use libfuzzer_sys::fuzz_target;

static TRUSTED: LazyLock<TrustedPlatforms> = LazyLock::new(|| {
    let key =
        PlatformKey::from_pkcs8_pem(include_bytes!("../platform-key.pem"), "fuzz key").unwrap();
    TrustedPlatforms::from_ids([key.public_key().id()])
});

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = ParsedEvidence::parse(data) {
        let _ = parsed.to_json(data);
        if let ParsedEvidence::SimQuote(q) = parsed {
            let _ = q.verify(&TRUSTED);
        }
    }
});
