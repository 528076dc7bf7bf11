//! Is a verified enclave acceptable for a service? [`evaluate`] compares [`Claims`] with a
//! [`ServicePolicy`] and allows, or denies with every failed check and its expected and
//! actual values.
//!
//! The CAS maps a session's `security.attestation` and a service's `mrenclaves` /
//! `attestation` onto these types; this module knows nothing of the session language.
//!
//! Rules, all evaluated (a denial lists every failure):
//! - **identity**: the enclave matches at least one alternative; an alternative is an
//!   `mrenclave`, a signer (`mrsigner`, `isvprodid`, an inclusive `isvsvn` range), or both. A policy
//!   without alternatives, or an alternative constraining nothing, matches nothing.
//! - **debug**: a debuggable enclave needs the `debug-mode` toleration. Simulated evidence
//!   is always debuggable, so only policies tolerating debug mode accept it.
//! - **TCB status**: `UpToDate` needs nothing; `SWHardeningNeeded` needs
//!   `software-hardening-needed`; `ConfigurationNeeded` needs `insecure-configuration` or
//!   `hyperthreading` (the status does not say which configuration is lacking);
//!   `OutOfDate` needs `outdated-tcb`; combined statuses need each part; `Revoked` is
//!   never accepted; `ManagedByMaa` needs `maa-managed-tcb`; `NotApplicable` (simulation)
//!   needs nothing beyond the debug rule.
//! - **advisories**: each advisory id the verifier reported must be ignored
//!   (`ignore_advisories`, or `*` for all), whatever the status.
//! - **platforms**: when the policy names platforms, the evidence must come from one of
//!   them: simulated evidence by its platform key id; hardware evidence carries no
//!   platform key id and is denied by such a policy.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use custos_ids::{KeyHash, MrEnclave, MrSigner};

use crate::claims::{Claims, TcbStatus};

/// A service's attestation policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePolicy {
    /// Acceptable enclave identities; the enclave must match one.
    pub identities: Vec<IdentityPolicy>,
    /// What is tolerated beyond a production enclave on an up-to-date platform.
    pub tolerations: Tolerations,
    /// When not empty, the platforms allowed to run the service.
    pub platforms: Vec<KeyHash>,
}

/// One acceptable identity: a measurement, a signer, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityPolicy {
    /// The exact MRENCLAVE.
    pub mrenclave: Option<MrEnclave>,
    /// The signer and version constraints.
    pub signer: Option<SignerPolicy>,
}

impl IdentityPolicy {
    /// Just an MRENCLAVE.
    pub fn mrenclave(mrenclave: MrEnclave) -> Self {
        Self {
            mrenclave: Some(mrenclave),
            signer: None,
        }
    }

    /// Just a signer.
    pub fn signer(signer: SignerPolicy) -> Self {
        Self {
            mrenclave: None,
            signer: Some(signer),
        }
    }
}

/// Signer constraints: `mrsigner`, the product, and an inclusive security-version range
/// (SCONE's exact `isvsvn` is `min_isvsvn == max_isvsvn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignerPolicy {
    /// MRSIGNER.
    pub mrsigner: MrSigner,
    /// ISVPRODID, when constrained.
    pub isvprodid: Option<u16>,
    /// Minimum ISVSVN.
    pub min_isvsvn: u16,
    /// Maximum ISVSVN (`u16::MAX`: no upper bound).
    pub max_isvsvn: u16,
}

/// A toleration name of the session language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Toleration {
    /// `debug-mode` (alias `debug`): debuggable enclaves.
    DebugMode,
    /// `hyperthreading`: `ConfigurationNeeded` because of SMT.
    Hyperthreading,
    /// `software-hardening-needed`: `SWHardeningNeeded`.
    SoftwareHardeningNeeded,
    /// `outdated-tcb`: `OutOfDate`.
    OutdatedTcb,
    /// `insecure-configuration`: `ConfigurationNeeded`.
    InsecureConfiguration,
    /// `maa-managed-tcb`: TCB judged by MAA (required with `mode: maa`).
    MaaManagedTcb,
}

impl Toleration {
    /// The session-language name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::DebugMode => "debug-mode",
            Self::Hyperthreading => "hyperthreading",
            Self::SoftwareHardeningNeeded => "software-hardening-needed",
            Self::OutdatedTcb => "outdated-tcb",
            Self::InsecureConfiguration => "insecure-configuration",
            Self::MaaManagedTcb => "maa-managed-tcb",
        }
    }
}

impl fmt::Display for Toleration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown toleration name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown toleration {0:?}: expected debug-mode (or debug), hyperthreading, software-hardening-needed, outdated-tcb, insecure-configuration or maa-managed-tcb"
)]
pub struct UnknownToleration(pub String);

