//! `custos evidence …` and `custos mrenclave`: operator tools over `custos-attestation`.
//!
//! Exit codes: 0 verified/ok, 1 rejected (one reason per line on stderr), 2 bad usage or
//! unreadable input (a file that cannot be read, malformed evidence, collateral or keys).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, Subcommand, ValueEnum};
use custos_attestation::dcap::pccs::{CollateralCache, PccsClient, PccsConfig};
use custos_attestation::dcap::{
    CollateralSource, DcapError, DcapVerifier, RootCa, StaticCollateral,
};
use custos_attestation::evidence::ParsedEvidence;
use custos_attestation::maa::signers::{
    DcapCheck, OID_MAA_OE_REPORT, OID_MAA_SGX_QUOTE, SignerReport, check_signer, embedded_evidence,
};
use custos_attestation::maa::{
    MaaConfig, MaaExpectations, MaaKeySet, MaaSigningKey, MaaTokenVerifier, RuntimeDataType,
};
use custos_attestation::{EvidenceKind, UnixTime};
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub(crate) enum EvidenceCommand {
    /// Print the fields of an SGX quote, Open Enclave report or simulated quote as JSON.
    ParseQuote {
        /// The evidence file (binary).
        file: PathBuf,
    },
    /// Verify an SGX quote (or OE report) by Intel DCAP; print its TCB status and identity.
    VerifyQuote(VerifyQuoteArgs),
    /// Verify a Microsoft Azure Attestation token; print its claims.
    VerifyMaaToken(VerifyMaaTokenArgs),
    /// Check that an MAA instance's signing keys come from an enclave bound to them.
    ///
    /// Prints one JSON object per key: kid, enclave, binding_ok, mrenclave, mrsigner,
    /// debug (and dcap when collateral is given). Exits 1 if no key embeds enclave evidence,
    /// or an enclave key's binding or its requested DCAP verification fails.
    MaaSigners(MaaSignersArgs),
}

/// Where collateral comes from.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub(crate) struct CollateralArgs {
    /// Collateral file: dcap-qvl's QuoteCollateralV3 JSON.
    #[arg(long, value_name = "JSON")]
    collateral: Option<PathBuf>,
    /// Fetch collateral from this PCCS/THIM (e.g. https://global.acccache.azure.net/sgx/certification/v4/).
    #[arg(long, value_name = "URL")]
    pccs: Option<String>,
}

/// Options of `--pccs`.
#[derive(Debug, Args)]
pub(crate) struct PccsOptions {
    /// Directory caching fetched collateral.
    #[arg(
        long,
        value_name = "DIR",
        requires = "pccs",
        conflicts_with = "collateral"
    )]
    cache_dir: Option<PathBuf>,
    /// Trust only this CA (PEM) for the PCCS's TLS certificate (Intel's PCCS is often self-signed).
    #[arg(
        long,
        value_name = "PEM",
        requires = "pccs",
        conflicts_with = "collateral"
    )]
    pccs_ca: Option<PathBuf>,
}

