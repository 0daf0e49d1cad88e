//! Names of profiles and peers: safe as path components and in config files.

use std::fmt;
use std::str::FromStr;

/// A validated name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or
/// digit. Such a name can never escape a directory (`..`, `/`) or hide
/// (leading `.`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// A profile's name.
pub type ProfileName = Name;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid name '{shown}': {why}; use 1 to {max} lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
    max = Name::MAX_LEN
)]
pub struct NameError {
    shown: String,
    why: &'static str,
}

impl Name {
    /// The longest accepted name, in bytes.
    pub const MAX_LEN: usize = 64;

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A valid name for when nothing better can be derived.
    pub(crate) fn fallback() -> Self {
        Self("peer".to_owned())
    }
}

impl FromStr for Name {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |why| {
            let shown: String = s.chars().take(80).collect();
            let shown = if shown.len() < s.len() { format!("{shown}…") } else { shown };
            Err(NameError { shown: shown.escape_debug().to_string(), why })
        };
        let Some(first) = s.chars().next() else {
            return fail("it is empty");
        };
        if s.len() > Self::MAX_LEN {
            return fail("it is too long");
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return fail("it must start with a lowercase letter or digit");
        }
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
        if !s.chars().all(ok) {
            return fail("it contains a character that is not allowed");
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_reasonable_names() {
        for ok in ["personal", "research", "writer-2", "a", "0", "a.b_c-d", &"x".repeat(64)] {
            assert!(ok.parse::<Name>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_unsafe_names() {
        for bad in ["", "../x", "a/b", ".hidden", "-flag", "_x", "Upper", "sp ace", "é", &"x".repeat(65), "a\0b"] {
            let err = bad.parse::<Name>().unwrap_err().to_string();
            assert!(err.contains("invalid name"), "{bad}: {err}");
        }
    }

    #[test]
    fn long_names_are_shortened_in_errors() {
        let err = "x".repeat(10_000).parse::<Name>().unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
        assert!(err.contains("too long"));
    }

    proptest! {
        #[test]
        fn accepted_names_are_safe_path_components(s in "\\PC{0,70}") {
            if let Ok(name) = s.parse::<Name>() {
                let p = std::path::Path::new(name.as_str());
                prop_assert_eq!(p.components().count(), 1);
                prop_assert!(!name.as_str().starts_with('.'));
            }
        }
    }
}
