//! Unknown-key messages that list every valid key. Some keys (`servers`, a server's
//! `name`/`type`/`description`) are taken out of the document before serde sees the rest,
//! so serde's own "expected one of" list would leave them out.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_yaml::{Mapping, Value as Yaml};

/// The keys `T`'s derived `Deserialize` reads, as serde lists them (fields marked
/// `skip_deserializing` are not among them). Empty for a type that is not a plain struct.
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The probe always fails once it has seen the field list; the error is the expected end.
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

/// The first key of `map` that is not in `known`, as a message listing `known` and, when
/// one is close, the key that was probably meant: "unknown {what} `x` (did you mean `y`?);
/// valid keys{of}: …".
pub fn check(map: &Mapping, known: &[&str], what: &str, of: &str) -> Result<(), String> {
    for key in map.keys() {
        let name = match key {
            Yaml::String(s) => s.clone(),
            other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
        };
        if known.contains(&name.as_str()) {
            continue;
        }
        let hint = closest(&name, known).map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default();
        return Err(format!("unknown {what} `{name}`{hint}; valid keys{of}: {}", known.join(", ")));
    }
    Ok(())
}

/// The known key nearest to `typed`, if it is near enough to be a typo of it.
fn closest<'k>(typed: &str, known: &[&'k str]) -> Option<&'k str> {
    let typed = typed.to_ascii_lowercase();
    known.iter().map(|k| (distance(&typed, k), *k)).filter(|(d, k)| *d <= (k.len() / 3).clamp(1, 3)).min_by_key(|(d, _)| *d).map(|(_, k)| k)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// A deserializer that only records the field list a derived struct asks for.
struct FieldProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(self, _name: &'static str, fields: &'static [&'static str], _visitor: V) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        alpha: u8,
        #[serde(skip_deserializing)]
        hidden: u8,
        beta: u8,
    }

    #[test]
    fn fields_are_read_from_the_derived_impl() {
        assert_eq!(fields_of::<Sample>(), ["alpha", "beta"]);
        assert!(fields_of::<String>().is_empty());
    }

    #[test]
    fn near_misses_are_suggested_and_far_ones_are_not() {
        let known = ["listen", "admin", "servers"];
        assert_eq!(closest("server", &known), Some("servers"));
        assert_eq!(closest("Servers", &known), Some("servers"));
        assert_eq!(closest("lisen", &known), Some("listen"));
        assert_eq!(closest("database", &known), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
