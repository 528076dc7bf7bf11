//! The flags of `custos cas attest` (also `scone cas attest`) and the policy they ask for.
//!
//! Each flag means what SCONE's CLI reference documents for `scone cas attest`, under SCONE's
//! spelling too (`--only_for_testing-debug`, `-G`/`--accept-group-out-of-date`, …); SCONE flags
//! Custos cannot honour are refused with the difference named, never ignored.
//!
//! The one structural difference: SCONE checks by default that the CAS was signed by Scontain
//! (MRSIGNER, and an ISVSVN at least the CLI's). Custos has no built-in CAS signer, so without
//! `--mrsigner` the signer is not checked, and the CAS must be pinned by `--mrenclave` (or, for
//! testing, `--only-for-testing-trust-any`).

use clap::Args;
use custos_attestation::claims::Claims;
use custos_attestation::policy::{
    IdentityPolicy, IgnoredAdvisories, ServicePolicy, SignerPolicy, Toleration, Tolerations,
};
use custos_ids::{KeyHash, MrEnclave, MrSigner};

#[derive(Debug, Args)]
pub(crate) struct AttestArgs {
    /// The CAS address: host name or IP address, with an optional port (default 8081). For
    /// a replicated CAS, its replicas separated by commas (`cas-0,cas-1:8081`); a name that
    /// resolves to several addresses is a replica at each. Every replica is attested and must
    /// present the same key (one with another is refused, naming both key hashes); each is
    /// pinned, and the list becomes the default CAS.
    pub addr: String,
    /// SCONE's deprecated positional MRENCLAVE: the same as --mrenclave.
    #[arg(value_name = "MRENCLAVE", hide = true)]
    positional_mrenclave: Option<MrEnclave>,
    /// An accepted MRENCLAVE of the CAS (repeatable; hex): the CAS must match one.
    #[arg(long = "mrenclave", value_name = "H")]
    mrenclaves: Vec<MrEnclave>,
    /// The CAS's signer (MRSIGNER, hex). Needs --isvprodid and --isvsvn.
    #[arg(long, value_name = "H")]
    mrsigner: Option<MrSigner>,
    /// The CAS's product id (ISVPRODID), checked for equality. Needs --mrsigner.
    #[arg(long, value_name = "N")]
    isvprodid: Option<u16>,
    /// The CAS's lowest accepted security version (ISVSVN): this one or greater. Needs --mrsigner.
    #[arg(long, value_name = "N")]
    isvsvn: Option<u16>,
    /// The CAS's key hash: SHA-256 of its TLS certificate's public key, 64 hex digits (as
    /// `custos cas list` prints it). Any other key is refused.
    #[arg(short = 'c', value_name = "CAS_KEY_HASH", value_parser = cas_key_hash)]
    pub cas_key_hash: Option<KeyHash>,
    /// SCONE's CAS software key hash: refused (a Custos CAS has one key; pin it with -c).
    #[arg(short = 's', value_name = "CAS_SOFTWARE_KEY_HASH", hide = true)]
    cas_software_key_hash: Option<String>,
    /// TESTING ONLY: accept simulated evidence (whose platform key comes from the CAS itself,
    /// so it proves nothing), and any MRENCLAVE of a CAS in debug mode.
    #[arg(long, alias = "only_for_testing-trust-any")]
    pub only_for_testing_trust_any: bool,
    /// TESTING ONLY: accept a CAS whose enclave runs in debug mode (its memory is readable by the host).
    #[arg(long, alias = "only_for_testing-debug")]
    only_for_testing_debug: bool,
    /// TESTING ONLY: do not check the CAS's signer (refused with --mrsigner, --isvprodid,
    /// --isvsvn). Custos has no built-in CAS signer: without --mrsigner the signer is not
    /// checked anyway.
    #[arg(long, alias = "only_for_testing-ignore-signer")]
    only_for_testing_ignore_signer: bool,
    /// Accept the TCB status OutOfDate (the platform's TCB is out of date; dangerous).
    #[arg(short = 'G', long = "accept-group-out-of-date")]
    tolerate_outdated_tcb: bool,
    /// Accept the TCB status ConfigurationNeeded (e.g. hyperthreading enabled; less secure).
    #[arg(short = 'C', long = "accept-configuration-needed")]
    tolerate_configuration_needed: bool,
    /// Accept the TCB status SWHardeningNeeded (the enclave needs software mitigations).
    #[arg(short = 'S', long = "accept-sw-hardening-needed")]
    tolerate_sw_hardening_needed: bool,
    /// Accept only these advisories (comma-separated ids, e.g. INTEL-SA-00615,INTEL-SA-00767).
    /// Without it every advisory is accepted (shown, not judged), as in SCONE.
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    ignore_advisories: Option<Vec<String>>,
    /// Refuse the CAS if any security advisory applies to its platform.
    #[arg(long, conflicts_with = "ignore_advisories")]
    fail_on_any_advisory: bool,
    /// Where DCAP collateral for hardware evidence comes from.
    #[command(flatten)]
    pub collateral: crate::evidence::CollateralArgs,
    #[command(flatten)]
    pub pccs_options: crate::evidence::PccsOptions,
    /// For hardware evidence: trust this root CA (DER or PEM) instead of Intel's production root.
    #[arg(long, value_name = "DER")]
    pub root_ca: Option<std::path::PathBuf>,
    /// TESTING ONLY: verify hardware evidence as of this time (Unix seconds), e.g. against
    /// recorded collateral, instead of now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    only_for_testing_at: Option<u64>,
    /// Verify hardware evidence as of this day, 00:00 UTC (yyyy-mm-dd, dd.mm.yyyy or
    /// dd-mm-yyyy), e.g. with collateral that has expired since, instead of now.
    #[arg(long, value_name = "DATE", value_parser = scone_date, conflicts_with = "only_for_testing_at")]
    verification_time: Option<u64>,
    #[command(flatten)]
    unsupported: UnsupportedSconeFlags,
}

