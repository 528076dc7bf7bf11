//! `custos demo --fresh`: after the sample's flow, secrets kept fresh (`services[].refresh`, a
//! Custos extension). The session is updated so `custos-run` supervises the app and re-attests
//! every second, the secret delivered as a file the app reads again on SIGHUP; the app is
//! started again that way; then the secret, and then the certificate, are rotated in the Key
//! Vault while a client keeps calling `/secret`, and the demo shows when the new value and the
//! new certificate arrived, that the app is the same process, and that no request failed.
//! Values are shown only as SHA-256 prefixes.

use std::fs;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use super::{
    APP_HOST, APP_PORT, Demo, SESSION_TEMPLATE, STOP_GRACE, StepResult, VaultView, app_client,
    app_secret_url, run_captured, tokio_runtime, write_file,
};

/// The CAS's Key Vault cache TTL with `--fresh`, in seconds.
pub(super) const CACHE_TTL_SECS: u64 = 1;
/// Where the session puts the Key Vault secret for the app (next to its certificate).
const SECRET_FILE: &str = "/tls/akv-secret";
/// How often the client calls `/secret` during the rotation.
const POLL: Duration = Duration::from_millis(20);
/// How long the new value may take to reach the app: the interval (1 s) plus the cache TTL
/// (1 s) is the expected worst case; the rest is room for a loaded machine.
const ROTATION_LIMIT: Duration = Duration::from_secs(30);
/// Requests after the new value arrived, each of which must carry it.
const REQUESTS_AFTER: u32 = 10;

impl Demo {
    /// The steps after the sample's flow.
    pub(super) fn walk_fresh(&mut self, vault: &VaultView) -> Result<(), super::Failure> {
        self.step(
            "Ask for fresh secrets: custos session update --use-env session-fresh.template.yml",
            |demo| demo.update_session_fresh(),
        )?;
        self.step(
            "Start the app again through custos-run, now supervised (re-attests every second)",
            |demo| demo.run_supervised(),
        )?;
        self.step(
            "Rotate the secret in the Key Vault while a client calls /secret every 20 ms",
            |demo| demo.rotate_secret(vault),
        )?;
        self.step(
            "Rotate the certificate in the Key Vault while a client connects anew every 20 ms",
            |demo| demo.rotate_certificate(vault),
        )
    }

    /// The sample's session with `refresh` and the secret as a file, as the session update.
    fn update_session_fresh(&mut self) -> StepResult<()> {
        let text = fresh_session(SESSION_TEMPLATE)?;
        let path = self.work.join("templates/session-fresh.template.yml");
        write_file(&path, &text)?;
        let mut command = self.with_sample_env(std::process::Command::new(&self.custos));
        command.args(["session", "update", "--use-env"]).arg(&path);
        let mut details = vec![
            "the sample's session, and in its service:".to_owned(),
            "  refresh: {interval: 1 second}   (on change: SIGHUP, the app reloads)".to_owned(),
            format!(
                "  AKV_SECRET_FILE: {SECRET_FILE}   (instead of AKV_SECRET; injected from MY_AKV_SECRET)"
            ),
        ];
        details.extend(run_captured(command, "custos session update")?);
        Ok(((), details))
    }

    fn run_supervised(&mut self) -> StepResult<()> {
        if let Some(mut app) = self.app.take() {
            app.stop(STOP_GRACE);
        }
        let ((), mut details) = self.run_attested()?;
        let runtime_pid = self.app.as_ref().ok_or("the app is not running")?.id();
        let app_pid = self.app_pid()?;
        details.push(format!(
            "rest-api-sample is pid {app_pid}, the child of custos-run (pid {runtime_pid})"
        ));
        Ok(((), details))
    }

    /// The PID of the app, custos-run's one child.
    fn app_pid(&self) -> Result<u32, String> {
        let runtime = self.app.as_ref().ok_or("the app is not running")?.id();
        let path = format!("/proc/{runtime}/task/{runtime}/children");
        let children = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        match children.split_whitespace().collect::<Vec<_>>()[..] {
            [pid] => pid.parse().map_err(|e| format!("{path}: {e}")),
            ref other => Err(format!(
                "custos-run (pid {runtime}) has {} children, expected 1",
                other.len()
            )),
        }
    }

