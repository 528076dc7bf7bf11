//! `custos cas attest|list|set-default`: verify a CAS's evidence and pin its key; and the
//! connection to a pinned CAS that every other CAS command uses.
//!
//! The CLI never trusts a CAS it has not attested: its key must be pinned in the CLI
//! configuration. Attesting checks the CAS's evidence binds the key it presented in this
//! very TLS connection (`report_data[0..32] = SHA-256(SPKI ‖ nonce)` with a fresh nonce),
//! then checks what the evidence says against the flags.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use clap::Subcommand;
use custos_attestation::claims::EvidenceKind;
use custos_attestation::policy::{Check, Decision, evaluate};
use custos_attestation::sim::{PlatformPublicKey, SimQuoteVerifier, TrustedPlatforms};
use custos_attestation::{UnixTime, Verifier as _};
use custos_cas::client::{CasClient, ServerTrust};
use custos_ids::KeyHash;
use hyper::{Method, StatusCode};

pub(crate) use crate::attest_flags::AttestArgs;
use crate::config::{CliConfig, PinnedCas, normalize_addr, not_attested};

#[derive(Debug, Subcommand)]
pub(crate) enum CasCommand {
    /// Verify a CAS's evidence, pin its key and make it the default CAS.
    ///
    /// Without testing flags, simulated evidence and debug-mode CAS instances are refused.
    /// Hardware evidence (an SGX quote) is verified with Intel DCAP: give the CAS's MRENCLAVE
    /// and where collateral comes from (--pccs URL or --collateral JSON).
    Attest(Box<AttestArgs>),
    /// List the attested CAS instances (the default is marked `*`).
    List,
    /// Make an attested CAS the default.
    SetDefault {
        /// The CAS address (host[:port], default port 8081).
        addr: String,
    },
}

pub(crate) fn run(command: CasCommand) -> ExitCode {
    match command {
        CasCommand::Attest(args) => attest(args),
        CasCommand::List => list(),
        CasCommand::SetDefault { addr } => set_default(&addr),
    }
}

/// Prints each line to stderr and returns `code`.
pub(crate) fn fail(code: u8, lines: impl IntoIterator<Item = String>) -> ExitCode {
    for line in lines {
        eprintln!("{line}");
    }
    ExitCode::from(code)
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts")
}

fn attest(args: Box<AttestArgs>) -> ExitCode {
    if let Err(usage) = args.check() {
        return fail(2, [usage]);
    }
    let addr = match normalize_addr(&args.addr) {
        Ok(a) => a,
        Err(e) => return fail(2, [e]),
    };
    let mut config = match CliConfig::load() {
        Ok(c) => c,
        Err(e) => return fail(2, [e]),
    };
    let mut nonce = [0u8; 32];
    if aws_lc_rs::rand::fill(&mut nonce).is_err() {
        return fail(
            1,
            ["cannot make a nonce: random number generator failed".to_owned()],
        );
    }
    let client = match CasClient::new(&addr, None, ServerTrust::AttestationOnly) {
        Ok(c) => c,
        Err(e) => return fail(1, [e.to_string()]),
    };
    let response = match runtime().block_on(client.request(
        Method::GET,
        &format!("/v1/attest?nonce={}", hex::encode(nonce)),
        None,
    )) {
        Ok(r) => r,
        Err(e) => return fail(1, [e.to_string()]),
    };
    if response.status != StatusCode::OK {
        return fail(
            1,
            [format!(
                "CAS {addr} did not give evidence: {}",
                error_text(&response)
            )],
        );
    }
    let body = response.json();
    let kind = body["evidence"]["type"].as_str().unwrap_or_default();
    let quote = match body["evidence"]["quote"].as_str().and_then(|q| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(q)
            .ok()
    }) {
        Some(q) => q,
        None => {
            return fail(
                1,
                [format!(
                    "CAS {addr}: the evidence is missing or not base64url"
                )],
            );
        }
    };
    let mut runtime_data = response.server_spki.clone();
    runtime_data.extend_from_slice(&nonce);
    let key_hash = KeyHash::of_spki(&response.server_spki);
    if let Some(expected) = args.cas_key_hash
        && expected != key_hash
    {
        return fail(
            1,
            [format!(
                "CAS {addr}: key hash (-c): expected {expected}, actual {key_hash}"
            )],
        );
    }

    let claims = match kind.parse::<EvidenceKind>() {
        Ok(EvidenceKind::SimQuote) => {
            if !args.only_for_testing_trust_any {
                return fail(
                    1,
                    [format!(
                        "CAS {addr} gave simulated evidence (sim-quote), which proves nothing: accept it only for testing, with --only-for-testing-trust-any"
                    )],
                );
            }
            let platform = body["platform_key"]
                .as_str()
                .and_then(|p| PlatformPublicKey::from_spki_pem(p.as_bytes()).ok());
            let Some(platform) = platform else {
                return fail(
                    1,
                    [format!(
                        "CAS {addr}: simulated evidence without a usable platform key"
                    )],
                );
            };
            let verifier = SimQuoteVerifier::new(TrustedPlatforms::from_ids([platform.id()]));
            match verifier.verify(&quote, &runtime_data, UnixTime::now()) {
                Ok(claims) => claims,
                Err(e) => {
                    return fail(1, [format!("CAS {addr}: evidence rejected: {e}")]);
                }
            }
        }
        Ok(EvidenceKind::SgxQuote) => {
            if !args.names_an_identity() {
                return fail(
                    1,
                    [format!(
                        "CAS {addr}: give the CAS's MRENCLAVE with --mrenclave, or its signer with --mrsigner, --isvprodid and --isvsvn (Custos has no built-in CAS signer; for testing only: --only-for-testing-trust-any)"
                    )],
                );
            }
            match crate::evidence::verify_bound_sgx_quote(
                &quote,
                &runtime_data,
                &args.collateral,
                &args.pccs_options,
                args.root_ca.as_deref(),
                args.verify_at(),
            ) {
                Ok(claims) => claims,
                Err(crate::evidence::Failure::Input(message)) => return fail(2, [message]),
                Err(crate::evidence::Failure::Rejected(reasons)) => {
                    return fail(
                        1,
                        reasons
                            .into_iter()
                            .map(|r| format!("CAS {addr}: evidence rejected: {r}")),
                    );
                }
            }
        }
        Ok(other) => {
            return fail(
                1,
                [format!(
                    "CAS {addr} gave {other} evidence; a CAS attests with sgx-quote (hardware) or sim-quote (simulation)"
                )],
            );
        }
        Err(e) => return fail(1, [format!("CAS {addr}: {e}")]),
    };

    let policy = match args.policy(&claims) {
        Ok(policy) => policy,
        Err(refusal) => return fail(1, [format!("CAS {addr}: {refusal}")]),
    };
    if let Decision::Deny(denials) = evaluate(&claims, &policy) {
        return fail(
            1,
            denials.iter().map(|d| {
                let hint = match d.check {
                    Check::Debug => " (accept it only for testing, with --only-for-testing-debug)",
                    Check::TcbStatus => " (tolerate it with -G, -C or -S)",
                    _ => "",
                };
                format!("CAS {addr}: {d}{hint}")
            }),
        );
    }
    let simulated = claims.evidence() == EvidenceKind::SimQuote;
    let pinned = PinnedCas {
        key_hash,
        certificate: body["certificate"].as_str().unwrap_or_default().to_owned(),
        mrenclave: claims.mrenclave().to_hex(),
        evidence: kind.to_owned(),
        testing_only: simulated || claims.debug() || args.only_for_testing_trust_any,
        attested_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    config.pin(&addr, pinned);
    if let Err(e) = config.save() {
        return fail(2, [e]);
    }
    println!("CAS {addr} attested and pinned (default CAS)");
    println!("key hash: {key_hash}");
    println!("mrenclave: {}", claims.mrenclave());
    let note = match (simulated, claims.debug()) {
        (true, _) => " (SIMULATED, debug: accepted for testing only)".to_owned(),
        (false, true) => " (debug: accepted for testing only)".to_owned(),
        (false, false) => String::new(),
    };
    println!("evidence: {kind}{note}");
    if claims.evidence() == EvidenceKind::SgxQuote {
        println!("tcb: {}", claims.tcb().status);
        if !claims.tcb().advisory_ids.is_empty() {
            println!("advisories: {}", claims.tcb().advisory_ids.join(", "));
        }
    }
    ExitCode::SUCCESS
}

