//! A certificate's secret as Key Vault (or anyone able to write to the vault) returns it:
//! PEM text, or a PKCS#12 archive. Parsing must never panic, only succeed or say why not.
//!
//! The first byte chooses the content type; for PKCS#12 the rest is the raw archive (the
//! fuzzer mutates bytes, the target base64-encodes them as the vault would).

#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (content_type, value) = if selector % 2 == 0 {
        ("application/x-pem-file", String::from_utf8_lossy(rest).into_owned())
    } else {
        ("application/x-pkcs12", base64::engine::general_purpose::STANDARD.encode(rest))
    };
    let _ = custos_azure::certificate_from_secret(content_type, &SecretString::from(value));
});