impl FromStr for Toleration {
    type Err = UnknownToleration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "debug-mode" | "debug" => Self::DebugMode,
            "hyperthreading" => Self::Hyperthreading,
            "software-hardening-needed" => Self::SoftwareHardeningNeeded,
            "outdated-tcb" => Self::OutdatedTcb,
            "insecure-configuration" => Self::InsecureConfiguration,
            "maa-managed-tcb" => Self::MaaManagedTcb,
            other => return Err(UnknownToleration(other.to_owned())),
        })
    }
}

/// Tolerations and ignored advisories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tolerations {
    /// The tolerated conditions.
    pub tolerate: BTreeSet<Toleration>,
    /// Advisory ids that do not count against the platform.
    pub ignore_advisories: IgnoredAdvisories,
}

impl Tolerations {
    /// Tolerates `list`, ignoring no advisories.
    pub fn of(list: impl IntoIterator<Item = Toleration>) -> Self {
        Self {
            tolerate: list.into_iter().collect(),
            ignore_advisories: IgnoredAdvisories::default(),
        }
    }

    /// Whether `t` is tolerated.
    pub fn allows(&self, t: Toleration) -> bool {
        self.tolerate.contains(&t)
    }
}

/// Which advisories are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IgnoredAdvisories {
    /// None: every advisory denies.
    #[default]
    None,
    /// These ids.
    Only(BTreeSet<String>),
    /// All (`"*"`).
    All,
}

impl IgnoredAdvisories {
    /// From session-language entries: ids, or `*` for all.
    pub fn from_list<S: AsRef<str>>(list: impl IntoIterator<Item = S>) -> Self {
        let mut ids = BTreeSet::new();
        for id in list {
            if id.as_ref() == "*" {
                return Self::All;
            }
            ids.insert(id.as_ref().to_owned());
        }
        if ids.is_empty() {
            Self::None
        } else {
            Self::Only(ids)
        }
    }

    fn ignores(&self, id: &str) -> bool {
        match self {
            Self::None => false,
            Self::Only(ids) => ids.contains(id),
            Self::All => true,
        }
    }
}

/// Which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// The policy has no usable identity.
    Identity,
    /// MRENCLAVE differs.
    Mrenclave,
    /// MRSIGNER differs.
    Mrsigner,
    /// ISVPRODID differs.
    Isvprodid,
    /// ISVSVN outside the admitted range.
    Isvsvn,
    /// Debuggable enclave not tolerated.
    Debug,
    /// TCB status not tolerated.
    TcbStatus,
    /// An advisory not ignored.
    Advisory,
    /// The platform is not among the allowed ones.
    Platform,
}

impl Check {
    /// The check's name in denials.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Mrenclave => "mrenclave",
            Self::Mrsigner => "mrsigner",
            Self::Isvprodid => "isvprodid",
            Self::Isvsvn => "isvsvn",
            Self::Debug => "debug",
            Self::TcbStatus => "tcb_status",
            Self::Advisory => "advisory",
            Self::Platform => "platform",
        }
    }
}

/// One failed check. Displays as `<check>: expected <expected>, actual <actual>`, with the
/// identity alternative first when the policy has several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The check.
    pub check: Check,
    /// For identity checks with several alternatives: which one (1-based).
    pub alternative: Option<usize>,
    /// What the policy requires.
    pub expected: String,
    /// What the evidence shows.
    pub actual: String,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.alternative {
            write!(f, "alternative {n}: ")?;
        }
        write!(
            f,
            "{}: expected {}, actual {}",
            self.check.as_str(),
            self.expected,
            self.actual
        )
    }
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every check passed.
    Allow,
    /// These checks failed (never empty).
    Deny(Vec<Denial>),
}

