//! `${VAR}` / `${VAR:-default}` / `${VAR:?message}` substitution in config string values.
//!
//! Substitution happens on parsed YAML scalars, never on the raw text, so a secret can
//! never change the structure of the config. `$${` writes a literal `${`.

use serde_yaml::Value as Yaml;

/// Replaces references in every string scalar of `doc`, recording in `found` each value
/// taken from the environment with its field path (secrets are passed this way, and
/// what carries them must not echo them); on failure returns the field path and the
/// message.
pub fn substitute(doc: &mut Yaml, path: &mut String, found: &mut Vec<(String, String)>) -> Result<(), (String, String)> {
    match doc {
        Yaml::String(s) if s.contains('$') => {
            let taken = std::cell::RefCell::new(Vec::new());
            *s = expand_with(s, |k| {
                let v = std::env::var(k).ok();
                if let Some(v) = &v {
                    taken.borrow_mut().push(v.clone());
                }
                v
            })
            .map_err(|m| (path.clone(), m))?;
            found.extend(taken.into_inner().into_iter().map(|v| (path.clone(), v)));
        }
        Yaml::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                substitute(item, path, found)?;
                path.truncate(len);
            }
        }
        Yaml::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k.as_str().unwrap_or("?"));
                substitute(v, path, found)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Expands `${VAR}`, `${VAR:-default}` and `${VAR:?message}` in one string.
pub fn expand(s: &str) -> Result<String, String> {
    expand_with(s, |k| std::env::var(k).ok())
}

/// What a reference does when its variable has no value.
enum Fallback<'a> {
    /// `${VAR}`: an unset variable is an error.
    None,
    /// `${VAR:-default}`: an unset variable gives the default.
    Default(&'a str),
    /// `${VAR:?message}`: an unset or empty variable is an error carrying the message, as in
    /// the shell: a required secret that is set but empty is as wrong as a missing one.
    Required(&'a str),
}

/// Splits the inside of `${…}` into the variable name and its fallback.
fn reference(inner: &str) -> (&str, Fallback<'_>) {
    let Some((name, rest)) = inner.split_once(':') else {
        return (inner, Fallback::None);
    };
    if let Some(d) = rest.strip_prefix('-') {
        (name, Fallback::Default(d))
    } else if let Some(m) = rest.strip_prefix('?') {
        (name, Fallback::Required(m))
    } else {
        // Not a form we know: the whole text is reported as an invalid name.
        (inner, Fallback::None)
    }
}

/// The value of one reference, or why there is none.
fn resolve(name: &str, fallback: Fallback<'_>, lookup: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    match (lookup(name), fallback) {
        (Some(v), Fallback::Required(m)) if v.is_empty() => Err(required(name, "is empty", m)),
        (Some(v), _) => Ok(v),
        (None, Fallback::Default(d)) => Ok(d.to_string()),
        (None, Fallback::Required(m)) => Err(required(name, "is not set", m)),
        (None, Fallback::None) => Err(format!("environment variable `{name}` is not set")),
    }
}

fn required(name: &str, state: &str, message: &str) -> String {
    let message = message.trim();
    if message.is_empty() {
        format!("environment variable `{name}` {state} (required)")
    } else {
        format!("environment variable `{name}` {state}: {message}")
    }
}

/// [`expand`] with an explicit lookup (for tests and for Toolbox-style files).
pub fn expand_with(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
            let inner = &tail[..end];
            let (name, fallback) = reference(inner);
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("invalid variable name `{name}` in `${{{inner}}}`"));
            }
            out.push_str(&resolve(name, fallback, &lookup)?);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variables_defaults_and_escapes() {
        let look = |k: &str| (k == "A").then(|| "x".to_string());
        assert_eq!(expand_with("a${A}b", look).unwrap(), "axb");
        assert_eq!(expand_with("${B:-dflt}", look).unwrap(), "dflt");
        assert_eq!(expand_with("$${A} $5", look).unwrap(), "${A} $5");
        assert!(expand_with("${B}", look).unwrap_err().contains("`B` is not set"));
        assert!(expand_with("${A", look).is_err());
    }

    #[test]
    fn required_references_fail_with_their_message() {
        let look = |k: &str| match k {
            "A" => Some("x".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(expand_with("${A:?set A}", look).unwrap(), "x");
        assert_eq!(expand_with("pw=${B:?the shop database password}", look).unwrap_err(), "environment variable `B` is not set: the shop database password");
        assert_eq!(expand_with("${EMPTY:?give it a value}", look).unwrap_err(), "environment variable `EMPTY` is empty: give it a value");
        assert_eq!(expand_with("${B:?}", look).unwrap_err(), "environment variable `B` is not set (required)");
        // A default may be empty; only `:?` insists on a value.
        assert_eq!(expand_with("${EMPTY:-d}", look).unwrap(), "");
        assert!(expand_with("${B:x}", look).unwrap_err().contains("invalid variable name `B:x`"));
    }
}