    fn rotate_secret(&mut self, vault: &VaultView) -> StepResult<()> {
        let name = self.env["AKV_SECRET_NAME"].clone();
        let old = vault.secret.expose_secret().to_owned();
        let new = new_secret_value();
        let client = app_client(vault)?;
        let change = VaultChange {
            method: reqwest::Method::PUT,
            path: format!("secrets/{name}"),
            value: new.clone(),
        };
        let wording = Wording {
            gives: format!("serves {name}"),
            changed: format!("set a new version of {name} in the Key Vault"),
            other: "another value",
            arrived: "served the new value",
            since: "the rotation",
            each: "",
        };
        let fingerprint = |value: &String| fingerprint(value);
        self.rotate(change, wording, old, new, fingerprint, || {
            served_secret(&client)
        })
    }

    /// Imports a new certificate for the app into the vault (Key Vault's Import Certificate,
    /// as `az keyvault certificate import` does) and watches the app's handshakes take it.
    fn rotate_certificate(&mut self, vault: &VaultView) -> StepResult<()> {
        let name = self.env["AKV_CERT_SECRET_NAME"].clone();
        let (new_pem, new_leaf) = new_app_certificate()?;
        let old_leaf = first_certificate(&vault.chain_pem)?;
        let client = handshake_client(&format!("{}{new_pem}", vault.chain_pem))?;
        let change = VaultChange {
            method: reqwest::Method::POST,
            path: format!("certificates/{name}/import"),
            value: new_pem,
        };
        let wording = Wording {
            gives: format!("presents {name}"),
            changed: format!("imported a new version of {name} into the Key Vault"),
            other: "another certificate",
            arrived: "presented the new certificate",
            since: "the import",
            each: " (each a new TLS connection)",
        };
        let fingerprint = |leaf: &Vec<u8>| fingerprint_bytes(leaf);
        let probe = || served_certificate(&client);
        self.rotate(change, wording, old_leaf, new_leaf, fingerprint, probe)
    }

    /// Checks that the app gives `old`, makes `change` as the vault's owner, and watches the
    /// same app give `new` with no request failing; says so in `wording`, values only as
    /// `fingerprint`s.
    fn rotate<T: PartialEq, F: Future<Output = Result<T, String>>>(
        &mut self,
        change: VaultChange,
        wording: Wording,
        old: T,
        new: T,
        fingerprint: impl Fn(&T) -> String,
        probe: impl Fn() -> F,
    ) -> StepResult<()> {
        let pid_before = self.app_pid()?;
        let (http, owner) = self.vault_owner()?;
        let vault_url = self.env["AKV_VAULT"].clone();
        let mut details = Vec::new();
        let (arrived_after, tally) = tokio_runtime()?.block_on(async {
            if probe().await? != old {
                return Err(format!(
                    "before the rotation the app does not give what the vault holds ({})",
                    wording.gives
                ));
            }
            details.push(format!(
                "before: the app {} with SHA-256 {} (pid {pid_before})",
                wording.gives,
                fingerprint(&old)
            ));
            let credential = owner.credential()?;
            as_vault_owner(&http, &credential, &vault_url, &change).await?;
            let rotated = Instant::now();
            details.push(format!(
                "{}: SHA-256 {}",
                wording.changed,
                fingerprint(&new)
            ));
            let describe =
                |value: &T| format!("{} (SHA-256 {})", wording.other, fingerprint(value));
            watch_rotation(rotated, probe, &new, &old, describe).await
        })?;
        let pid_after = self.same_app(pid_before, &tally)?;
        details.push(format!(
            "the app {} (SHA-256 {}) {} ms after {}",
            wording.arrived,
            fingerprint(&new),
            arrived_after.as_millis(),
            wording.since
        ));
        details.push(format!(
            "same process: pid {pid_after}; {}{}",
            tally.summary(),
            wording.each
        ));
        Ok(((), details))
    }

    /// The app's PID, failing if it is not `before` (the app was restarted) or if a request
    /// of `tally` failed.
    fn same_app(&self, before: u32, tally: &Tally) -> Result<u32, String> {
        let after = self.app_pid()?;
        if after != before {
            return Err(format!(
                "the app was restarted: pid {before} before the rotation, {after} after"
            ));
        }
        if let Some(failure) = &tally.first_failure {
            return Err(format!("{}; first: {failure}", tally.summary()));
        }
        Ok(after)
    }
}

