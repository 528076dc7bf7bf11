//! What an attested service starts with: its session's command, environment, working
//! directory and its image's injection files, placeholders replaced by values.
//!
//! The command was split into arguments when the session was parsed, before any value is
//! put in, so a value never becomes two arguments. Files without a `permission` get 0600.

use std::collections::BTreeMap;

use custos_policy::placeholder::{self, RenderError, Unresolved};
use custos_policy::{Service, Session};
use custos_protocol::enclave::{self, DeliveredFile, Delivery};

use super::values::Resolved;

/// Permission of an injection file that states none.
pub const DEFAULT_FILE_MODE: u32 = 0o600;

/// A placeholder could not be rendered: where, and why (never a value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {error}")]
pub struct RenderFailure {
    /// `command[1]`, `environment.AKV_SECRET`, `injection file /tls/flask.key`.
    pub place: String,
    /// The placeholders that failed.
    pub error: RenderError,
}

/// Renders `service` of `session` with `values` (at least every secret it refers to).
pub fn delivery(
    session: &Session,
    service: &Service,
    values: &BTreeMap<String, Resolved>,
) -> Result<Delivery, Vec<RenderFailure>> {
    let mut failures = Vec::new();
    let mut render = |place: &dyn Fn() -> String, text: &str| -> String {
        match placeholder::render(text, |p| {
            let resolved = values
                .get(p.secret.as_str())
                .ok_or(Unresolved::UnknownSecret)?;
            resolved.value.render(resolved.kind, p.format)
        }) {
            // Moved into the delivery, which zeroizes its contents on drop.
            Ok(rendered) => rendered.as_str().to_owned(),
            Err(error) => {
                failures.push(RenderFailure {
                    place: place(),
                    error,
                });
                String::new()
            }
        }
    };
    let argv = service
        .command
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, arg)| render(&|| format!("command[{i}]"), arg))
        .collect();
    let env = service
        .environment
        .iter()
        .map(|(name, value)| {
            (
                name.clone(),
                render(&|| format!("environment.{name}"), value),
            )
        })
        .collect();
    let image = service
        .image_name
        .as_ref()
        .and_then(|name| session.image(name.as_str()));
    let files = image
        .iter()
        .flat_map(|image| &image.injection_files)
        .map(|file| DeliveredFile {
            path: file.path.clone(),
            content: render(&|| format!("injection file {}", file.path), &file.content)
                .into_bytes(),
            mode: file.mode.unwrap_or(DEFAULT_FILE_MODE),
        })
        .collect();
    let delivery = Delivery {
        argv,
        env,
        pwd: service.pwd.clone().unwrap_or_default(),
        files,
        refresh: service.refresh.as_ref().map(|r| refresh(r, values)),
    };
    if failures.is_empty() {
        Ok(delivery)
    } else {
        Err(failures)
    }
}