/// Local DCAP verification: where the collateral comes from, the root and the time.
#[derive(Debug, Args)]
pub(crate) struct DcapArgs {
    #[command(flatten)]
    collateral: CollateralArgs,
    #[command(flatten)]
    pccs_options: PccsOptions,
    /// Trust this root CA (DER or PEM) instead of Intel's production SGX Root CA.
    #[arg(long, value_name = "DER")]
    root_ca: Option<PathBuf>,
    /// Verify as of this time (Unix seconds) instead of now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyQuoteArgs {
    /// The quote or OE report (binary).
    file: PathBuf,
    #[command(flatten)]
    dcap: DcapArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DataType {
    /// Sent as `dataType: Binary` (checked against `x-ms-sgx-ehd`).
    Binary,
    /// Sent as `dataType: JSON` (checked against `x-ms-runtime`).
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyMaaTokenArgs {
    /// The token (a compact JWT; surrounding whitespace and a JSON `{"token": …}` wrapper are accepted).
    token_file: PathBuf,
    /// The instance's signing keys (`GET {url}/certs`).
    #[arg(long, value_name = "JWKS_FILE")]
    jwks: PathBuf,
    /// The instance URL the token must be issued by (default: accept the token's `iss`, with a warning).
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// Verify as of this time (Unix seconds) instead of now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<u64>,
    /// The runtime data sent to MAA: checks they are the ones bound in the token.
    #[arg(long, value_name = "FILE")]
    runtime_data: Option<PathBuf>,
    /// How the runtime data were sent.
    #[arg(long, value_enum, default_value = "binary", requires = "runtime_data")]
    runtime_data_type: DataType,
    /// The evidence sent to MAA: checks `x-ms-sgx-collateral.quotehash` is its SHA-256.
    #[arg(long, value_name = "FILE")]
    evidence: Option<PathBuf>,
    /// Minimum RSA key size of the signing key (at least 1024).
    #[arg(long, value_name = "BITS", default_value_t = 2048)]
    min_rsa_bits: usize,
}

#[derive(Debug, Args)]
pub(crate) struct MaaSignersArgs {
    /// The instance's JWKS (`GET {url}/certs`), or one PEM certificate.
    jwks_file: PathBuf,
    #[command(flatten)]
    dcap: DcapArgs,
}

#[derive(Debug, Args)]
pub(crate) struct MrenclaveArgs {
    /// The executable.
    file: PathBuf,
}

/// A failed command: bad input (exit 2) or a rejection (exit 1, one reason per line).
pub(crate) enum Failure {
    Input(String),
    Rejected(Vec<String>),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::Input(e.to_string())
    }
}

pub(crate) fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(message)) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
        Err(Failure::Rejected(reasons)) => {
            for reason in reasons {
                eprintln!("{reason}");
            }
            ExitCode::from(1)
        }
    }
}

pub(crate) fn run(command: EvidenceCommand) -> ExitCode {
    finish(match command {
        EvidenceCommand::ParseQuote { file } => parse_quote(&file),
        EvidenceCommand::VerifyQuote(args) => verify_quote(args),
        EvidenceCommand::VerifyMaaToken(args) => verify_maa_token(args),
        EvidenceCommand::MaaSigners(args) => maa_signers(args),
    })
}

pub(crate) fn mrenclave(args: MrenclaveArgs) -> ExitCode {
    finish(
        match custos_attestation::sim::measure_executable(&args.file) {
            Ok(m) => {
                println!("{m}");
                Ok(())
            }
            Err(e) => Err(Failure::Input(format!("{}: {e}", args.file.display()))),
        },
    )
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::Input(format!("{}: {e}", path.display())))
}

