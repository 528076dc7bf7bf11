//! Managed HSM local RBAC: the built-in roles that matter for keys, and what each allows.
//!
//! Names, ids and data actions are Microsoft's ("Local RBAC built-in roles for Managed HSM", and
//! the role definitions a Managed HSM lists): "Crypto User" may create, read and release keys;
//! "Crypto Service Release User" may only release (not read) them; "Crypto Auditor" only read.

/// A key operation the emulated Managed HSM serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Create Key.
    Create,
    /// Get Key.
    Read,
    /// Release.
    Release,
}

impl KeyAction {
    /// The data action a role must grant, as Managed HSM names it in a refusal.
    pub fn data_action(self) -> &'static str {
        match self {
            Self::Create => "Microsoft.KeyVault/managedHsm/keys/create",
            Self::Read => "Microsoft.KeyVault/managedHsm/keys/read/action",
            Self::Release => "Microsoft.KeyVault/managedHsm/keys/release/action",
        }
    }
}

/// A built-in role ("Managed HSM Crypto …").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// All key management except purge, recover and export (release included).
    User,
    /// Release keys to a trusted execution environment.
    ServiceReleaseUser,
    /// Read (not use) key attributes.
    Auditor,
}

impl Role {
    const ALL: [(Role, &str, &str); 3] = [
        (
            Role::User,
            "Managed HSM Crypto User",
            "21dbd100-6940-42c2-9190-5d6cb909625b",
        ),
        (
            Role::ServiceReleaseUser,
            "Managed HSM Crypto Service Release User",
            "21dbd100-6940-42c2-9190-5d6cb909625c",
        ),
        (
            Role::Auditor,
            "Managed HSM Crypto Auditor",
            "2c18b078-7c48-4d3a-af88-5a3a1b3f82b3",
        ),
    ];

    /// The role names accepted in the configuration (ids are accepted too).
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::ALL.iter().map(|(_, name, _)| *name)
    }

    /// A role by name or role definition id (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        Self::ALL
            .iter()
            .find(|(_, name, id)| name.eq_ignore_ascii_case(text) || id.eq_ignore_ascii_case(text))
            .map(|(role, ..)| *role)
    }

    /// Whether this role allows `action`.
    pub fn allows(self, action: KeyAction) -> bool {
        match self {
            Self::User => true,
            Self::ServiceReleaseUser => action == KeyAction::Release,
            Self::Auditor => action == KeyAction::Read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_by_name_or_id_and_grant_what_azure_lists() {
        assert_eq!(
            Role::parse("managed hsm crypto service release user"),
            Some(Role::ServiceReleaseUser)
        );
        assert_eq!(
            Role::parse("21dbd100-6940-42c2-9190-5d6cb909625b"),
            Some(Role::User)
        );
        assert_eq!(Role::parse("Managed HSM Administrator"), None);
        let releasers: Vec<Role> = Role::ALL
            .iter()
            .map(|(r, ..)| *r)
            .filter(|r| r.allows(KeyAction::Release))
            .collect();
        assert_eq!(releasers, [Role::User, Role::ServiceReleaseUser]);
        assert!(!Role::ServiceReleaseUser.allows(KeyAction::Read));
        assert!(!Role::Auditor.allows(KeyAction::Create));
        assert!(Role::names().all(|n| Role::parse(n).is_some()));
    }
}