/// Asks `probe` every [`POLL`] from `rotated` on until it answers `new` (at most
/// [`ROTATION_LIMIT`]), then [`REQUESTS_AFTER`] more times, each of which must answer `new`;
/// returns how long `new` took and what was asked. An error, or an answer that is neither
/// `old` nor `new` (named by `describe`), counts as a failed request.
async fn watch_rotation<T: PartialEq, F: Future<Output = Result<T, String>>>(
    rotated: Instant,
    probe: impl Fn() -> F,
    new: &T,
    old: &T,
    describe: impl Fn(&T) -> String,
) -> Result<(Duration, Tally), String> {
    let mut tally = Tally::default();
    let arrived_after = loop {
        if tally.count(probe().await, new, Some(old), &describe) {
            break rotated.elapsed();
        }
        if rotated.elapsed() > ROTATION_LIMIT {
            return Err(format!(
                "the new value did not reach the app within {ROTATION_LIMIT:?} ({})",
                tally.summary()
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    // It stays: no answer goes back to the old value.
    for _ in 0..REQUESTS_AFTER {
        tokio::time::sleep(POLL).await;
        tally.count(probe().await, new, None, &describe);
    }
    Ok((arrived_after, tally))
}

/// The sample's session template, its service supervised every second with its secret as a
/// file; fails if the template no longer has the lines this changes.
fn fresh_session(template: &str) -> Result<String, String> {
    let changes = [
        (
            "      AKV_SECRET: $$SCONE::MY_AKV_SECRET$$\n",
            format!(
                "      # Custos (--fresh): the secret as a file, read again on SIGHUP.\n      AKV_SECRET_FILE: {SECRET_FILE}\n"
            ),
        ),
        (
            "    pwd: /\n",
            "    pwd: /\n    # Custos (--fresh): re-attest every second; changed files are rewritten\n    # and the app gets SIGHUP.\n    refresh: {interval: 1 second}\n".to_owned(),
        ),
        (
            "    injection_files:\n",
            format!(
                "    injection_files:\n      - path: {SECRET_FILE}\n        content: $$SCONE::MY_AKV_SECRET$$\n"
            ),
        ),
    ];
    let mut text = template.to_owned();
    for (line, replacement) in changes {
        if text.matches(line).count() != 1 {
            return Err(format!(
                "session.template.yml: expected the line {:?} once",
                line.trim()
            ));
        }
        text = text.replacen(line, &replacement, 1);
    }
    Ok(text)
}

/// Requests made during the rotation, and the ones that failed.
#[derive(Default)]
struct Tally {
    requests: u32,
    failed: u32,
    first_failure: Option<String>,
}

impl Tally {
    /// One answer: whether it is `wanted`. An error, or an answer that is neither `wanted`
    /// nor `previous`, is a failure (named by `describe`, which shows no value).
    fn count<T: PartialEq>(
        &mut self,
        answer: Result<T, String>,
        wanted: &T,
        previous: Option<&T>,
        describe: impl Fn(&T) -> String,
    ) -> bool {
        self.requests += 1;
        match answer {
            Ok(value) if value == *wanted => true,
            Ok(value) if Some(&value) == previous => false,
            Ok(value) => {
                self.note_failure(&format!("an answer with {}", describe(&value)));
                false
            }
            Err(e) => {
                self.note_failure(&e);
                false
            }
        }
    }

    fn note_failure(&mut self, why: &str) {
        self.failed += 1;
        self.first_failure.get_or_insert_with(|| why.to_owned());
    }

    fn summary(&self) -> String {
        format!("{} requests, {} failed", self.requests, self.failed)
    }
}

/// The secret in the app's answer to `GET /secret`.
async fn served_secret(client: &reqwest::Client) -> Result<String, String> {
    let (url, response) = ask_app(client).await?;
    let json: serde_json::Value = response
        .json()
        .await
        .map_err(|e| format!("{url}: the answer is not JSON: {e}"))?;
    json["secret"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{url}: the answer has no secret"))
}

/// `GET /secret` of the app: its URL and the answer, if it succeeded.
async fn ask_app(client: &reqwest::Client) -> Result<(String, reqwest::Response), String> {
    let url = app_secret_url();
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}"));
    }
    Ok((url, response))
}

/// How the demo tells one rotation.
struct Wording {
    /// What the app gives: `serves sample-secret`, `presents flask`.
    gives: String,
    /// What the vault's owner did: `set a new version of sample-secret in the Key Vault`.
    changed: String,
    /// An answer that is neither the old nor the new one: `another value`.
    other: &'static str,
    /// What the app did once the change reached it: `served the new value`.
    arrived: &'static str,
    /// What the delay is counted from: `the rotation`.
    since: &'static str,
    /// Said of every request: ` (each a new TLS connection)`, or nothing.
    each: &'static str,
}

/// A change the vault's owner makes: Set Secret (`PUT secrets/NAME`, `az keyvault secret
/// set`) or Import Certificate (`POST certificates/NAME/import`, `az keyvault certificate
/// import`), both with `{"value": value}`.
struct VaultChange {
    method: reqwest::Method,
    path: String,
    value: String,
}

/// Makes `change` at the vault as its owner.
async fn as_vault_owner(
    http: &custos_azure::HttpOptions,
    credential: &custos_azure::AzureCredential,
    vault: &str,
    change: &VaultChange,
) -> Result<(), String> {
    let VaultChange {
        method,
        path,
        value,
    } = change;
    let vault = custos_azure::vault_url(vault).map_err(|e| e.to_string())?;
    let token = credential
        .token(custos_azure::KEY_VAULT_SCOPE)
        .await
        .map_err(|e| format!("a Key Vault token: {e}"))?;
    let url = format!("{vault}{path}?api-version=7.4");
    let response = http
        .reqwest_client()
        .map_err(|e| e.to_string())?
        .request(method.clone(), &url)
        .bearer_auth(token.token.expose_secret())
        .json(&serde_json::json!({ "value": value }))
        .send()
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{method} {url}: HTTP {status}"));
    }
    Ok(())
}

/// A new certificate for the app (self-signed, P-256, for its host name): its key and
/// certificate as PEM (the Import Certificate `value`), and the certificate's DER.
fn new_app_certificate() -> Result<(String, Vec<u8>), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![APP_HOST.to_owned()]).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, APP_HOST);
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((
        format!("{}{}", key.serialize_pem(), cert.pem()),
        cert.der().to_vec(),
    ))
}