fn print(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn time(at: Option<u64>) -> UnixTime {
    match at {
        Some(secs) => UnixTime::since_unix_epoch(Duration::from_secs(secs)),
        None => UnixTime::since_unix_epoch(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        ),
    }
}

fn parse_quote(file: &Path) -> Result<(), Failure> {
    let bytes = read(file)?;
    let parsed = ParsedEvidence::parse(&bytes)
        .map_err(|e| Failure::Input(format!("{}: {e}", file.display())))?;
    print(&parsed.to_json(&bytes));
    Ok(())
}

fn root_ca(path: Option<&Path>) -> Result<RootCa, Failure> {
    let Some(path) = path else {
        return Ok(RootCa::intel_production());
    };
    let bytes = read(path)?;
    let root = if bytes.starts_with(b"-----BEGIN") {
        RootCa::from_pem(&bytes)
    } else {
        RootCa::from_der(&bytes)
    };
    root.map_err(|e| Failure::Input(format!("{}: {e}", path.display())))
}

/// Collateral from a file, or fetched from a PCCS/THIM into a cache.
enum Collateral {
    File(Arc<StaticCollateral>),
    Pccs(PccsClient, tokio::runtime::Runtime),
}

impl Collateral {
    /// `None` when neither `--collateral` nor `--pccs` was given.
    fn from_args(args: &CollateralArgs, options: &PccsOptions) -> Result<Option<Self>, Failure> {
        if let Some(path) = &args.collateral {
            let source = StaticCollateral::from_json(&read(path)?)
                .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
            return Ok(Some(Self::File(Arc::new(source))));
        }
        let Some(url) = &args.pccs else {
            return Ok(None);
        };
        let cache = match &options.cache_dir {
            Some(dir) => {
                CollateralCache::on_disk(dir).map_err(|e| Failure::Input(e.to_string()))?
            }
            None => CollateralCache::in_memory(),
        };
        let mut config = PccsConfig::new(url.clone());
        if let Some(path) = &options.pccs_ca {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&read(path)?)
                .map(|c| c.map(|c| c.to_vec()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| Failure::Input(format!("{}: not PEM certificates", path.display())))?;
            if certs.is_empty() {
                return Err(Failure::Input(format!(
                    "{}: no PEM certificate",
                    path.display()
                )));
            }
            config.tls_roots = Some(certs);
        }
        let client =
            PccsClient::new(config, Arc::new(cache)).map_err(|e| Failure::Input(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Input(format!("async runtime: {e}")))?;
        Ok(Some(Self::Pccs(client, runtime)))
    }

    /// A source holding collateral for `evidence` (fetched first from a PCCS). Stale
    /// collateral is left for the verifier to report (a rejection); a service that cannot
    /// be reached is missing input, not a verdict on the evidence.
    fn source_for(
        &self,
        evidence: &[u8],
        now: UnixTime,
    ) -> Result<Arc<dyn CollateralSource>, Failure> {
        match self {
            Self::File(source) => Ok(source.clone()),
            Self::Pccs(client, runtime) => match runtime.block_on(client.ensure(evidence, now)) {
                Ok(_) | Err(DcapError::CollateralNotValid { .. }) => Ok(client.cache()),
                Err(e @ (DcapError::Fetch { .. } | DcapError::Cache { .. })) => {
                    Err(Failure::Input(e.to_string()))
                }
                Err(e) => Err(Failure::Rejected(vec![e.to_string()])),
            },
        }
    }
}

/// DCAP-verifies an SGX quote bound to `runtime_data`, with collateral from `--collateral` or
/// `--pccs` (one is required) and the root CA of `--root-ca` (default: Intel's production root).
pub(crate) fn verify_bound_sgx_quote(
    quote: &[u8],
    runtime_data: &[u8],
    collateral: &CollateralArgs,
    pccs_options: &PccsOptions,
    root: Option<&Path>,
    at: Option<u64>,
) -> Result<custos_attestation::Claims, Failure> {
    let now = time(at);
    let collateral = Collateral::from_args(collateral, pccs_options)?.ok_or_else(|| {
        Failure::Input(
            "hardware evidence needs collateral: --pccs URL (e.g. Azure's https://global.acccache.azure.net/sgx/certification/v4/) or --collateral JSON".into(),
        )
    })?;
    let verifier = DcapVerifier::sgx_quotes(root_ca(root)?, collateral.source_for(quote, now)?);
    custos_attestation::Verifier::verify(&verifier, quote, runtime_data, now)
        .map_err(|e| Failure::Rejected(vec![e.to_string()]))
}

fn verify_quote(args: VerifyQuoteArgs) -> Result<(), Failure> {
    let bytes = read(&args.file)?;
    let parsed = ParsedEvidence::parse(&bytes)
        .map_err(|e| Failure::Input(format!("{}: {e}", args.file.display())))?;
    let root = root_ca(args.dcap.root_ca.as_deref())?;
    let now = time(args.dcap.at);
    let kind = parsed.kind();
    let collateral = Collateral::from_args(&args.dcap.collateral, &args.dcap.pccs_options)?
        .ok_or_else(|| {
            Failure::Input("either --collateral JSON or --pccs URL is required".into())
        })?;
    let source = collateral.source_for(&bytes, now)?;
    let verifier = match kind {
        EvidenceKind::OeReport => DcapVerifier::oe_reports(root, source),
        _ => DcapVerifier::sgx_quotes(root, source),
    };
    let claims = verifier
        .verify_evidence(&bytes, now)
        .map_err(|e| Failure::Rejected(vec![e.to_string()]))?;
    print(&json!({
        "tcb_status": claims.tcb().status.as_str(),
        "advisory_ids": claims.tcb().advisory_ids,
        "mrenclave": claims.mrenclave().to_hex(),
        "mrsigner": claims.mrsigner().to_hex(),
        "isvprodid": claims.isvprodid(),
        "isvsvn": claims.isvsvn(),
        "debug": claims.debug(),
        "report_data": claims.report_data().to_hex(),
        "evidence": claims.evidence().as_str(),
        "root_ca_sha256": verifier.root().sha256(),
    }));
    Ok(())
}

/// A token file's JWT: the text itself, or the `token` of a JSON response body.
fn token_text(bytes: &[u8], path: &Path) -> Result<String, Failure> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Failure::Input(format!("{}: not text", path.display())))?
        .trim();
    if text.starts_with('{') {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
        return v["token"].as_str().map(str::to_owned).ok_or_else(|| {
            Failure::Input(format!(
                "{}: a JSON object without a \"token\" string",
                path.display()
            ))
        });
    }
    Ok(text.to_owned())
}

