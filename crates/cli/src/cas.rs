//! `custos cas attest|list|set-default`: verify a CAS's evidence and pin its key; and the
//! connection to a pinned CAS that every other CAS command uses.
//!
//! The CLI never trusts a CAS it has not attested: its key must be pinned in the CLI
//! configuration. Attesting is `custos_client::attest` (the CAS's evidence binds the key it
//! presented in this very TLS connection and a fresh nonce); this module turns the flags into
//! its expectations and prints.
//!
//! A replicated CAS is named by its replicas (`a:8081,b:8081`, or a name resolving to several
//! addresses): each is attested and pinned, all to one key, and calls fail over between them
//! as `custos_client::failover` says.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use custos_attestation::claims::{Claims, EvidenceKind};
use custos_attestation::policy::{Check, ServicePolicy};
use custos_client::attest::{self, AttestError, Expectations, HardwareError};
use custos_client::{CasClient, ClientError, Method, ServerTrust, StatusCode};
use custos_ids::KeyHash;
use custos_protocol::client::{HEALTH_PATH, Health, VERSION_PATH, Version};

pub(crate) use crate::attest_flags::AttestArgs;
use crate::config::{CliConfig, PinnedCas, normalize_addrs};

#[derive(Debug, Subcommand)]
pub(crate) enum CasCommand {
    /// Verify a CAS's evidence, pin its key and make it the default CAS.
    ///
    /// Without testing flags, simulated evidence and debug-mode CAS instances are refused.
    /// Hardware evidence (an SGX quote) is verified with Intel DCAP: give the CAS's MRENCLAVE
    /// and where collateral comes from (--pccs URL or --collateral JSON).
    Attest(Box<AttestArgs>),
    /// List the attested CAS instances (the default is marked `*`; each replica of a
    /// replicated default).
    List,
    /// Make an attested CAS the default.
    SetDefault {
        /// The CAS address (host[:port], default port 8081), or its replicas separated by
        /// commas: each must be attested, all with one key.
        addr: String,
    },
    /// Ask the CAS (or one of its replicas) whether it is healthy, and its version.
    ///
    /// Exit status 0 when the replica that answered is healthy; 1 when it is not or none
    /// answered (every replica named with its reason).
    Health {
        /// The CAS (host[:port]) or its replicas separated by commas; default: the default CAS.
        #[arg(long, env = "CUSTOS_CAS_ADDR")]
        cas: Option<String>,
    },
    /// Print the Secure Key Release policy for the Key Vault key that wraps the CAS's master
    /// key: Key Vault releases the key only against a token of this MAA for an enclave the
    /// policy admits (by measurement, or by signer, product and minimum version).
    ///
    /// Example: custos cas release-policy --maa https://myattestation.eus.attest.azure.net
    /// --mrenclave H > policy.json; az keyvault key create --vault-name V --name custos-kek
    /// --kty RSA-HSM --exportable true --policy policy.json
    ReleasePolicy(crate::release_policy::ReleasePolicyArgs),
    /// Give your recovery share to a locked CAS (its master key was not released): fetches
    /// the shares, decrypts yours here with your recovery private key, and hands it over the
    /// pinned connection. Attest the locked CAS first (`custos cas attest`).
    Recover(crate::recover::RecoverArgs),
}

