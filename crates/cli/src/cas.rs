//! `custos cas attest|list|set-default`: verify a CAS's evidence and pin its key; and the
//! connection to a pinned CAS that every other CAS command uses.
//!
//! The CLI never trusts a CAS it has not attested: its key must be pinned in the CLI
//! configuration. Attesting is `custos_client::attest` (the CAS's evidence binds the key it
//! presented in this very TLS connection and a fresh nonce); this module turns the flags into
//! its expectations and prints.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use custos_attestation::claims::{Claims, EvidenceKind};
use custos_attestation::policy::{Check, ServicePolicy};
use custos_client::attest::{self, AttestError, Expectations, HardwareError};
use custos_client::{CasClient, ClientError, ServerTrust};
use custos_ids::KeyHash;

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
    let fetched = match runtime().block_on(attest::fetch_evidence(&addr)) {
        Ok(fetched) => fetched,
        Err(e) => return fail(1, attest_error_lines(&e)),
    };
    // Hardware evidence names no identity of its own the flags could accept: ask for one
    // before verifying (Custos has no built-in CAS signer).
    if fetched.kind() == Some(EvidenceKind::SgxQuote) && !args.names_an_identity() {
        return fail(
            1,
            [format!(
                "CAS {addr}: give the CAS's MRENCLAVE with --mrenclave, or its signer with --mrsigner, --isvprodid and --isvsvn (Custos has no built-in CAS signer; for testing only: --only-for-testing-trust-any)"
            )],
        );
    }
    let cas = match fetched.verify(&FlagExpectations(&args)) {
        Ok(cas) => cas,
        Err(AttestError::Unverifiable { reason, .. }) => return fail(2, [reason]),
        Err(e) => return fail(1, attest_error_lines(&e)),
    };
    let claims = &cas.claims;
    let kind = claims.evidence();
    let simulated = kind == EvidenceKind::SimQuote;
    let pinned = PinnedCas {
        key_hash: cas.key_hash,
        certificate: cas.certificate.clone(),
        mrenclave: claims.mrenclave().to_hex(),
        evidence: kind.as_str().to_owned(),
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
    println!("key hash: {}", cas.key_hash);
    println!("mrenclave: {}", claims.mrenclave());
    let note = match (simulated, claims.debug()) {
        (true, _) => " (SIMULATED, debug: accepted for testing only)".to_owned(),
        (false, true) => " (debug: accepted for testing only)".to_owned(),
        (false, false) => String::new(),
    };
    println!("evidence: {kind}{note}");
    if kind == EvidenceKind::SgxQuote {
        println!("tcb: {}", claims.tcb().status);
        if !claims.tcb().advisory_ids.is_empty() {
            println!("advisories: {}", claims.tcb().advisory_ids.join(", "));
        }
    }
    ExitCode::SUCCESS
}

/// What `custos cas attest`'s flags accept of a CAS.
struct FlagExpectations<'a>(&'a AttestArgs);

impl Expectations for FlagExpectations<'_> {
    fn key_hash(&self) -> Option<KeyHash> {
        self.0.cas_key_hash
    }

    fn accepts_simulation(&self) -> bool {
        self.0.only_for_testing_trust_any
    }

    fn verify_sgx_quote(&self, quote: &[u8], runtime_data: &[u8]) -> Result<Claims, HardwareError> {
        let args = self.0;
        crate::evidence::verify_bound_sgx_quote(
            quote,
            runtime_data,
            &args.collateral,
            &args.pccs_options,
            args.root_ca.as_deref(),
            args.verify_at(),
        )
        .map_err(|failure| match failure {
            crate::evidence::Failure::Input(message) => HardwareError::Unverifiable(message),
            crate::evidence::Failure::Rejected(reasons) => HardwareError::Rejected(reasons),
        })
    }

    fn policy(&self, claims: &Claims) -> Result<ServicePolicy, String> {
        self.0.policy(claims)
    }
}

/// A refused attestation as lines, each naming the CAS, with the flag that would accept what
/// a check refused.
fn attest_error_lines(error: &AttestError) -> Vec<String> {
    match error {
        AttestError::Fetch { addr, source } => {
            let mut lines = error_lines(source);
            lines[0] = format!("CAS {addr} did not give evidence: {}", lines[0]);
            lines
        }
        AttestError::KeyHash {
            addr,
            expected,
            actual,
        } => vec![format!(
            "CAS {addr}: key hash (-c): expected {expected}, actual {actual}"
        )],
        AttestError::SimulationRefused { .. } => vec![format!(
            "{error}: accept it only for testing, with --only-for-testing-trust-any"
        )],
        AttestError::Rejected { addr, reasons } => reasons
            .iter()
            .map(|r| format!("CAS {addr}: evidence rejected: {r}"))
            .collect(),
        AttestError::Denied { addr, denials } => denials
            .iter()
            .map(|d| {
                let hint = match d.check {
                    Check::Debug => " (accept it only for testing, with --only-for-testing-debug)",
                    Check::TcbStatus => " (tolerate it with -G, -C or -S)",
                    _ => "",
                };
                format!("CAS {addr}: {d}{hint}")
            })
            .collect(),
        other => vec![other.to_string()],
    }
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

/// A failed call to the CAS as lines: the error (for a refusal, `STATUS code: message`), then
/// each of the CAS's reasons.
pub(crate) fn error_lines(error: &ClientError) -> Vec<String> {
    let mut lines = vec![error.to_string()];
    if let ClientError::Refused { error, .. } = error {
        lines.extend(error.reasons.iter().cloned());
    }
    lines
}