fn verify_maa_token(args: VerifyMaaTokenArgs) -> Result<(), Failure> {
    let token = token_text(&read(&args.token_file)?, &args.token_file)?;
    let keys = MaaKeySet::from_jwks(&read(&args.jwks)?)
        .map_err(|e| Failure::Input(format!("{}: {e}", args.jwks.display())))?;
    let issuer = match args.issuer {
        Some(issuer) => issuer,
        None => {
            let iss = unverified_issuer(&token)
                .ok_or_else(|| Failure::Rejected(vec!["token has no readable iss claim".into()]))?;
            eprintln!(
                "warning: --issuer not given: accepting the token's issuer {iss} (pass --issuer to pin the instance)"
            );
            iss
        }
    };
    let runtime_data = args.runtime_data.as_deref().map(read).transpose()?;
    let evidence = args.evidence.as_deref().map(read).transpose()?;
    let data_type = match args.runtime_data_type {
        DataType::Binary => RuntimeDataType::Binary,
        DataType::Json => RuntimeDataType::Json,
    };
    let expectations = MaaExpectations {
        runtime_data: runtime_data.as_deref().map(|d| (d, data_type)),
        evidence: evidence.as_deref(),
    };
    let verifier = MaaTokenVerifier::new(
        keys,
        MaaConfig::new(issuer).with_min_rsa_bits(args.min_rsa_bits),
    );
    let verified = verifier
        .verify(&token, &expectations, time(args.at))
        .map_err(|e| Failure::Rejected(vec![e.to_string()]))?;
    let c = &verified.claims;
    print(&json!({
        "issuer": verifier.config().issuer,
        "attestation_type": verified.attestation_type,
        "mrenclave": c.mrenclave().to_hex(),
        "mrsigner": c.mrsigner().to_hex(),
        "isvprodid": c.isvprodid(),
        "isvsvn": c.isvsvn(),
        "debug": c.debug(),
        "report_data": c.report_data().to_hex(),
        "tcb_status": c.tcb().status.as_str(),
        "runtime_data": c.runtime_data().map(|d| URL_SAFE_NO_PAD.encode(d)),
        "quotehash": verified.quote_hash,
        "kid": verified.kid,
        "iat": verified.issued_at,
        "exp": verified.expires_at,
    }));
    Ok(())
}

/// The `iss` of an unverified token, only to default `--issuer`.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    serde_json::from_slice::<Value>(&payload).ok()?["iss"]
        .as_str()
        .map(str::to_owned)
}