/// The session's `refresh`, as `custos-run` reads it (whole seconds: the policy's durations
/// are whole seconds), with when each delivered value that expires does.
fn refresh(
    policy: &custos_policy::Refresh,
    values: &BTreeMap<String, Resolved>,
) -> enclave::Refresh {
    enclave::Refresh {
        interval_secs: policy.interval.as_secs(),
        on_change: match policy.on_change {
            custos_policy::OnChange::Signal => enclave::OnChange::Signal,
            custos_policy::OnChange::Restart => enclave::OnChange::Restart,
            custos_policy::OnChange::None => enclave::OnChange::None,
        },
        signal: policy.signal.as_str().to_owned(),
        grace_secs: policy.grace.as_secs(),
        on_denial: match policy.on_denial {
            custos_policy::OnDenial::Keep => enclave::OnDenial::Keep,
            custos_policy::OnDenial::Stop => enclave::OnDenial::Stop,
        },
        expires: values
            .iter()
            .filter_map(|(name, resolved)| {
                let at = resolved.expiry()?.unix_timestamp().max(0);
                Some((name.clone(), at as u64))
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::*;
    use crate::enclave::values::Value;

    /// A session without attestation whose other sections are `sections`.
    fn session(sections: &str) -> Session {
        let text = format!(
            "name: ns/app\nversion: \"0.3\"\nsecurity: {{ attestation: {{ mode: none }} }}\n{sections}"
        );
        custos_policy::parse("s.yml", &text).unwrap()
    }

    #[test]
    fn placeholders_are_rendered_in_argv_env_and_files_with_their_modes() {
        let session = session(
            r#"
secrets:
  - { name: PW, kind: ascii, value: "two words" }
services:
  - name: svc
    image_name: img
    command: app --password $$SCONE::PW$$ "--hex=$$SCONE::PW:hex$$"
    environment: { PASSWORD: "$$SCONE::PW$$", PLAIN: x }
    pwd: /srv
images:
  - name: img
    injection_files:
      - { path: /etc/app/pw, content: "pw=$$SCONE::PW$$" }
      - { path: /etc/app/public, content: "no secret", permission: "0644" }
"#,
        );
        let mut values = BTreeMap::new();
        values.insert(
            "PW".to_owned(),
            Resolved::new(
                custos_policy::SecretKind::Ascii,
                Value::Text(Zeroizing::new("two words".into())),
            ),
        );
        let d = delivery(&session, &session.services[0], &values).unwrap();
        assert_eq!(
            d.argv,
            ["app", "--password", "two words", "--hex=74776f20776f726473"]
        );
        assert_eq!(d.env["PASSWORD"], "two words");
        assert_eq!(d.env["PLAIN"], "x");
        assert_eq!(d.pwd, "/srv");
        assert_eq!(d.files[0].content, b"pw=two words");
        assert_eq!(d.files[0].mode, 0o600);
        assert_eq!(d.files[1].mode, 0o644);

        let failures = delivery(&session, &session.services[0], &BTreeMap::new()).unwrap_err();
        let text: Vec<String> = failures.iter().map(ToString::to_string).collect();
        assert_eq!(
            text[0],
            "command[2]: `$$SCONE::PW$$` at byte 0: no secret of that name"
        );
        assert_eq!(text.len(), 4, "{text:?}");
    }

    #[test]
    fn a_service_with_refresh_delivers_it_and_one_without_does_not() {
        let session = session(
            r#"
services:
  - name: fresh
    command: app
    refresh:
      interval: 10 minutes
      on_change: signal
      signal: SIGUSR1
      grace: 30 seconds
      on_denial: stop
  - name: restarted
    command: app
    refresh: { interval: 1 hour, on_change: restart }
  - name: plain
    command: app
"#,
        );
        let values = BTreeMap::new();
        let deliver = |name: &str| {
            delivery(&session, session.service(name).unwrap(), &values)
                .unwrap()
                .refresh
                .clone()
        };
        assert_eq!(
            deliver("fresh"),
            Some(enclave::Refresh {
                interval_secs: 600,
                on_change: enclave::OnChange::Signal,
                signal: "SIGUSR1".into(),
                grace_secs: 30,
                on_denial: enclave::OnDenial::Stop,
                expires: BTreeMap::new(),
            })
        );
        assert_eq!(
            deliver("restarted"),
            Some(enclave::Refresh {
                interval_secs: 3600,
                on_change: enclave::OnChange::Restart,
                signal: "SIGHUP".into(),
                grace_secs: 10,
                on_denial: enclave::OnDenial::Keep,
                expires: BTreeMap::new(),
            })
        );
        assert_eq!(deliver("plain"), None);
    }

    #[test]
    fn a_refreshed_delivery_says_when_its_expiring_values_expire() {
        let session = session(
            r#"
secrets:
  - { name: TOKEN, kind: ascii, value: t }
  - { name: TLS, kind: ascii, value: c }
  - { name: PW, kind: ascii, value: p }
services:
  - name: fresh
    command: app $$SCONE::TOKEN$$ $$SCONE::TLS$$ $$SCONE::PW$$
    refresh: { interval: 1 hour }
"#,
        );
        let token_expiry = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a".into()]).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let text = |s: &str| Value::Text(Zeroizing::new(s.into()));
        use custos_policy::SecretKind;
        let values = BTreeMap::from([
            (
                "TOKEN".to_owned(),
                Resolved::expiring(SecretKind::AadToken, text("t"), token_expiry),
            ),
            (
                "TLS".to_owned(),
                Resolved::new(
                    SecretKind::X509,
                    Value::Certificate {
                        chain: vec![cert.pem()],
                        key: None,
                    },
                ),
            ),
            ("PW".to_owned(), Resolved::new(SecretKind::Ascii, text("p"))),
        ]);
        let refresh = delivery(&session, &session.services[0], &values)
            .unwrap()
            .refresh
            .clone()
            .unwrap();
        assert_eq!(
            refresh.expires,
            BTreeMap::from([
                ("TLS".to_owned(), 1_900_000_000),
                ("TOKEN".to_owned(), 1_800_000_000)
            ])
        );
    }
}
