//! `access_policy` and `security.attestation`.

use std::collections::BTreeSet;

use custos_ids::{KeyHash, MrEnclave, MrSigner, TrustedMaaEnclave};

use super::reader::{Field, shorten};
use super::{Decoder, values};
use crate::diagnostic::Problem;
use crate::model::{
    AccessPolicy, AttestationMode, AttestationPolicy, DEFAULT_MIN_RSA_SIGNING_KEY_SIZE,
    IgnoredAdvisories, Principal, Security, Tolerance,
};
use crate::suggest;

const ACCESS_KEYS: &[&str] = &["read", "update", "create_sessions"];
const SECURITY_KEYS: &[&str] = &["attestation"];
const ATTESTATION_KEYS: &[&str] = &[
    "mode",
    "url",
    "certificates",
    "tolerate",
    "ignore_advisories",
    "min_rsa_signing_key_size",
    "trusted_scone_qe_pubkeys",
    "trusted_platform_keys",
    "trusted_maa_enclaves",
];
const TRUSTED_MAA_ENCLAVE_KEYS: &[&str] = &[
    "mrsigner",
    "mrenclave",
    "isvprodid",
    "isvsvn_min",
    "debug_allowed",
];

impl Decoder<'_> {
    pub(super) fn access_policy(&mut self, f: Field<'_, '_>) -> Option<AccessPolicy> {
        let fields = self.r.fields(f, ACCESS_KEYS, &[])?;
        let read_list = |d: &mut Self, key: &str| -> Option<Option<Vec<Principal>>> {
            match fields.get(key) {
                None => Some(None),
                Some(item) => d.principals(item.field()).map(Some),
            }
        };
        let read = read_list(self, "read");
        let update = read_list(self, "update");
        let create = read_list(self, "create_sessions");
        let defaults = AccessPolicy::default();
        let update = update?.unwrap_or(defaults.update);
        Some(AccessPolicy {
            read: read?.unwrap_or(defaults.read),
            create_sessions: create?.unwrap_or_else(|| update.clone()),
            update,
        })
    }

    fn principals(&mut self, f: Field<'_, '_>) -> Option<Vec<Principal>> {
        let items = self
            .r
            .list(f, "CREATOR, ANY, NONE, certificates or public-key hashes")?;
        if items.is_empty() {
            self.r
                .invalid(f, "an empty list admits nobody: write `[NONE]` to say so");
            return None;
        }
        let mut principals = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in &items {
            match self.principal(item.field()) {
                Some(p) => principals.push(p),
                None => ok = false,
            }
        }
        if ok && principals.len() > 1 && principals.contains(&Principal::Nobody) {
            self.r.report(
                f.key_or_value_at(),
                f.path,
                Problem::Conflict,
                "`NONE` cannot be combined with other entries",
            );
            return None;
        }
        ok.then_some(principals)
    }

    fn principal(&mut self, f: Field<'_, '_>) -> Option<Principal> {
        let text = self.r.text(f)?;
        let trimmed = text.trim();
        match trimmed {
            "CREATOR" => return Some(Principal::Creator),
            "ANY" => return Some(Principal::Any),
            "NONE" => return Some(Principal::Nobody),
            _ => {}
        }
        if trimmed.starts_with("-----BEGIN") {
            return match values::certificates(text) {
                Ok(mut certs) if certs.len() == 1 => certs.pop().map(Principal::Certificate),
                Ok(certs) => {
                    self.r.invalid(
                        f,
                        format!("expected one certificate, found {}", certs.len()),
                    );
                    None
                }
                Err(e) => {
                    self.r.invalid(f, e);
                    None
                }
            };
        }
        if trimmed.len() == 64 && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
            return trimmed.parse().ok().map(Principal::PublicKey);
        }
        let hint = suggest::hint(trimmed, ["CREATOR", "ANY", "NONE"]);
        self.r.invalid(
            f,
            format!(
                "`{}` is not an access-policy entry (expected CREATOR, ANY, NONE, a PEM certificate or a public-key hash of 64 hex digits){hint}",
                shorten(trimmed)
            ),
        );
        None
    }

    pub(super) fn security(&mut self, f: Field<'_, '_>) -> Option<Security> {
        let fields = self.r.fields(f, SECURITY_KEYS, &[])?;
        let attestation = match fields.get("attestation") {
            Some(item) => self.attestation(item.field())?,
            None => AttestationPolicy::default(),
        };
        Some(Security { attestation })
    }

    fn attestation(&mut self, f: Field<'_, '_>) -> Option<AttestationPolicy> {
        let fields = self.r.fields(f, ATTESTATION_KEYS, &[])?;
        let mut ok = true;
        let mut policy = AttestationPolicy::default();

        if let Some(item) = fields.get("mode") {
            match self.r.keyword(
                item.field(),
                "attestation mode",
                AttestationMode::from_keyword,
                AttestationMode::KEYWORDS,
            ) {
                Some(mode) => policy.mode = mode,
                None => return None, // every other check depends on the mode
            }
        }
        let maa = policy.mode == AttestationMode::Maa;

        match fields.get("url") {
            Some(item) => {
                let f = item.field();
                if !maa {
                    self.r.report(
                        f.key_or_value_at(),
                        f.path,
                        Problem::Conflict,
                        format!(
                            "`url` is the MAA instance, used only with `mode: maa` (mode is {})",
                            policy.mode
                        ),
                    );
                    ok = false;
                } else if let Some(text) = self.r.text(f) {
                    match values::https_url(text) {
                        Ok(url) => policy.url = Some(url),
                        Err(e) => {
                            self.r.invalid(f, e);
                            ok = false;
                        }
                    }
                } else {
                    ok = false;
                }
            }
            None if maa => {
                self.r.report(
                    fields.at,
                    &fields.path.key("url"),
                    Problem::Missing,
                    "`mode: maa` needs `url`, the MAA instance (https://…)",
                );
                ok = false;
            }
            None => {}
        }

        if let Some(item) = fields.get("certificates") {
            match self.r.list(item.field(), "PEM certificates") {
                Some(items) => {
                    for cert in &items {
                        let f = cert.field();
                        match self.r.text(f).map(values::certificates) {
                            Some(Ok(certs)) => policy.certificates.extend(certs),
                            Some(Err(e)) => {
                                self.r.invalid(f, e);
                                ok = false;
                            }
                            None => ok = false,
                        }
                    }
                }
                None => ok = false,
            }
        }

        let tolerate_item = fields.get("tolerate");
        if let Some(item) = &tolerate_item {
            for t in self.r.one_or_list(item.field()) {
                match self.r.keyword(
                    t.field(),
                    "tolerance",
                    Tolerance::from_keyword,
                    Tolerance::KEYWORDS,
                ) {
                    Some(Tolerance::MaaManagedTcb) if !maa => {
                        self.r.report(
                            t.key_or_value_at(),
                            &t.path,
                            Problem::Conflict,
                            format!(
                                "`maa-managed-tcb` leaves the TCB check to MAA; it is only allowed with `mode: maa` (mode is {})",
                                policy.mode
                            ),
                        );
                        ok = false;
                    }
                    Some(Tolerance::InsecureIgpu) => {
                        self.r.report(
                            t.key_or_value_at(),
                            &t.path,
                            Problem::InvalidValue,
                            "`insecure-igpu` is not supported: SCONE tolerates INTEL-SA-00219 platforms with it, but does not document which TCB status it accepts, so Custos refuses it rather than guess",
                        );
                        ok = false;
                    }
                    Some(t) => {
                        policy.tolerate.insert(t);
                    }
                    None => ok = false,
                }
            }
        }
        if maa && ok && !policy.tolerate.contains(&Tolerance::MaaManagedTcb) {
            let (at, path) = match &tolerate_item {
                Some(item) => (item.node.at, item.path.clone()),
                None => (fields.at, fields.path.key("tolerate")),
            };
            self.r.report(
                at,
                &path,
                Problem::Missing,
                "`mode: maa` requires `tolerate` to include `maa-managed-tcb`: MAA tokens carry no TCB status, so MAA's policy decides it",
            );
            ok = false;
        }

        if let Some(item) = fields.get("ignore_advisories") {
            match self.advisories(item.field()) {
                // SCONE: "wildcards cannot be used in (non-debug) production mode".
                Some(IgnoredAdvisories::All)
                    if !policy.tolerate.contains(&Tolerance::DebugMode) =>
                {
                    self.r.report(
                        item.key_or_value_at(),
                        &item.path,
                        Problem::Conflict,
                        "`ignore_advisories: \"*\"` ignores every advisory, also future ones: as in SCONE, only with `tolerate: [debug-mode]`; list the advisory ids instead",
                    );
                    ok = false;
                }
                Some(a) => policy.ignore_advisories = a,
                None => ok = false,
            }
        }

        if let Some(item) = fields.get("min_rsa_signing_key_size") {
            match self.r.integer(item.field(), 1024, 16384) {
                Some(bits) => policy.min_rsa_signing_key_size = bits as u32,
                None => ok = false,
            }
        } else {
            policy.min_rsa_signing_key_size = DEFAULT_MIN_RSA_SIGNING_KEY_SIZE;
        }

        let qe = fields.get("trusted_scone_qe_pubkeys");
        let platform = fields.get("trusted_platform_keys");
        if let (Some(_), Some(p)) = (&qe, &platform) {
            self.r.report(
                p.key_or_value_at(),
                &p.path,
                Problem::Conflict,
                "`trusted_platform_keys` and `trusted_scone_qe_pubkeys` are the same list: write only one",
            );
            ok = false;
        } else if let Some(item) = qe.or(platform) {
            match self.key_hashes(item.field()) {
                Some(keys) => policy.trusted_platform_keys = keys,
                None => ok = false,
            }
        }

        if let Some(item) = fields.get("trusted_maa_enclaves") {
            let f = item.field();
            if !maa {
                self.r.report(
                    f.key_or_value_at(),
                    f.path,
                    Problem::Conflict,
                    format!(
                        "`trusted_maa_enclaves` names the MAA enclaves trusted to sign tokens, used only with `mode: maa` (mode is {})",
                        policy.mode
                    ),
                );
                ok = false;
            } else {
                match self.trusted_maa_enclaves(f) {
                    Some(list) => policy.trusted_maa_enclaves = Some(list),
                    None => ok = false,
                }
            }
        }

        ok.then_some(policy)
    }

    /// `trusted_maa_enclaves`: a non-empty list of MAA enclave identities.
    fn trusted_maa_enclaves(&mut self, f: Field<'_, '_>) -> Option<Vec<TrustedMaaEnclave>> {
        let items = self.r.list(f, "MAA enclave identities ({mrsigner, …})")?;
        if items.is_empty() {
            self.r.invalid(
                f,
                "an empty list would trust no MAA enclave; name at least one (omit the field for the CAS's default)",
            );
            return None;
        }
        let mut list = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in &items {
            match self.trusted_maa_enclave(item.field()) {
                Some(e) => list.push(e),
                None => ok = false,
            }
        }
        ok.then_some(list)
    }

    fn trusted_maa_enclave(&mut self, f: Field<'_, '_>) -> Option<TrustedMaaEnclave> {
        let fields = self.r.fields(f, TRUSTED_MAA_ENCLAVE_KEYS, &[])?;
        let mrsigner = self
            .r
            .required(
                &fields,
                "mrsigner",
                "the MAA enclave's MRSIGNER (64 hex digits)",
            )
            .and_then(|i| self.r.parsed::<MrSigner>(i.field(), "an MRSIGNER"));
        let mrenclave = match fields.get("mrenclave") {
            Some(i) => self
                .r
                .parsed::<MrEnclave>(i.field(), "an MRENCLAVE")
                .map(Some),
            None => Some(None),
        };
        let mut u16_field = |key: &str| match fields.get(key) {
            Some(i) => self
                .r
                .integer(i.field(), 0, u64::from(u16::MAX))
                .and_then(|n| u16::try_from(n).ok())
                .map(Some),
            None => Some(None),
        };
        let isvprodid = u16_field("isvprodid");
        let min_isvsvn = u16_field("isvsvn_min");
        let debug_allowed = match fields.get("debug_allowed") {
            Some(i) => self.r.boolean(i.field()),
            None => Some(false),
        };
        Some(TrustedMaaEnclave {
            mrsigner: mrsigner?,
            mrenclave: mrenclave?,
            isvprodid: isvprodid?,
            min_isvsvn: min_isvsvn?,
            debug_allowed: debug_allowed?,
        })
    }

    fn advisories(&mut self, f: Field<'_, '_>) -> Option<IgnoredAdvisories> {
        let mut ids = BTreeSet::new();
        let mut ok = true;
        for item in self.r.one_or_list(f) {
            let f = item.field();
            let Some(id) = self.r.text(f) else {
                ok = false;
                continue;
            };
            if id == "*" {
                return Some(IgnoredAdvisories::All);
            }
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                self.r.invalid(
                    f,
                    format!(
                        "`{}` is not an advisory id (such as INTEL-SA-00289) or `*`",
                        shorten(id)
                    ),
                );
                ok = false;
            } else {
                ids.insert(id.to_owned());
            }
        }
        ok.then_some(IgnoredAdvisories::List(ids))
    }

    /// A list of public-key hashes (64 hex digits each).
    pub(super) fn key_hashes(&mut self, f: Field<'_, '_>) -> Option<Vec<KeyHash>> {
        let items = self.r.list(f, "public-key hashes (64 hex digits)")?;
        let mut keys = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in &items {
            match self.r.parsed::<KeyHash>(item.field(), "a public-key hash") {
                Some(k) => keys.push(k),
                None => ok = false,
            }
        }
        ok.then_some(keys)
    }
}
