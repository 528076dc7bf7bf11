//! Checks and conversions of single values: URLs, paths, durations, certificates.
//! Each returns a message saying what was expected; none echoes a secret.

use std::time::Duration;

use custos_ids::KeyHash;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::model::Certificate;

/// `https://host[:port][/path]`, returned without a trailing `/`.
pub(crate) fn https_url(text: &str) -> Result<String, String> {
    let Some(rest) = text.strip_prefix("https://") else {
        return Err(format!(
            "expected an https:// URL, found `{}`",
            super::reader::shorten(text)
        ));
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    host_port(authority)?;
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
    {
        return Err(format!(
            "the URL path `/{}` must not contain spaces, `?` or `#`",
            super::reader::shorten(path)
        ));
    }
    Ok(format!("https://{}", rest.trim_end_matches('/')))
}

/// A Key Vault: `https://host[:port][/]` or a bare `host[:port]`, returned as `https://host[:port]`.
pub(crate) fn vault_url(text: &str) -> Result<String, String> {
    if text.starts_with("http://") {
        return Err("Key Vault is only reached over https".into());
    }
    let authority = text.strip_prefix("https://").unwrap_or(text);
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains('/') {
        return Err(format!(
            "expected a vault URL (`https://NAME.vault.azure.net`) or host, found `{}`: a vault URL has no path",
            super::reader::shorten(text)
        ));
    }
    host_port(authority)?;
    Ok(format!("https://{authority}"))
}

fn host_port(authority: &str) -> Result<(), String> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !authority.ends_with(']') => (h, Some(p)),
        _ => (authority, None),
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[') && host.ends_with(']')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
    if !host_ok {
        return Err(format!(
            "`{}` is not a host name",
            super::reader::shorten(host)
        ));
    }
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!(
            "`{}` is not a port number (1-65535)",
            super::reader::shorten(port)
        ));
    }
    Ok(())
}

/// `N unit` with unit `second`, `minute`, `hour`, `day`, `week` or `year` (365 days), singular
/// or plural (`90 days`, `1 year`); at least one second.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let expected = || {
        format!(
            "expected a duration like `90 days` or `59d` (units: seconds, minutes, hours, days, weeks, years; `d` for days), found `{}`",
            super::reader::shorten(text)
        )
    };
    let mut words = text.split_whitespace();
    // `90 days`, or SCONE's compact `59d` (a number directly followed by its unit).
    let (n, unit) = match (words.next(), words.next(), words.next()) {
        (Some(n), Some(unit), None) => (n, unit),
        (Some(word), None, None) => word.split_at(
            word.find(|c: char| !c.is_ascii_digit())
                .ok_or_else(expected)?,
        ),
        _ => return Err(expected()),
    };
    let n: u64 = n.parse().map_err(|_| expected())?;
    let word = if unit == "d" {
        "day"
    } else {
        unit.strip_suffix('s').unwrap_or(unit)
    };
    let seconds = match word {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        "week" => 7 * 86_400,
        "year" => 365 * 86_400,
        _ => return Err(expected()),
    };
    match n.checked_mul(seconds) {
        Some(0) | None => Err(format!(
            "`{}` is out of range (at least one second, at most {} years)",
            super::reader::shorten(text),
            u64::MAX / (365 * 86_400)
        )),
        Some(s) => Ok(Duration::from_secs(s)),
    }
}

/// An absolute path without `.`/`..` components, NUL or a trailing `/`.
pub(crate) fn absolute_path(text: &str, allow_root: bool) -> Result<(), String> {
    if !text.starts_with('/') {
        return Err(format!(
            "expected an absolute path, found `{}`",
            super::reader::shorten(text)
        ));
    }
    if text == "/" {
        return if allow_root {
            Ok(())
        } else {
            Err("`/` is a directory, not a file".into())
        };
    }
    if text.contains('\0') {
        return Err("a path must not contain NUL".into());
    }
    if text.ends_with('/') {
        return Err(format!("`{}` ends with `/`", super::reader::shorten(text)));
    }
    if text[1..]
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "`{}` has an empty, `.` or `..` component",
            super::reader::shorten(text)
        ));
    }
    Ok(())
}

