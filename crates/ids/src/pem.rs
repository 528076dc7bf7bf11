//! The one PEM writer (reading is `rustls-pki-types`'s).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// `-----BEGIN {label}-----`, the base64 of `der` in 64-character lines, `-----END {label}-----`,
/// each line ending in `\n` (as Key Vault and OpenSSL write it).
pub fn encode(label: &str, der: &[u8]) -> String {
    // Moved out, not copied: the wrapper is left to zeroize an empty string.
    std::mem::take(&mut *encode_secret(label, der))
}

/// [`encode`] for private keys: every buffer that held the base64 text is zeroized, the
/// result on drop.
pub fn encode_secret(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(STANDARD.encode(der));
    // Exactly the text's length, so `out` never reallocates (which would leave an
    // unzeroized copy behind): the two armour lines and a newline per body line.
    let armour = "-----BEGIN -----\n-----END -----\n".len() + 2 * label.len();
    let mut out = Zeroizing::new(String::with_capacity(
        armour + b64.len() + b64.len().div_ceil(64),
    ));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_64_characters_between_begin_and_end() {
        let der: Vec<u8> = (0..=255).collect();
        let pem = encode("CERTIFICATE", &der);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN CERTIFICATE-----"));
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        let body = &lines[1..lines.len() - 1];
        assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64));
        assert_eq!(STANDARD.decode(body.concat()).unwrap(), der);
        assert!(pem.ends_with("-----\n"));
        assert_eq!(*encode_secret("CERTIFICATE", &der), pem);
    }

    #[test]
    fn the_capacity_holds_the_whole_text() {
        for len in [0, 1, 47, 48, 49, 1000, 4096] {
            let der = vec![0xa5; len];
            let pem = encode_secret("RSA PRIVATE KEY", &der);
            // `with_capacity` allocates exactly what is asked (std's documented guarantee); a
            // reallocation would have grown it past the length.
            assert_eq!(pem.capacity(), pem.len(), "{len} bytes");
        }
    }
}