/// The first certificate of a PEM chain, DER.
fn first_certificate(chain_pem: &str) -> Result<Vec<u8>, String> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or("the vault's certificate holds no PEM certificate")?
        .map(|c| c.to_vec())
        .map_err(|e| format!("the vault's certificate: {e}"))
}

/// A client of the app trusting the certificates in `trusted_pem`, making a new connection
/// (so a new handshake) for every request and reporting the certificate it was shown.
fn handshake_client(trusted_pem: &str) -> Result<reqwest::Client, String> {
    let roots = reqwest::Certificate::from_pem_bundle(trusted_pem.as_bytes())
        .map_err(|e| format!("the trusted certificates: {e}"))?;
    reqwest::Client::builder()
        .tls_certs_only(roots)
        .resolve(APP_HOST, SocketAddr::from(([127, 0, 0, 1], APP_PORT)))
        .no_proxy()
        .pool_max_idle_per_host(0)
        .tls_info(true)
        .build()
        .map_err(|e| e.to_string())
}

/// The certificate (DER) the app presented to answer `GET /secret` on a new connection.
async fn served_certificate(client: &reqwest::Client) -> Result<Vec<u8>, String> {
    let (url, response) = ask_app(client).await?;
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format!("{url}: no certificate seen"))
}

/// A new secret in the sample's form: 32 random bytes, hex.
fn new_secret_value() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
    hex::encode(bytes)
}

/// The first 16 hex digits of a value's SHA-256: enough to tell values apart, nothing of the
/// value itself.
fn fingerprint(value: &str) -> String {
    fingerprint_bytes(value.as_bytes())
}

fn fingerprint_bytes(value: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value);
    hex::encode(&digest.as_ref()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fresh_session_supervises_the_service_and_delivers_the_secret_as_a_file() {
        let text = fresh_session(SESSION_TEMPLATE).unwrap();
        assert!(
            text.contains("    refresh: {interval: 1 second}\n"),
            "{text}"
        );
        assert!(text.contains(&format!("      AKV_SECRET_FILE: {SECRET_FILE}\n")));
        assert!(text.contains(&format!(
            "      - path: {SECRET_FILE}\n        content: $$SCONE::MY_AKV_SECRET$$\n"
        )));
        assert!(!text.contains("AKV_SECRET: "), "{text}");
    }

    #[test]
    fn a_template_without_the_expected_lines_is_refused_naming_the_line() {
        let error = fresh_session("name: x\n").unwrap_err();
        assert!(
            error.contains("AKV_SECRET: $$SCONE::MY_AKV_SECRET$$"),
            "{error}"
        );
    }
}
