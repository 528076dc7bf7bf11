//! Names of sessions, secrets, services and images, valid by construction.

use std::fmt;
use std::str::FromStr;

/// Longest component of a session name, and longest secret, service or image name.
pub const MAX_NAME_LEN: usize = 128;

/// Most components in a session name (`ns/sub/…/session`).
pub const MAX_SESSION_DEPTH: usize = 16;

/// Why a text is not a valid name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name (or one `/`-separated component of a session name) is empty.
    #[error("empty name component")]
    Empty,
    /// A name or component longer than [`MAX_NAME_LEN`] characters.
    #[error("{len} characters long; at most {MAX_NAME_LEN} are allowed")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A session name with more than [`MAX_SESSION_DEPTH`] components.
    #[error("{depth} components; at most {MAX_SESSION_DEPTH} are allowed")]
    TooDeep {
        /// Its number of components.
        depth: usize,
    },
    /// A character outside the allowed set.
    #[error("character {found:?} at position {position} is not allowed (allowed: {allowed})")]
    Character {
        /// The character.
        found: char,
        /// Its 1-based position in the whole name.
        position: usize,
        /// The allowed set, for the message.
        allowed: &'static str,
    },
    /// A session-name component that is `.` or `..`.
    #[error("`{0}` is not allowed as a name component")]
    Dots(String),
}

fn check_component(
    text: &str,
    offset: usize,
    allowed: &'static str,
    ok: fn(char) -> bool,
) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some((i, c)) = text.chars().enumerate().find(|(_, c)| !ok(*c)) {
        return Err(NameError::Character {
            found: c,
            position: offset + i + 1,
            allowed,
        });
    }
    let len = text.chars().count();
    if len > MAX_NAME_LEN {
        return Err(NameError::TooLong { len });
    }
    Ok(())
}

const SESSION_CHARS: &str = "A-Z a-z 0-9 _ - . ~, components separated by /";
fn session_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '~')
}

const ENTRY_CHARS: &str = "A-Z a-z 0-9 _ -";
fn entry_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

/// The name of a session: a `/`-separated path whose leading components name the namespaces it
/// lives in (`azure-integration-42/demo`). Each component is 1 to 128 characters of
/// `[A-Za-z0-9_\-.~]`, and neither `.` nor `..`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionName(String);

impl SessionName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated components, outermost namespace first.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The namespace this session is created in (the name without its last component), or
    /// `None` for a top-level namespace.
    pub fn parent(&self) -> Option<SessionName> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| SessionName(parent.to_owned()))
    }
}

impl FromStr for SessionName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let depth = s.split('/').count();
        if depth > MAX_SESSION_DEPTH {
            return Err(NameError::TooDeep { depth });
        }
        let mut offset = 0;
        for component in s.split('/') {
            check_component(component, offset, SESSION_CHARS, session_char)?;
            if component == "." || component == ".." {
                return Err(NameError::Dots(component.to_owned()));
            }
            offset += component.chars().count() + 1;
        }
        Ok(SessionName(s.to_owned()))
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! entry_name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// 1 to 128 characters of `[A-Za-z0-9_-]` (no `.`, so a legacy placeholder suffix such as
        /// `.crt` is never part of a name).
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The name as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                check_component(s, 0, ENTRY_CHARS, entry_char)?;
                Ok($name(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

entry_name!(
    /// The name of a secret, unique within its session; placeholders refer to it.
    SecretName
);
entry_name!(
    /// The name of a service, unique within its session; the last part of a `config_id`
    /// (`<session name>/<service name>`).
    ServiceName
);
entry_name!(
    /// The name of an image, unique within its session; services refer to it by `image_name`.
    ImageName
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names() {
        let n: SessionName = "azure-integration-123/demo".parse().unwrap();
        assert_eq!(
            n.components().collect::<Vec<_>>(),
            ["azure-integration-123", "demo"]
        );
        assert_eq!(n.parent().unwrap().as_str(), "azure-integration-123");
        assert_eq!(n.parent().unwrap().parent(), None);
        assert!("a.b~c_d-e".parse::<SessionName>().is_ok());
        assert_eq!("".parse::<SessionName>(), Err(NameError::Empty));
        assert_eq!("a//b".parse::<SessionName>(), Err(NameError::Empty));
        assert_eq!("a/".parse::<SessionName>(), Err(NameError::Empty));
        assert_eq!(
            "a/../b".parse::<SessionName>(),
            Err(NameError::Dots("..".into()))
        );
        assert!(matches!(
            "ns/x y".parse::<SessionName>(),
            Err(NameError::Character {
                found: ' ',
                position: 5,
                ..
            })
        ));
        assert!(matches!(
            "x".repeat(129).parse::<SessionName>(),
            Err(NameError::TooLong { len: 129 })
        ));
        assert!(matches!(
            vec!["a"; 17].join("/").parse::<SessionName>(),
            Err(NameError::TooDeep { depth: 17 })
        ));
    }

    #[test]
    fn entry_names() {
        assert!("MY_AKV_SECRET".parse::<SecretName>().is_ok());
        assert!("rest-api".parse::<ServiceName>().is_ok());
        assert!(matches!(
            "cert.crt".parse::<SecretName>(),
            Err(NameError::Character {
                found: '.',
                position: 5,
                ..
            })
        ));
        assert!("$CAS".parse::<ImageName>().is_err());
    }
}