/// `scone cas attest` flags Custos does not implement: accepted by the parser only to be
/// refused with the reason, so a SCONE script stops at a clear message.
#[derive(Debug, Args)]
struct UnsupportedSconeFlags {
    #[arg(long, hide = true, value_name = "FILE")]
    offline_report: Option<String>,
    #[arg(long, hide = true, value_name = "NONCE")]
    nonce: Option<String>,
    #[arg(long, hide = true)]
    allow_cas_owner_secret_access: bool,
    #[arg(long, hide = true, value_name = "COUNT")]
    retries: Option<String>,
    #[arg(long = "only_for_testing_allow-unprovisioned-cas", hide = true)]
    allow_unprovisioned_cas: bool,
}

impl UnsupportedSconeFlags {
    fn refusal(&self) -> Option<String> {
        let reason = if self.offline_report.is_some() || self.nonce.is_some() {
            "--offline-report/--nonce: not supported by Custos: it attests a CAS over the network only, with a nonce of its own"
        } else if self.allow_cas_owner_secret_access {
            "--allow-cas-owner-secret-access: not supported by Custos: it has no CAS provisioning, so no owner-injected database key to accept"
        } else if self.retries.is_some() {
            "--retries: not supported by Custos: it does not retry on network errors"
        } else if self.allow_unprovisioned_cas {
            "--only_for_testing_allow-unprovisioned-cas: not supported by Custos: it has no CAS provisioning"
        } else {
            return None;
        };
        Some(reason.to_owned())
    }
}

/// `-c`: a Custos key hash, with SCONE's encoded key hashes named as the difference.
fn cas_key_hash(text: &str) -> Result<KeyHash, String> {
    text.parse().map_err(|_| {
        "expected 64 hex digits: a Custos CAS key hash is the hex SHA-256 of its TLS public key (as `custos cas list` prints it), not SCONE's encoded key hash".to_owned()
    })
}

