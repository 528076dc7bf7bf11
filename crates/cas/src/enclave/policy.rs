//! The session language's attestation model, mapped onto `custos-attestation`'s policy types.
//!
//! - each `attestation` alternative of a service (or its legacy `mrenclaves`) becomes one
//!   [`IdentityPolicy`] per listed MRENCLAVE, each with the alternative's signer (or one
//!   signer-only identity when no MRENCLAVE is listed);
//! - `tolerate` becomes [`Tolerations`] (`insecure-igpu` never reaches here: the session
//!   language refuses it);
//! - `ignore_advisories` becomes [`IgnoredAdvisories`];
//! - the service's `platforms` become the policy's platforms (simulation platform key ids).

use custos_attestation::policy::{
    IdentityPolicy, IgnoredAdvisories, ServicePolicy, SignerPolicy, Toleration, Tolerations,
};
use custos_policy::{AttestationPolicy, Service, Tolerance};

/// The service's attestation policy under its session's `security.attestation`.
pub fn service_policy(attestation: &AttestationPolicy, service: &Service) -> ServicePolicy {
    let mut identities = Vec::new();
    for alternative in &service.attestation {
        let signer = alternative.signer.map(|s| SignerPolicy {
            mrsigner: s.mrsigner,
            isvprodid: Some(s.isvprodid),
            min_isvsvn: s.min_isvsvn,
            max_isvsvn: s.max_isvsvn,
        });
        if alternative.mrenclaves.is_empty() {
            identities.push(IdentityPolicy {
                mrenclave: None,
                signer,
            });
        }
        for m in &alternative.mrenclaves {
            identities.push(IdentityPolicy {
                mrenclave: Some(*m),
                signer,
            });
        }
    }
    ServicePolicy {
        identities,
        tolerations: tolerations(attestation),
        platforms: service.platforms.clone(),
    }
}

fn tolerations(attestation: &AttestationPolicy) -> Tolerations {
    let tolerate = attestation
        .tolerate
        .iter()
        .filter_map(|t| match t {
            Tolerance::DebugMode => Some(Toleration::DebugMode),
            Tolerance::Hyperthreading => Some(Toleration::Hyperthreading),
            Tolerance::OutdatedTcb => Some(Toleration::OutdatedTcb),
            Tolerance::SoftwareHardeningNeeded => Some(Toleration::SoftwareHardeningNeeded),
            Tolerance::InsecureConfiguration => Some(Toleration::InsecureConfiguration),
            Tolerance::MaaManagedTcb => Some(Toleration::MaaManagedTcb),
            Tolerance::InsecureIgpu => None,
        })
        .collect();
    let ignore_advisories = match &attestation.ignore_advisories {
        custos_policy::IgnoredAdvisories::All => IgnoredAdvisories::All,
        custos_policy::IgnoredAdvisories::List(ids) => IgnoredAdvisories::from_list(ids),
    };
    Tolerations {
        tolerate,
        ignore_advisories,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternatives_tolerations_and_platforms_map_one_to_one() {
        let m1 = "11".repeat(32);
        let m2 = "22".repeat(32);
        let signer = "33".repeat(32);
        let platform = "44".repeat(32);
        let text = format!(
            r#"
name: ns/app
version: "0.3"
security:
  attestation:
    tolerate: [debug, outdated-tcb]
    ignore_advisories: [INTEL-SA-00615]
services:
  - name: svc
    attestation:
      - mrenclave: ["{m1}", "{m2}"]
        signer: {{mrsigner: "{signer}", isvprodid: 7, isvsvn: 2}}
      - signer: {{mrsigner: "{signer}", isvprodid: 8}}
    platforms: ["{platform}"]
"#
        );
        let session = custos_policy::parse("s.yml", &text).unwrap();
        let policy = service_policy(&session.security.attestation, &session.services[0]);
        assert_eq!(policy.identities.len(), 3);
        assert_eq!(policy.identities[0].mrenclave.unwrap().to_hex(), m1);
        assert_eq!(policy.identities[1].mrenclave.unwrap().to_hex(), m2);
        let s = policy.identities[1].signer.unwrap();
        assert_eq!(
            (s.mrsigner.to_hex(), s.isvprodid, s.min_isvsvn, s.max_isvsvn),
            (signer.clone(), Some(7), 2, 2)
        );
        assert_eq!(policy.identities[2].mrenclave, None);
        assert_eq!(policy.identities[2].signer.unwrap().isvprodid, Some(8));
        assert!(policy.tolerations.allows(Toleration::DebugMode));
        assert!(policy.tolerations.allows(Toleration::OutdatedTcb));
        assert_eq!(policy.tolerations.tolerate.len(), 2);
        assert_eq!(
            policy.tolerations.ignore_advisories,
            IgnoredAdvisories::from_list(["INTEL-SA-00615"])
        );
        assert_eq!(policy.platforms[0].to_hex(), platform);
    }
}
