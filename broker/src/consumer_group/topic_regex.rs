//! Subscriptions by regular expression (`SubscribedTopicRegex`, ConsumerGroupHeartbeat v1), which
//! the broker resolves itself, as Kafka 4.x does:
//!
//! - syntax: RE2/J in Kafka, the `regex` crate here (RE2's family: no look-around, no
//!   back-references, linear-time matching). Topic names are ASCII, so the crate's Unicode
//!   classes match what RE2/J's ASCII ones would;
//! - a topic matches when the expression matches its **whole name** (Java's `matches()`), so the
//!   expression is compiled as `^(?:re)$` after it was checked on its own (wrapped, an unbalanced
//!   `a)|(b` would parse);
//! - internal topics (`__consumer_offsets`, `__transaction_state`, `_schemas`) are candidates
//!   like any other;
//! - an expression that does not compile is INVALID_REGULAR_EXPRESSION, checked when a member
//!   brings one the group does not hold yet.
//!
//! A group keeps one [`Resolutions`] entry per distinct expression its members use (compiled
//! once, dropped with its last member), each with the topic names it matched. An expression new
//! to the group is resolved at once against the heartbeat's metadata; all of them are resolved
//! again when the metadata view changed (a topic created or deleted), at most once per
//! `regex_refresh_min_interval_ms` per group (Kafka: 10 s between two refreshes of a group,
//! `REGEX_BATCH_REFRESH_MIN_INTERVAL_MS`). The matches are over all topics; each member then
//! keeps those its principal may describe (the group module filters them, as Kafka's
//! coordinator filters its resolutions), and a change in what some member keeps bumps the
//! group epoch. The resolutions are persisted with the group, so a restarted broker assigns
//! exactly what it assigned before until the next refresh.

use super::TopicView;
use std::collections::{BTreeMap, BTreeSet};

/// An expression compiled to match whole topic names.
#[derive(Debug, Clone)]
pub(super) struct Pattern(regex::Regex);

impl Pattern {
    /// Compiles `re`; Err is the message for INVALID_REGULAR_EXPRESSION.
    pub(super) fn compile(re: &str) -> Result<Pattern, String> {
        let invalid = |e: regex::Error| {
            format!(
                "SubscribedTopicRegex `{re}` is not a valid regular expression: {}.",
                error_line(&e)
            )
        };
        regex::Regex::new(re).map_err(invalid)?;
        // A trailing `(?x)` comment could swallow the closing `)$`: then this fails too.
        regex::Regex::new(&format!("^(?:{re})$"))
            .map(Pattern)
            .map_err(invalid)
    }

    /// Whether the expression matches all of `name`.
    pub(super) fn matches(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

/// The regex crate's syntax errors draw the pattern with a caret over several lines; the
/// answer's message keeps the line that says what is wrong.
fn error_line(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.trim())
        .to_string()
}

#[derive(Debug, Clone)]
struct Resolved {
    pattern: Pattern,
    topics: BTreeSet<String>,
}

/// One group's expressions and the topics each matched. See the module docs.
#[derive(Debug, Clone, Default)]
pub(super) struct Resolutions {
    entries: BTreeMap<String, Resolved>,
    /// The metadata version the entries were last resolved against (None: unknown, as after a
    /// restore; the next heartbeat resolves them again).
    version: Option<u64>,
    /// When they were last resolved together (None: never).
    refreshed_ms: Option<i64>,
    /// Changes whenever an entry is added or matches other topics (members filter the matches
    /// by what they may describe again).
    generation: u64,
}

impl Resolutions {
    /// Whether `re` is resolved here.
    pub(super) fn contains(&self, re: &str) -> bool {
        self.entries.contains_key(re)
    }

    /// The topics `re` matched; None if the group does not hold it.
    pub(super) fn topics(&self, re: &str) -> Option<&BTreeSet<String>> {
        self.entries.get(re).map(|r| &r.topics)
    }

    /// See the field: compared with what a member's regex topics were filtered at.
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// Adds an expression new to the group, resolved against `view` now.
    pub(super) fn insert(
        &mut self,
        re: String,
        pattern: Pattern,
        view: &dyn TopicView,
        now_ms: i64,
    ) {
        assert!(!re.is_empty(), "an empty regex means no regex");
        if self.entries.is_empty() {
            self.version = Some(view.version());
            self.refreshed_ms = Some(now_ms);
        }
        let topics = resolve(&pattern, view);
        self.entries.insert(re, Resolved { pattern, topics });
        self.generation += 1;
    }

    /// Adds an expression read back from a record with the topics it matched then. False if it
    /// no longer compiles.
    pub(super) fn restore(&mut self, re: String, topics: BTreeSet<String>) -> bool {
        match Pattern::compile(&re) {
            Ok(pattern) if !re.is_empty() => {
                self.entries.insert(re, Resolved { pattern, topics });
                self.generation += 1;
                true
            }
            _ => false,
        }
    }

    /// Drops the expressions no member uses any more.
    pub(super) fn retain(&mut self, used: &BTreeSet<&str>) {
        self.entries.retain(|re, _| used.contains(re.as_str()));
    }

    /// Resolves every expression again if the metadata changed since the last time and that
    /// was at least `min_interval_ms` ago. True if any expression now matches other topics.
    pub(super) fn refresh(
        &mut self,
        view: &dyn TopicView,
        now_ms: i64,
        min_interval_ms: i64,
    ) -> bool {
        if self.entries.is_empty() || self.version == Some(view.version()) {
            return false;
        }
        if self
            .refreshed_ms
            .is_some_and(|t| now_ms < t.saturating_add(min_interval_ms))
        {
            return false;
        }
        self.version = Some(view.version());
        self.refreshed_ms = Some(now_ms);
        let mut found: Vec<BTreeSet<String>> = vec![BTreeSet::new(); self.entries.len()];
        view.for_each_name(&mut |name| {
            for (r, topics) in self.entries.values().zip(found.iter_mut()) {
                if r.pattern.matches(name) {
                    topics.insert(name.to_string());
                }
            }
        });
        let mut changed = false;
        for (r, topics) in self.entries.values_mut().zip(found) {
            if r.topics != topics {
                r.topics = topics;
                changed = true;
            }
        }
        if changed {
            self.generation += 1;
        }
        changed
    }

    /// (expression, topics) in order, for the record.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &BTreeSet<String>)> {
        self.entries.iter().map(|(re, r)| (re, &r.topics))
    }

    /// How many expressions the group holds.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

fn resolve(pattern: &Pattern, view: &dyn TopicView) -> BTreeSet<String> {
    let mut topics = BTreeSet::new();
    view.for_each_name(&mut |name| {
        if pattern.matches(name) {
            topics.insert(name.to_string());
        }
    });
    topics
}