/// Permission bits written in octal (`"0600"`, `0644`, `"600"`), at most `7777`.
pub(crate) fn octal_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if !digits.is_empty() && digits.len() <= 5 && mode <= 0o7777 => Ok(mode),
        _ => Err(format!(
            "expected octal permission bits such as \"0600\", found `{}`",
            super::reader::shorten(text)
        )),
    }
}

/// A DNS name for a certificate: labels of `[A-Za-z0-9-]`, the first may be `*`.
pub(crate) fn dns_name(text: &str) -> Result<(), String> {
    let ok = !text.is_empty()
        && text.len() <= 253
        && text.split('.').enumerate().all(|(i, label)| {
            (i == 0 && label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a DNS name",
            super::reader::shorten(text)
        ))
    }
}

/// Every certificate in a PEM text (at least one); anything else in the text is ignored.
pub(crate) fn certificates(pem: &str) -> Result<Vec<Certificate>, String> {
    let mut found = Vec::new();
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = der.map_err(|e| format!("malformed PEM: {e}"))?;
        found.push(certificate(der.as_ref())?);
    }
    if found.is_empty() {
        return Err("expected a PEM certificate (`-----BEGIN CERTIFICATE-----`)".into());
    }
    Ok(found)
}

fn certificate(der: &[u8]) -> Result<Certificate, String> {
    let public_key_hash = KeyHash::of_certificate(der).map_err(|e| e.to_string())?;
    Ok(Certificate {
        der: der.to_vec(),
        public_key_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            https_url("https://sharedcus.cus.attest.azure.net/").unwrap(),
            "https://sharedcus.cus.attest.azure.net"
        );
        assert_eq!(
            https_url("https://127.0.0.1:8443").unwrap(),
            "https://127.0.0.1:8443"
        );
        assert!(https_url("http://x").is_err());
        assert!(https_url("https://").is_err());
        assert!(https_url("https://a b").is_err());
        assert!(https_url("https://h:0").is_err());
        assert!(https_url("https://h/p?q").is_err());
    }

    #[test]
    fn vaults() {
        for v in [
            "https://scone-sample.vault.azure.net/",
            "https://scone-sample.vault.azure.net",
            "scone-sample.vault.azure.net",
        ] {
            assert_eq!(
                vault_url(v).unwrap(),
                "https://scone-sample.vault.azure.net"
            );
        }
        assert_eq!(
            vault_url("localhost:8443").unwrap(),
            "https://localhost:8443"
        );
        assert!(vault_url("http://v.vault.azure.net").is_err());
        assert!(vault_url("https://v.vault.azure.net/secrets/x").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            duration("90 days").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(
            duration("1 year").unwrap(),
            Duration::from_secs(365 * 86_400)
        );
        assert_eq!(
            duration("12  hours").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        // SCONE's example `59d`.
        assert_eq!(duration("59d").unwrap(), Duration::from_secs(59 * 86_400));
        assert_eq!(
            duration("2weeks").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert!(duration("59ds").is_err());
        assert!(duration("d").is_err());
        assert!(duration("90").is_err());
        assert!(duration("0 days").is_err());
        assert!(duration("3 fortnights").is_err());
        assert!(duration(&format!("{} years", u64::MAX)).is_err());
    }

    #[test]
    fn paths_and_modes() {
        assert!(absolute_path("/tls/flask.key", false).is_ok());
        assert!(absolute_path("/", true).is_ok());
        assert!(absolute_path("/", false).is_err());
        assert!(absolute_path("tls/x", false).is_err());
        assert!(absolute_path("/a/../b", false).is_err());
        assert!(absolute_path("/a//b", false).is_err());
        assert!(absolute_path("/a/", false).is_err());
        assert_eq!(octal_mode("0600").unwrap(), 0o600);
        assert_eq!(octal_mode("644").unwrap(), 0o644);
        assert_eq!(octal_mode("0o4755").unwrap(), 0o4755);
        assert!(octal_mode("0800").is_err());
        assert!(octal_mode("17777").is_err());
        assert!(octal_mode("").is_err());
    }

    #[test]
    fn dns_names() {
        assert!(dns_name("rest-api.scone.sample").is_ok());
        assert!(dns_name("*.example.com").is_ok());
        assert!(dns_name("a.*.com").is_err());
        assert!(dns_name("a..b").is_err());
        assert!(dns_name("a b").is_err());
    }
}
