//! Serde helpers for fields AWS sends in more than one JSON type.
//!
//! ECS sends `cpu`/`memory` as strings and `exitCode` as a number, but
//! re-publishers (SNS fan-outs, test tools, older agents) turn either into the
//! other. Accepting both keeps a real event from being rejected on a type quirk.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A field read as text whatever JSON type it came in.
pub type Text = String;

/// A string, a number or a bool, read as text; `null` and absent are `None`.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Text>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!("expected a string or a number, got {other}")));
        }
    })
}

/// An integer, given as a number or as a numeric string; `null`, absent and
/// empty string are `None`.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)) {
            Some(i) => Some(i),
            None => return Err(serde::de::Error::custom(format!("expected an integer, got {n}"))),
        },
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(f) => Some(f as i64),
            Err(_) => {
                return Err(serde::de::Error::custom(format!("expected an integer, got the string {s:?}")));
            }
        },
        Some(other) => {
            return Err(serde::de::Error::custom(format!("expected an integer, got {other}")));
        }
    })
}

/// A float, given as a number or as a numeric string.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(f) => Some(f),
            Err(_) => {
                return Err(serde::de::Error::custom(format!("expected a number, got the string {s:?}")));
            }
        },
        Some(other) => return Err(serde::de::Error::custom(format!("expected a number, got {other}"))),
    })
}

/// A list that may arrive as `null`.
pub fn vec_or_null<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Timestamps as AWS and its re-publishers write them: RFC 3339 with zero
/// to nine fraction digits and `Z` or `+00:00` (`2024-05-01T10:00:00Z`,
/// `…00.5Z`, `…00.123+00:00`), CloudWatch's `2015-06-03T17:43:27.123+0000`
/// (no colon in the offset), and `+00` (hours only).
pub fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, Utc};
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%#z"] {
        if let Ok(t) = DateTime::parse_from_str(text, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    None
}

/// A timestamp in any form [`parse_time`] reads; `null`, absent and empty
/// are `None`, anything else unreadable is an error that quotes it.
pub fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => match parse_time(&s) {
            Some(t) => Some(t),
            None => {
                return Err(serde::de::Error::custom(format!(
                    "expected an RFC 3339 timestamp (Z or +0000 offset), got {s:?}"
                )));
            }
        },
        Some(other) => return Err(serde::de::Error::custom(format!("expected a timestamp string, got {other}"))),
    })
}

/// A list of texts (`resources`: ARNs).
pub type Texts = Vec<Text>;

/// A list of strings that may arrive as `null`; items that are not strings
/// are dropped (a `resources` list is read for ARNs only).
pub fn strings_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Texts, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Array(items)) => items.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s],
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "opt_string")]
        s: Option<String>,
        #[serde(default, deserialize_with = "opt_i64")]
        i: Option<i64>,
    }

    fn probe(json: &str) -> Result<Probe, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn when_numbers_arrive_as_strings_should_read_them() {
        let p = probe(r#"{"s": 256, "i": "137"}"#).unwrap();
        assert_eq!(p.s.as_deref(), Some("256"));
        assert_eq!(p.i, Some(137));
    }

    #[test]
    fn when_fields_are_null_or_absent_should_be_none() {
        let p = probe(r#"{"s": null, "i": ""}"#).unwrap();
        assert_eq!(p.s, None);
        assert_eq!(p.i, None);
        assert!(probe("{}").unwrap().i.is_none());
    }

    #[test]
    fn when_integer_is_not_numeric_should_name_the_value() {
        let err = probe(r#"{"i": "oops"}"#).err().unwrap().to_string();
        assert!(err.contains("oops"), "{err}");
    }

    #[test]
    fn should_parse_both_timestamp_styles() {
        assert!(parse_time("2015-06-03T17:43:27.123+0000").is_some());
        assert!(parse_time("2024-05-01T10:00:00Z").is_some());
        assert!(parse_time("2022-07-22T15:57:45.394+00:00").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn timestamps_with_zero_to_nine_fraction_digits_and_any_utc_offset_should_be_the_same_instant() {
        let want = parse_time("2026-11-20T14:02:11Z").unwrap();
        for text in [
            "2026-11-20T14:02:11Z",
            "2026-11-20T14:02:11+0000",
            "2026-11-20T14:02:11+00:00",
            "2026-11-20T14:02:11+00",
            "2026-11-20T14:02:11.0Z",
            "2026-11-20T14:02:11.00+0000",
            "2026-11-20T14:02:11.000Z",
            "2026-11-20T14:02:11.000000000+00:00",
            "2026-11-20T16:02:11.000+0200",
            " 2026-11-20T14:02:11Z ",
        ] {
            assert_eq!(parse_time(text), Some(want), "{text}");
        }
        let with_millis = parse_time("2026-11-20T14:02:11.5+0000").unwrap();
        assert_eq!(with_millis.timestamp_millis() - want.timestamp_millis(), 500);
        for bad in ["2026-11-20", "2026-11-20T14:02:11", "14:02:11Z", "2026-13-20T14:02:11Z", ""] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[derive(Deserialize)]
    struct Timed {
        #[serde(default, deserialize_with = "opt_time")]
        t: Option<chrono::DateTime<chrono::Utc>>,
        #[serde(default, deserialize_with = "strings_or_null")]
        r: Vec<String>,
    }

    #[test]
    fn opt_time_should_read_every_style_and_name_an_unreadable_one() {
        let t: Timed = serde_json::from_str(r#"{"t": "2026-11-20T14:02:11.1+0000", "r": null}"#).unwrap();
        assert!(t.t.is_some() && t.r.is_empty());
        let t: Timed = serde_json::from_str(r#"{"t": null, "r": ["arn:a", 3, "arn:b"]}"#).unwrap();
        assert_eq!((t.t, t.r), (None, vec!["arn:a".to_string(), "arn:b".to_string()]));
        let err = serde_json::from_str::<Timed>(r#"{"t": "last tuesday"}"#).err().unwrap().to_string();
        assert!(err.contains("last tuesday"), "{err}");
        assert!(serde_json::from_str::<Timed>(r#"{"t": 1700000000}"#).is_err());
    }
}
