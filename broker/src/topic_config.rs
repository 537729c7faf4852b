//! Topic-level configs accepted at creation. Only keys this broker applies are accepted; any
//! other key is refused with INVALID_CONFIG naming it, rather than stored and ignored.
//! Retention and compaction keys arrive with the retention/compaction work; until then
//! `retention.ms` and `retention.bytes` accept only -1 (no limit), which is what happens.

use std::collections::BTreeMap;

/// (key, check) for every supported topic config.
/// Checks a config value.
type Check = fn(&str) -> bool;

const SUPPORTED: &[(&str, Check)] = &[
    ("max.message.bytes", |v| {
        v.parse::<i32>().is_ok_and(|n| n >= 0)
    }),
    ("message.timestamp.type", |v| {
        v == "CreateTime" || v == "LogAppendTime"
    }),
    ("segment.bytes", |v| {
        v.parse::<i32>().is_ok_and(|n| n >= 1024)
    }),
    ("segment.ms", |v| v.parse::<i64>().is_ok_and(|n| n >= 1)),
    ("cleanup.policy", |v| v == "delete"),
    // Retention is not enforced yet; only "no limit" is accepted so nothing is promised.
    ("retention.ms", |v| v == "-1"),
    ("retention.bytes", |v| v == "-1"),
];

/// The names of the supported topic configs.
pub fn supported_keys() -> impl Iterator<Item = &'static str> {
    SUPPORTED.iter().map(|(k, _)| *k)
}

/// Validates configs from a CreateTopics request; returns them as stored.
pub fn validate(configs: &[(String, Option<String>)]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (key, value) in configs {
        let Some((_, check)) = SUPPORTED.iter().find(|(k, _)| k == key) else {
            return Err(format!("Unknown or unsupported topic config: {key}"));
        };
        let Some(value) = value else {
            return Err(format!("Null value not supported for topic config: {key}"));
        };
        if !check(value) {
            return Err(format!("Invalid value {value} for configuration {key}"));
        }
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_it_would_not_apply() {
        let ok = vec![(
            "message.timestamp.type".to_string(),
            Some("LogAppendTime".to_string()),
        )];
        assert_eq!(
            validate(&ok).unwrap()["message.timestamp.type"],
            "LogAppendTime"
        );
        for (k, v) in [
            ("retention.ms", "1000"),
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1"),
            ("max.message.bytes", "x"),
        ] {
            let err = validate(&[(k.to_string(), Some(v.to_string()))]).unwrap_err();
            assert!(err.contains(k), "{err}");
        }
    }
}