impl Decision {
    /// Whether the enclave is admitted.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow)
    }

    /// The denials, one line each (empty when allowed).
    pub fn reasons(&self) -> Vec<String> {
        match self {
            Self::Allow => Vec::new(),
            Self::Deny(denials) => denials.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Evaluates `claims` against `policy`.
pub fn evaluate(claims: &Claims, policy: &ServicePolicy) -> Decision {
    let mut denials = identity_denials(claims, &policy.identities);
    let tol = &policy.tolerations;
    if claims.debug && !tol.allows(Toleration::DebugMode) {
        denials.push(Denial {
            check: Check::Debug,
            alternative: None,
            expected: "a production (non-debug) enclave, or tolerate debug-mode".into(),
            actual: if claims.is_simulation() {
                "a debug enclave (simulation is always debug)".into()
            } else {
                "a debug enclave".into()
            },
        });
    }
    if let Some(denial) = tcb_denial(claims.tcb.status, tol) {
        denials.push(denial);
    }
    for id in claims
        .tcb
        .advisory_ids
        .iter()
        .filter(|id| !tol.ignore_advisories.ignores(id))
    {
        denials.push(Denial {
            check: Check::Advisory,
            alternative: None,
            expected: format!("no advisory, or {id} in ignore_advisories"),
            actual: id.clone(),
        });
    }
    if !policy.platforms.is_empty() {
        let allowed = || {
            policy
                .platforms
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match claims.platform() {
            Some(p) if policy.platforms.contains(p) => {}
            Some(p) => denials.push(Denial {
                check: Check::Platform,
                alternative: None,
                expected: format!("one of [{}]", allowed()),
                actual: p.to_string(),
            }),
            None => denials.push(Denial {
                check: Check::Platform,
                alternative: None,
                expected: format!("one of [{}]", allowed()),
                actual: format!(
                    "{} evidence without a platform key",
                    claims.verified_by.name()
                ),
            }),
        }
    }
    if denials.is_empty() {
        Decision::Allow
    } else {
        Decision::Deny(denials)
    }
}

fn identity_denials(claims: &Claims, alternatives: &[IdentityPolicy]) -> Vec<Denial> {
    if alternatives.is_empty() {
        return vec![Denial {
            check: Check::Identity,
            alternative: None,
            expected: "an mrenclave or signer in the service's policy".into(),
            actual: "none configured".into(),
        }];
    }
    let numbered = alternatives.len() > 1;
    let mut all = Vec::new();
    for (i, alt) in alternatives.iter().enumerate() {
        let n = numbered.then_some(i + 1);
        let mut failed = Vec::new();
        let mut deny = |check, expected: String, actual: String| {
            failed.push(Denial {
                check,
                alternative: n,
                expected,
                actual,
            });
        };
        if alt.mrenclave.is_none() && alt.signer.is_none() {
            deny(
                Check::Identity,
                "an mrenclave or signer".into(),
                "an alternative constraining nothing".into(),
            );
        }
        if let Some(m) = alt.mrenclave
            && m != claims.mrenclave
        {
            deny(
                Check::Mrenclave,
                m.to_string(),
                claims.mrenclave.to_string(),
            );
        }
        if let Some(s) = alt.signer {
            if s.mrsigner != claims.mrsigner {
                deny(
                    Check::Mrsigner,
                    s.mrsigner.to_string(),
                    claims.mrsigner.to_string(),
                );
            }
            if let Some(p) = s.isvprodid
                && p != claims.isvprodid
            {
                deny(
                    Check::Isvprodid,
                    p.to_string(),
                    claims.isvprodid.to_string(),
                );
            }
            if !(s.min_isvsvn..=s.max_isvsvn).contains(&claims.isvsvn) {
                let expected = match (s.min_isvsvn, s.max_isvsvn) {
                    (lo, hi) if lo == hi => lo.to_string(),
                    (lo, u16::MAX) => format!(">= {lo}"),
                    (0, hi) => format!("<= {hi}"),
                    (lo, hi) => format!("{lo} to {hi}"),
                };
                deny(Check::Isvsvn, expected, claims.isvsvn.to_string());
            }
        }
        if failed.is_empty() {
            return Vec::new();
        }
        all.append(&mut failed);
    }
    all
}

fn tcb_denial(status: TcbStatus, tol: &Tolerations) -> Option<Denial> {
    use Toleration::*;
    let configuration = || tol.allows(InsecureConfiguration) || tol.allows(Hyperthreading);
    let (ok, needs): (bool, &str) = match status {
        TcbStatus::UpToDate | TcbStatus::NotApplicable => (true, ""),
        TcbStatus::SwHardeningNeeded => (
            tol.allows(SoftwareHardeningNeeded),
            "software-hardening-needed",
        ),
        TcbStatus::ConfigurationNeeded => (
            configuration(),
            "insecure-configuration (or hyperthreading)",
        ),
        TcbStatus::ConfigurationAndSwHardeningNeeded => (
            configuration() && tol.allows(SoftwareHardeningNeeded),
            "software-hardening-needed and insecure-configuration (or hyperthreading)",
        ),
        TcbStatus::OutOfDate => (tol.allows(OutdatedTcb), "outdated-tcb"),
        TcbStatus::OutOfDateConfigurationNeeded => (
            tol.allows(OutdatedTcb) && configuration(),
            "outdated-tcb and insecure-configuration (or hyperthreading)",
        ),
        TcbStatus::ManagedByMaa => (tol.allows(MaaManagedTcb), "maa-managed-tcb"),
        TcbStatus::Revoked => {
            return Some(Denial {
                check: Check::TcbStatus,
                alternative: None,
                expected: "a platform that is not revoked (no toleration applies)".into(),
                actual: status.to_string(),
            });
        }
    };
    (!ok).then(|| Denial {
        check: Check::TcbStatus,
        alternative: None,
        expected: format!("UpToDate, or tolerate {needs}"),
        actual: status.to_string(),
    })
}
