//! Model names in Ollama's form `[host/][namespace/]model[:tag]`, validated so that a name can
//! never address a path outside the store.

use std::fmt;
use std::path::PathBuf;

pub const DEFAULT_HOST: &str = "registry.ollama.ai";
pub const DEFAULT_NAMESPACE: &str = "library";
pub const DEFAULT_TAG: &str = "latest";

/// A fully qualified model name. Every part is a single path component made of
/// `[A-Za-z0-9_.-]` (host may also hold a `:port`), never `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelName {
    pub host: String,
    pub namespace: String,
    pub model: String,
    pub tag: String,
}

#[derive(Debug, PartialEq, Eq)]
pub struct NameError(pub String, pub &'static str);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid model name '{}': {}", self.0, self.1)
    }
}

impl std::error::Error for NameError {}

fn valid_part(s: &str, max: usize, allow_colon: bool) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s != "."
        && s != ".."
        && !s.starts_with(['-', '.', '_'])
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || c == '_'
                || c == '-'
                || c == '.'
                || (allow_colon && c == ':')
        })
}

impl ModelName {
    pub fn parse(input: &str) -> Result<ModelName, NameError> {
        let err = |why| NameError(input.to_string(), why);
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.contains("://") {
            return Err(err("a model name, not a URL, is expected"));
        }
        // The tag follows the last ':' that comes after the last '/' (a host may carry a port).
        let slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (path, tag) = match s[slash..].rfind(':') {
            Some(i) => (&s[..slash + i], &s[slash + i + 1..]),
            None => (s, DEFAULT_TAG),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let (host, namespace, model) = match parts.as_slice() {
            [m] => (DEFAULT_HOST, DEFAULT_NAMESPACE, *m),
            [ns, m] => (DEFAULT_HOST, *ns, *m),
            [h, ns, m] => (*h, *ns, *m),
            _ => return Err(err("too many '/' separated parts")),
        };
        if !valid_part(host, 350, true) {
            return Err(err("bad host part"));
        }
        if !valid_part(namespace, 80, false) {
            return Err(err("bad namespace part"));
        }
        if !valid_part(model, 80, false) {
            return Err(err("bad model part (letters, digits, '_', '-', '.')"));
        }
        if !valid_part(tag, 80, false) {
            return Err(err("bad tag"));
        }
        Ok(ModelName {
            host: host.to_string(),
            namespace: namespace.to_string(),
            model: model.to_string(),
            tag: tag.to_string(),
        })
    }

    /// Path of the manifest relative to the store root.
    pub fn manifest_rel_path(&self) -> PathBuf {
        PathBuf::from("manifests")
            .join(&self.host)
            .join(&self.namespace)
            .join(&self.model)
            .join(&self.tag)
    }

    /// Case-insensitive identity, as Ollama compares names.
    pub fn same_as(&self, other: &ModelName) -> bool {
        self.to_string().eq_ignore_ascii_case(&other.to_string())
    }
}

/// The short display form: `model:tag` for the default host and namespace, else longer.
impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host != DEFAULT_HOST {
            write!(
                f,
                "{}/{}/{}:{}",
                self.host, self.namespace, self.model, self.tag
            )
        } else if self.namespace != DEFAULT_NAMESPACE {
            write!(f, "{}/{}:{}", self.namespace, self.model, self.tag)
        } else {
            write!(f, "{}:{}", self.model, self.tag)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_display() {
        let n = ModelName::parse("bitnet").unwrap();
        assert_eq!(n.to_string(), "bitnet:latest");
        assert_eq!(n, ModelName::parse("bitnet:latest").unwrap());
        let n = ModelName::parse("me/bitnet:q1").unwrap();
        assert_eq!((n.namespace.as_str(), n.tag.as_str()), ("me", "q1"));
        let n = ModelName::parse("localhost:5000/me/bitnet").unwrap();
        assert_eq!(n.host, "localhost:5000");
        assert_eq!(n.tag, "latest");
    }

    #[test]
    fn rejects_traversal_and_junk() {
        for bad in [
            "",
            "..",
            "../x",
            "a/../b",
            "a/b/c/d",
            "x:..",
            "/abs",
            "a b",
            "x:",
            ".hidden",
            "a\\b",
            "http://h/m",
        ] {
            assert!(ModelName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