pub(crate) fn run(command: CasCommand) -> ExitCode {
    match command {
        CasCommand::Attest(args) => attest(args),
        CasCommand::List => list(),
        CasCommand::SetDefault { addr } => set_default(&addr),
        CasCommand::Health { cas } => health(cas.as_deref()),
        CasCommand::ReleasePolicy(args) => crate::release_policy::run(&args),
        CasCommand::Recover(args) => crate::recover::run(&args),
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
    let addrs = match normalize_addrs(&args.addr) {
        Ok(a) => a,
        Err(e) => return fail(2, [e]),
    };
    let list = addrs.join(",");
    let mut config = match CliConfig::load() {
        Ok(c) => c,
        Err(e) => return fail(2, [e]),
    };
    let fetched = match runtime().block_on(attest::fetch_evidence_from_each(&list)) {
        Ok(fetched) => fetched,
        Err(e) => return fail(1, attest_error_lines(&e, args.cas_key_hash.is_some())),
    };
    // Hardware evidence names no identity of its own the flags could accept: ask for one
    // before verifying (Custos has no built-in CAS signer).
    if fetched
        .iter()
        .any(|f| f.kind() == Some(EvidenceKind::SgxQuote))
        && !args.names_an_identity()
    {
        return fail(
            1,
            [format!(
                "CAS {list}: give the CAS's MRENCLAVE with --mrenclave, or its signer with --mrsigner, --isvprodid and --isvsvn (Custos has no built-in CAS signer; for testing only: --only-for-testing-trust-any)"
            )],
        );
    }
    let replicas = match attest::verify_replicas(fetched, &FlagExpectations(&args)) {
        Ok(replicas) => replicas,
        Err(AttestError::Unverifiable { reason, .. }) => return fail(2, [reason]),
        Err(e) => return fail(1, attest_error_lines(&e, args.cas_key_hash.is_some())),
    };
    let Some(cas) = replicas.first() else {
        return fail(1, [format!("CAS {list}: no replica to attest")]);
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
    for addr in &addrs {
        config.pin(addr, pinned.clone());
    }
    if let Err(e) = config.set_default(&addrs).and_then(|()| config.save()) {
        return fail(2, [e]);
    }
    println!("CAS {list} attested and pinned (default CAS)");
    if replicas.len() > 1 {
        let names: Vec<&str> = replicas.iter().map(|r| r.addr.as_str()).collect();
        println!("replicas: {} (each attested, one key)", names.join(", "));
    }
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
/// a check refused. Without `-c` (`pinned_by_flag`), an expected key hash is another
/// replica's.
fn attest_error_lines(error: &AttestError, pinned_by_flag: bool) -> Vec<String> {
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
        } if pinned_by_flag => vec![format!(
            "CAS {addr}: key hash (-c): expected {expected}, actual {actual}"
        )],
        AttestError::KeyHash {
            addr,
            expected,
            actual,
        } => vec![format!(
            "CAS {addr}: key hash: expected {expected} (the first replica's), actual {actual}: replicas of one CAS serve one key; this one is not a replica of it"
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
    let default: Vec<&str> = config
        .default_cas()
        .map(|list| list.split(',').collect())
        .unwrap_or_default();
    for (addr, cas) in config.all_pinned() {
        let mark = if default.contains(&addr.as_str()) {
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
    let addrs = match normalize_addrs(addr) {
        Ok(a) => a,
        Err(e) => return fail(2, [e]),
    };
    let mut config = match CliConfig::load() {
        Ok(c) => c,
        Err(e) => return fail(2, [e]),
    };
    if let Err(e) = config.set_default(&addrs) {
        return fail(1, [e]);
    }
    match config.save() {
        Ok(()) => {
            println!("default CAS: {}", addrs.join(","));
            ExitCode::SUCCESS
        }
        Err(e) => fail(2, [e]),
    }
}

fn health(cas: Option<&str>) -> ExitCode {
    let client = match pinned_client(cas) {
        Ok(client) => client,
        Err((code, e)) => return fail(code, [e]),
    };
    runtime().block_on(async {
        // A replica answering 503 (an unreadable store) is failed over like any call; the
        // answer printed is from the replica that gave it.
        let answer = match client.request(Method::GET, HEALTH_PATH, None).await {
            Ok(answer) => answer,
            Err(e) => return fail(1, error_lines(&e)),
        };
        let health: Health = match serde_json::from_slice(&answer.body) {
            Ok(health) => health,
            Err(_) => {
                let error = answer.decode::<Health>(StatusCode::OK).err();
                return fail(1, error.map(|e| error_lines(&e)).unwrap_or_default());
            }
        };
        let healthy = answer.status == StatusCode::OK;
        println!("CAS {}: {}", answer.addr, health.status);
        for warning in &health.warnings {
            println!("warning: {warning}");
        }
        match client.request(Method::GET, VERSION_PATH, None).await {
            Ok(answer) => match answer.decode::<Version>(StatusCode::OK) {
                Ok(v) => println!(
                    "version: {} {} (API {}) at {}",
                    v.name, v.version, v.api, answer.addr
                ),
                Err(e) => return fail(1, error_lines(&e)),
            },
            Err(e) => return fail(1, error_lines(&e)),
        }
        if healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    })
}

/// A client of the pinned CAS `addr` — one address or the replicas of one CAS — or of the
/// default CAS, with the user's identity.
pub(crate) fn pinned_client(addr: Option<&str>) -> Result<CasClient, (u8, String)> {
    let mut config = CliConfig::load().map_err(|e| (2, e))?;
    let list = match addr {
        Some(a) => a.to_owned(),
        None => config.default_cas().map(str::to_owned).ok_or((
            1,
            "no CAS attested yet: run `custos cas attest ADDR` first".to_owned(),
        ))?,
    };
    let addrs = normalize_addrs(&list).map_err(|e| (2, e))?;
    let pin = config.pinned_key(&addrs).map_err(|e| (1, e))?;
    let identity = config.identity().map_err(|e| (2, e))?;
    CasClient::new(&addrs.join(","), Some(&identity), ServerTrust::Pinned(pin))
        .map_err(|e| (1, e.to_string()))
}

/// A failed call to the CAS as lines: the error (for a refusal, `STATUS code: message`), then
/// each of the CAS's reasons.
pub(crate) fn error_lines(error: &ClientError) -> Vec<String> {
    match error {
        ClientError::AllFailed { attempts } => {
            let mut lines = vec![format!(
                "no CAS replica could serve the request ({} tried):",
                attempts.len()
            )];
            lines.extend(attempts.iter().map(|a| format!("  {a}")));
            lines
        }
        ClientError::Refused { error: detail, .. } => {
            let mut lines = vec![error.to_string()];
            lines.extend(detail.reasons.iter().cloned());
            lines
        }
        other => vec![other.to_string()],
    }
}