/// `--verification-time`: a day as SCONE writes it (yyyy-mm-dd, dd.mm.yyyy or dd-mm-yyyy),
/// as Unix seconds at 00:00 UTC.
fn scone_date(text: &str) -> Result<u64, String> {
    let bad = || format!("expected yyyy-mm-dd, dd.mm.yyyy or dd-mm-yyyy, found {text:?}");
    let parts: Vec<&str> = text.split(['-', '.']).collect();
    let numbers: Vec<u32> = parts
        .iter()
        .map(|p| {
            p.parse()
                .ok()
                .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let (year, month, day) = match (parts.as_slice(), numbers.as_slice()) {
        ([y, _, _], &[year, month, day]) if y.len() == 4 && text.contains('-') => {
            (year, month, day)
        }
        ([_, _, y], &[day, month, year]) if y.len() == 4 => (year, month, day),
        _ => return Err(bad()),
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in = |month: u32| match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => 0,
    };
    if year < 1970 || day == 0 || day > days_in(month) {
        return Err(bad());
    }
    // Days before `year`, then before `month`, then in it.
    let leap_years = |y: u32| y / 4 - y / 100 + y / 400;
    let years = u64::from(year - 1970) * 365 + u64::from(leap_years(year - 1) - leap_years(1969));
    let months: u32 = (1..month).map(days_in).sum();
    Ok((years + u64::from(months) + u64::from(day - 1)) * 86_400)
}

impl AttestArgs {
    /// The time to verify hardware evidence at, when not now.
    pub fn verify_at(&self) -> Option<u64> {
        self.only_for_testing_at.or(self.verification_time)
    }

    /// Flag combinations SCONE documents as invalid, or Custos cannot honour: the first
    /// problem, as a usage error.
    pub fn check(&self) -> Result<(), String> {
        if let Some(refusal) = self.unsupported.refusal() {
            return Err(refusal);
        }
        if self.cas_software_key_hash.is_some() {
            return Err("-s: not supported by Custos: a Custos CAS has one key (no separate software key); pin it with -c CAS_KEY_HASH".into());
        }
        let signer_flags = self.isvprodid.is_some() || self.isvsvn.is_some();
        if self.only_for_testing_ignore_signer && (self.mrsigner.is_some() || signer_flags) {
            return Err("--only-for-testing-ignore-signer contradicts --mrsigner, --isvprodid and --isvsvn: drop one or the other".into());
        }
        if self.mrsigner.is_some() && !(self.isvprodid.is_some() && self.isvsvn.is_some()) {
            return Err("--mrsigner needs --isvprodid and --isvsvn (as in SCONE)".into());
        }
        if self.mrsigner.is_none() && signer_flags {
            return Err("--isvprodid and --isvsvn need --mrsigner: SCONE then checks Scontain's signer, but Custos has no built-in CAS signer".into());
        }
        Ok(())
    }

    /// Whether the flags name the CAS's identity before its evidence is seen (an MRENCLAVE or
    /// a signer), or leave it to `--only-for-testing-trust-any`.
    pub fn names_an_identity(&self) -> bool {
        self.positional_mrenclave.is_some()
            || !self.mrenclaves.is_empty()
            || self.mrsigner.is_some()
            || self.only_for_testing_trust_any
    }

    /// What the flags accept of a CAS whose verified evidence says `claims`.
    ///
    /// `--only-for-testing-trust-any` stands for "any MRENCLAVE" only when no `--mrenclave`
    /// is given, and, as SCONE documents ("only allowed if CAS is in debug mode"), only for a
    /// CAS in debug mode.
    pub fn policy(&self, claims: &Claims) -> Result<ServicePolicy, String> {
        let mut mrenclaves: Vec<MrEnclave> = self.positional_mrenclave.into_iter().collect();
        mrenclaves.extend(self.mrenclaves.iter().copied());
        let signer = self.mrsigner.map(|mrsigner| SignerPolicy {
            mrsigner,
            isvprodid: self.isvprodid,
            min_isvsvn: self.isvsvn.unwrap_or(0),
            // SCONE's `cas attest --isvsvn`: "a given or greater" version.
            max_isvsvn: u16::MAX,
        });
        if mrenclaves.is_empty() && self.only_for_testing_trust_any {
            if !claims.debug() {
                return Err("--only-for-testing-trust-any: expected a CAS in debug mode (any MRENCLAVE is trusted only then, as in SCONE), actual a production enclave: pin it with --mrenclave or --mrsigner".into());
            }
            if signer.is_none() {
                mrenclaves.push(claims.mrenclave());
            }
        }
        let identities = if mrenclaves.is_empty() {
            signer.map(IdentityPolicy::signer).into_iter().collect()
        } else {
            mrenclaves
                .into_iter()
                .map(|m| IdentityPolicy {
                    mrenclave: Some(m),
                    signer,
                })
                .collect()
        };
        let flags = [
            (self.only_for_testing_debug, Toleration::DebugMode),
            (self.tolerate_outdated_tcb, Toleration::OutdatedTcb),
            (
                self.tolerate_configuration_needed,
                Toleration::InsecureConfiguration,
            ),
            (
                self.tolerate_sw_hardening_needed,
                Toleration::SoftwareHardeningNeeded,
            ),
        ];
        let mut tolerations =
            Tolerations::of(flags.into_iter().filter(|(on, _)| *on).map(|(_, t)| t));
        tolerations.ignore_advisories = match (&self.ignore_advisories, self.fail_on_any_advisory) {
            (_, true) => IgnoredAdvisories::None,
            (Some(ids), false) => IgnoredAdvisories::from_list(ids),
            (None, false) => IgnoredAdvisories::All,
        };
        Ok(ServicePolicy {
            identities,
            tolerations,
            platforms: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use custos_attestation::claims::{
        Claims, EvidenceKind, ReportData, Tcb, TcbStatus, TestClaims, VerifiedBy,
    };
    use custos_attestation::policy::{Decision, evaluate};

    use super::AttestArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: AttestArgs,
    }

    fn args(flags: &[&str]) -> AttestArgs {
        Cli::try_parse_from(["attest", "cas.example"].iter().chain(flags))
            .unwrap()
            .args
    }

    /// A production enclave on a platform with `status` and one advisory.
    fn hardware(status: TcbStatus) -> Claims {
        hardware_fields(status).unverified()
    }

    fn hardware_fields(status: TcbStatus) -> TestClaims {
        TestClaims {
            evidence: EvidenceKind::SgxQuote,
            verified_by: VerifiedBy::Dcap {
                root_ca_sha256: "00".repeat(32),
            },
            mrenclave: "aa".repeat(32).parse().unwrap(),
            mrsigner: "bb".repeat(32).parse().unwrap(),
            isvprodid: 7,
            isvsvn: 3,
            debug: false,
            report_data: ReportData::binding(b""),
            runtime_data: None,
            tcb: Tcb {
                status,
                advisory_ids: vec!["INTEL-SA-00615".into()],
            },
        }
    }

    fn decide(flags: &[&str], claims: &Claims) -> Decision {
        let args = args(flags);
        args.check().unwrap();
        evaluate(claims, &args.policy(claims).unwrap())
    }

    const MRENCLAVE: &str =
        "--mrenclave=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn the_tcb_flags_accept_the_statuses_scone_names() {
        let cases = [
            ("-G", TcbStatus::OutOfDate),
            ("--accept-group-out-of-date", TcbStatus::OutOfDate),
            ("-C", TcbStatus::ConfigurationNeeded),
            (
                "--accept-configuration-needed",
                TcbStatus::ConfigurationNeeded,
            ),
            ("-S", TcbStatus::SwHardeningNeeded),
            ("--accept-sw-hardening-needed", TcbStatus::SwHardeningNeeded),
        ];
        for (flag, status) in cases {
            let claims = hardware(status);
            assert!(decide(&[MRENCLAVE, flag], &claims).is_allowed(), "{flag}");
            let refused = decide(&[MRENCLAVE], &claims);
            assert!(
                refused.reasons()[0].starts_with("tcb_status: expected UpToDate, or tolerate"),
                "{refused:?}"
            );
        }
        // -C alone does not accept a platform that also needs software hardening.
        let both = hardware(TcbStatus::ConfigurationAndSwHardeningNeeded);
        assert!(!decide(&[MRENCLAVE, "-C"], &both).is_allowed());
        assert!(decide(&[MRENCLAVE, "-C", "-S"], &both).is_allowed());
        let outdated = hardware(TcbStatus::OutOfDateConfigurationNeeded);
        assert!(!decide(&[MRENCLAVE, "-G"], &outdated).is_allowed());
        assert!(decide(&[MRENCLAVE, "-G", "-C"], &outdated).is_allowed());
        assert!(
            !decide(
                &[MRENCLAVE, "-G", "-C", "-S"],
                &hardware(TcbStatus::Revoked)
            )
            .is_allowed()
        );
    }

    #[test]
    fn advisories_are_accepted_unless_the_flags_say_otherwise() {
        let claims = hardware(TcbStatus::UpToDate);
        assert!(decide(&[MRENCLAVE], &claims).is_allowed());
        assert!(
            decide(
                &[
                    MRENCLAVE,
                    "--ignore-advisories",
                    "INTEL-SA-00615,INTEL-SA-00767"
                ],
                &claims
            )
            .is_allowed()
        );
        let other = decide(
            &[MRENCLAVE, "--ignore-advisories", "INTEL-SA-00767"],
            &claims,
        );
        assert_eq!(
            other.reasons(),
            [
                "advisory: expected no advisory, or INTEL-SA-00615 in ignore_advisories, actual INTEL-SA-00615"
            ]
        );
        assert!(!decide(&[MRENCLAVE, "--fail-on-any-advisory"], &claims).is_allowed());
    }

    #[test]
    fn a_signer_pin_checks_mrsigner_isvprodid_and_a_minimum_isvsvn() {
        let claims = hardware(TcbStatus::UpToDate);
        let signer = |svn: &str| {
            decide(
                &[
                    "--mrsigner",
                    &"bb".repeat(32),
                    "--isvprodid",
                    "7",
                    "--isvsvn",
                    svn,
                ],
                &claims,
            )
        };
        assert!(signer("3").is_allowed());
        assert!(signer("2").is_allowed(), "a greater ISVSVN passes");
        assert_eq!(signer("4").reasons(), ["isvsvn: expected >= 4, actual 3"]);
        let wrong = decide(
            &[
                "--mrsigner",
                &"cc".repeat(32),
                "--isvprodid",
                "8",
                "--isvsvn",
                "3",
            ],
            &claims,
        );
        assert_eq!(
            wrong.reasons(),
            [
                format!(
                    "mrsigner: expected {}, actual {}",
                    "cc".repeat(32),
                    "bb".repeat(32)
                ),
                "isvprodid: expected 8, actual 7".to_owned()
            ]
        );
        // With --mrenclave too, both must match.
        let other_enclave = format!("--mrenclave={}", "dd".repeat(32));
        let both = decide(
            &[
                &other_enclave,
                "--mrsigner",
                &"bb".repeat(32),
                "--isvprodid",
                "7",
                "--isvsvn",
                "3",
            ],
            &claims,
        );
        assert!(
            both.reasons()[0].starts_with("mrenclave: expected dd"),
            "{both:?}"
        );
    }

    #[test]
    fn scones_verification_time_is_that_day_at_midnight_utc() {
        for day in ["2025-07-01", "01.07.2025", "01-07-2025"] {
            let args = args(&["--verification-time", day]);
            assert_eq!(args.verify_at(), Some(1_751_328_000), "{day}");
        }
        assert_eq!(super::scone_date("1970-01-01"), Ok(0));
        assert_eq!(super::scone_date("2000-03-01"), Ok(951_868_800));
        assert_eq!(super::scone_date("29.02.2024"), Ok(1_709_164_800));
        for bad in [
            "2025-13-01",
            "29.02.2025",
            "2025/07/01",
            "07-01-25",
            "+2025-07-01",
            "",
        ] {
            assert!(super::scone_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trust_any_trusts_any_mrenclave_of_a_debug_cas_only() {
        let production = hardware(TcbStatus::UpToDate);
        let args = args(&["--only_for_testing-trust-any", "--only_for_testing-debug"]);
        let refused = args.policy(&production).unwrap_err();
        assert!(
            refused.contains("expected a CAS in debug mode")
                && refused.contains("actual a production enclave"),
            "{refused}"
        );
        let debug = TestClaims {
            debug: true,
            ..hardware_fields(TcbStatus::UpToDate)
        }
        .unverified();
        assert!(evaluate(&debug, &args.policy(&debug).unwrap()).is_allowed());
    }

    #[test]
    fn scone_spellings_parse_and_contradictions_are_refused() {
        let scone = args(&[
            "-G",
            "-C",
            "-S",
            "--only_for_testing-debug",
            "--only_for_testing-ignore-signer",
            "--only_for_testing-trust-any",
        ]);
        assert!(scone.check().is_ok());
        assert!(scone.only_for_testing_debug && scone.only_for_testing_ignore_signer);
        let refusal = |flags: &[&str]| args(flags).check().unwrap_err();
        let mrsigner = "bb".repeat(32);
        assert!(refusal(&["--mrsigner", &mrsigner]).contains("needs --isvprodid and --isvsvn"));
        assert!(refusal(&["--isvsvn", "3"]).contains("no built-in CAS signer"));
        assert!(
            refusal(&[
                "--only_for_testing-ignore-signer",
                "--mrsigner",
                &mrsigner,
                "--isvprodid",
                "1",
                "--isvsvn",
                "1"
            ])
            .contains("contradicts --mrsigner")
        );
        assert!(
            refusal(&["-s", "4USPZDGq2FjrE2wh7FEErbrirCFZcu8nR7YaSjH3NjfJtEAfCc"])
                .contains("one key")
        );
        assert!(refusal(&["--retries", "3"]).starts_with("--retries: not supported by Custos"));
        for flags in [
            &["--offline-report", "r.json"][..],
            &["--nonce", "00"],
            &["--allow-cas-owner-secret-access"],
            &["--only_for_testing_allow-unprovisioned-cas"],
        ] {
            assert!(
                refusal(flags).contains(": not supported by Custos"),
                "{flags:?}"
            );
        }
        let scone_hash = Cli::try_parse_from([
            "attest",
            "cas.example",
            "-c",
            "42ku6fcMt8fzj8br84Xg1ZmForSJDTuj6wt1pURRcYpVzJiCSL",
        ])
        .err()
        .unwrap()
        .to_string();
        assert!(
            scone_hash.contains("not SCONE's encoded key hash"),
            "{scone_hash}"
        );
        // SCONE's deprecated positional MRENCLAVE is an --mrenclave.
        let positional = args(&[&"aa".repeat(32)]);
        assert!(positional.names_an_identity());
        assert!(decide(&[&"aa".repeat(32)], &hardware(TcbStatus::UpToDate)).is_allowed());
    }
}
