//! Whole numbers in request bodies as JSON Schema counts them: `3600` and `3600.0` are the same
//! integer, so a client whose JSON library writes every number as a float is not refused, while
//! `3600.5`, negatives and values out of range still are.

use serde::de::Error;
use serde::{Deserialize, Deserializer};
use serde_json::Number;

fn from_number<E: Error, T: TryFrom<u64>>(n: &Number) -> Result<T, E> {
    let whole = match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => Some(u),
        // 2^64 is exactly representable; anything at or above it does not fit.
        (None, Some(f)) if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) => Some(f as u64),
        _ => None,
    };
    let whole = whole.ok_or_else(|| E::custom(format!("expected a whole number of at least 0, got {n}")))?;
    T::try_from(whole).map_err(|_| E::custom(format!("{n} is out of range")))
}

/// An optional whole number (`null` or absent: `None`).
pub fn option<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<Number>::deserialize(d)?.map(|n| from_number(&n)).transpose()
}

/// A whole number.
pub fn required<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    from_number(&Number::deserialize(d)?)
}

/// An optional list of whole numbers.
pub fn option_list<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<Option<Vec<T>>, D::Error> {
    match Option::<Vec<Number>>::deserialize(d)? {
        None => Ok(None),
        Some(v) => v.iter().map(from_number).collect::<Result<Vec<T>, _>>().map(Some),
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    struct Req {
        #[serde(default, deserialize_with = "super::option")]
        ttl: Option<u64>,
        #[serde(default, deserialize_with = "super::option_list")]
        ports: Option<Vec<u16>>,
    }

    fn parse(text: &str) -> Result<Req, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_written_as_floats_are_the_same_integers() {
        let r = parse(r#"{"ttl": 3600.0, "ports": [80.0, 443]}"#).unwrap();
        assert_eq!((r.ttl, r.ports), (Some(3600), Some(vec![80, 443])));
        assert_eq!(parse(r#"{"ttl": null}"#).unwrap().ttl, None);
        assert_eq!(parse("{}").unwrap().ttl, None);
        assert_eq!(parse(r#"{"ttl": 1e3}"#).unwrap().ttl, Some(1000));
    }

    #[test]
    fn fractions_negatives_and_overflow_are_refused() {
        for (text, needle) in [
            (r#"{"ttl": 3600.5}"#, "whole number"),
            (r#"{"ttl": -1}"#, "whole number"),
            (r#"{"ttl": 1e300}"#, "whole number"),
            (r#"{"ttl": "3600"}"#, "invalid type"),
            (r#"{"ports": [65536]}"#, "out of range"),
            (r#"{"ports": [1.5]}"#, "whole number"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