fn signing_keys(path: &Path) -> Result<MaaKeySet, Failure> {
    let bytes = read(path)?;
    let input = |e: String| Failure::Input(format!("{}: {e}", path.display()));
    if bytes.starts_with(b"-----BEGIN") {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(&bytes)
            .map_err(|_| input("no PEM CERTIFICATE".into()))?;
        // The JWK thumbprint parameter x5t#S256 names a lone certificate.
        let kid = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            der.as_ref(),
        ));
        let key = MaaSigningKey::from_certificate(&kid, der.as_ref()).map_err(input)?;
        return Ok(MaaKeySet::from_keys([key]));
    }
    MaaKeySet::from_jwks(&bytes).map_err(|e| input(e.to_string()))
}

fn maa_signers(args: MaaSignersArgs) -> Result<(), Failure> {
    let keys = signing_keys(&args.jwks_file)?;
    let now = time(args.dcap.at);
    let root = root_ca(args.dcap.root_ca.as_deref())?;
    let collateral = Collateral::from_args(&args.dcap.collateral, &args.dcap.pccs_options)?;
    let mut problems = Vec::new();
    let mut enclave_keys = 0;
    for (kid, key) in keys.entries() {
        let key = match key {
            Ok(key) => key,
            Err(reason) => {
                println!(
                    "{}",
                    json!({"kid": kid, "enclave": false, "binding_ok": false, "problem": reason})
                );
                continue;
            }
        };
        // Collateral is per platform: look it up for this key's evidence.
        let mut dcap_error = None;
        let dcap = match (&collateral, embedded_evidence(key.certificate())) {
            (Some(collateral), Some((_, evidence))) => {
                match collateral.source_for(&evidence, now) {
                    Ok(source) => Some(DcapCheck {
                        root: root.clone(),
                        collateral: source,
                        now,
                    }),
                    Err(Failure::Rejected(reasons)) => {
                        dcap_error = Some(reasons.join("; "));
                        None
                    }
                    Err(input) => return Err(input),
                }
            }
            _ => None,
        };
        let mut report = check_signer(key, dcap.as_ref());
        if let Some(e) = dcap_error {
            report.dcap = Some(Err(e));
        }
        enclave_keys += usize::from(report.enclave);
        problems.extend(signer_problems(&report));
        println!("{}", signer_json(&report));
    }
    if enclave_keys == 0 {
        problems.push(format!(
            "enclave: expected at least one signing key with MAA enclave evidence (extension {OID_MAA_OE_REPORT} or {OID_MAA_SGX_QUOTE}), actual none"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Rejected(problems))
    }
}

fn signer_problems(r: &SignerReport) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(problem) = &r.problem {
        out.push(format!("key {}: {problem}", r.kid));
    }
    if r.enclave && r.problem.is_none() && !r.binding_ok {
        out.push(format!(
            "key {}: binding: expected report_data[0..32] = SHA-256(PEM(public key) ‖ 0x00), actual another value",
            r.kid
        ));
    }
    if let Some(Err(e)) = &r.dcap {
        out.push(format!("key {}: {e}", r.kid));
    }
    // The CLI trusts no simulation platform key: simulated evidence proves nothing here.
    if let Some(Err(e)) = &r.simulated {
        out.push(format!("key {}: simulated evidence: {e}", r.kid));
    }
    out
}

fn signer_json(r: &SignerReport) -> Value {
    let id = r.identity.as_ref();
    json!({
        "kid": r.kid,
        "enclave": r.enclave,
        "binding_ok": r.binding_ok,
        "mrenclave": id.map(|i| i.mrenclave.to_hex()),
        "mrsigner": id.map(|i| i.mrsigner.to_hex()),
        "isvprodid": id.map(|i| i.isvprodid),
        "isvsvn": id.map(|i| i.isvsvn),
        "debug": id.map(|i| i.debug),
        "evidence_oid": r.evidence_oid,
        "dcap": r.dcap.as_ref().map(|d| match d {
            Ok(tcb) => json!({"tcb_status": tcb.status.as_str(), "advisory_ids": tcb.advisory_ids}),
            Err(e) => json!({"error": e}),
        }),
        "simulated": r.simulated.as_ref().map(|s| match s {
            Ok(platform) => json!({"platform_key": platform.to_string()}),
            Err(e) => json!({"error": e}),
        }),
        "problem": r.problem,
    })
}