fn list() -> ExitCode {
    let config = match CliConfig::load() {
        Ok(c) => c,
        Err(e) => return fail(2, [e]),
    };
    for (addr, cas) in config.all_pinned() {
        let mark = if config.default_cas() == Some(addr.as_str()) {
            "*"
        } else {
            " "
        };
        let testing = if cas.testing_only {
            " testing-only"
        } else {
            ""
        };
        println!(
            "{mark} {addr} key_hash={} mrenclave={} evidence={}{testing}",
            cas.key_hash, cas.mrenclave, cas.evidence
        );
    }
    ExitCode::SUCCESS
}

fn set_default(addr: &str) -> ExitCode {
    let addr = match normalize_addr(addr) {
        Ok(a) => a,
        Err(e) => return fail(2, [e]),
    };
    let mut config = match CliConfig::load() {
        Ok(c) => c,
        Err(e) => return fail(2, [e]),
    };
    if let Err(e) = config.set_default(&addr) {
        return fail(1, [e]);
    }
    match config.save() {
        Ok(()) => {
            println!("default CAS: {addr}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(2, [e]),
    }
}

/// A client of the pinned CAS `addr` (or the default CAS), with the user's identity.
pub(crate) fn pinned_client(addr: Option<&str>) -> Result<CasClient, (u8, String)> {
    let mut config = CliConfig::load().map_err(|e| (2, e))?;
    let addr = match addr {
        Some(a) => normalize_addr(a).map_err(|e| (2, e))?,
        None => config.default_cas().map(str::to_owned).ok_or((
            1,
            "no CAS attested yet: run `custos cas attest ADDR` first".to_owned(),
        ))?,
    };
    let pin = config
        .pinned(&addr)
        .ok_or_else(|| (1, not_attested(&addr)))?
        .key_hash;
    let identity = config.identity().map_err(|e| (2, e))?;
    CasClient::new(&addr, Some(&identity), ServerTrust::Pinned(pin)).map_err(|e| (1, e.to_string()))
}

/// `code: message` of a CAS error answer, plus its details, as lines.
pub(crate) fn error_lines(response: &custos_cas::client::Response) -> Vec<String> {
    let body = response.json();
    let mut lines = vec![error_text(response)];
    if let Some(details) = body["error"]["details"].as_array() {
        lines.extend(details.iter().filter_map(|d| d.as_str().map(str::to_owned)));
    }
    lines
}

fn error_text(response: &custos_cas::client::Response) -> String {
    let body = response.json();
    match (
        body["error"]["code"].as_str(),
        body["error"]["message"].as_str(),
    ) {
        (Some(code), Some(message)) => format!("{} {code}: {message}", response.status.as_u16()),
        _ => format!("HTTP {}", response.status),
    }
}
