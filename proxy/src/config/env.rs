//! `${VAR}` / `${VAR:-default}` substitution in config string values.
//!
//! Substitution happens on parsed YAML scalars, never on the raw text, so a secret can
//! never change the structure of the config. `$${` writes a literal `${`.

use serde_yaml::Value as Yaml;

/// Replaces references in every string scalar of `doc`; on failure returns the field path
/// and the message.
pub fn substitute(doc: &mut Yaml, path: &mut String) -> Result<(), (String, String)> {
    match doc {
        Yaml::String(s) if s.contains('$') => {
            *s = expand(s).map_err(|m| (path.clone(), m))?;
        }
        Yaml::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                substitute(item, path)?;
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
                substitute(v, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Expands `${VAR}` and `${VAR:-default}` in one string.
pub fn expand(s: &str) -> Result<String, String> {
    expand_with(s, |k| std::env::var(k).ok())
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
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("invalid variable name `{name}` in `${{{inner}}}`"));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(format!("environment variable `{name}` is not set")),
            }
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
}
