//! Server-side assignors: `uniform` (Kafka's default: balanced and sticky) and `range`
//! (contiguous ranges per topic, members in id order). Both are pure functions of the
//! subscriptions, the topics' metadata and (uniform) the previous target.

use super::{Assignment, TopicInfo};
use std::collections::{BTreeMap, BTreeSet};

/// Assignor names the coordinator accepts in `server_assignor`.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// Target assignment per member id.
pub(super) fn assign(
    name: &str,
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, TopicInfo>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = subscriptions
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (name_t, info) in topics {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, s)| s.contains(name_t))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() || info.partitions <= 0 {
            continue;
        }
        let owners = if name == "range" {
            range(&members, info.partitions)
        } else {
            sticky_balanced(&members, info, previous)
        };
        for (p, member) in owners.into_iter().enumerate() {
            out.entry(member.clone())
                .or_default()
                .entry(info.id)
                .or_default()
                .insert(p as i32);
        }
    }
    balance_across_topics(&mut out, subscriptions, topics, name);
    out
}

/// Owner of each partition: the first `n % m` members get one extra.
fn range<'a>(members: &[&'a String], partitions: i32) -> Vec<&'a String> {
    let n = partitions as usize;
    let m = members.len();
    let (base, extra) = (n / m, n % m);
    let mut owners = Vec::with_capacity(n);
    for (i, member) in members.iter().enumerate() {
        let count = base + usize::from(i < extra);
        owners.extend(std::iter::repeat_n(*member, count));
    }
    owners
}

/// Owner of each partition, keeping previous owners where the balance allows: every member
/// ends with `n / m` or `n / m + 1` partitions of the topic.
fn sticky_balanced<'a>(
    members: &[&'a String],
    info: &TopicInfo,
    previous: &BTreeMap<String, Assignment>,
) -> Vec<&'a String> {
    let n = info.partitions as usize;
    let m = members.len();
    let (base, mut extra) = (n / m, n % m);
    let mut owners: Vec<Option<&String>> = vec![None; n];
    let mut counts = vec![0usize; m];
    for (i, member) in members.iter().enumerate() {
        let kept = previous
            .get(*member)
            .and_then(|a| a.get(&info.id))
            .into_iter()
            .flatten()
            .filter(|p| (0..n as i32).contains(p));
        for &p in kept {
            let cap = base + usize::from(extra > 0);
            if counts[i] >= cap || owners[p as usize].is_some() {
                continue;
            }
            if counts[i] == base {
                extra -= 1;
            }
            owners[p as usize] = Some(member);
            counts[i] += 1;
        }
    }
    for slot in owners.iter_mut().filter(|o| o.is_none()) {
        let mut best: Option<usize> = None;
        for i in 0..m {
            let cap = base + usize::from(extra > 0 || counts[i] > base);
            if counts[i] < cap && best.is_none_or(|b| counts[i] < counts[b]) {
                best = Some(i);
            }
        }
        let i = best.unwrap_or(0);
        if counts[i] == base {
            extra = extra.saturating_sub(1);
        }
        counts[i] += 1;
        *slot = Some(members[i]);
    }
    owners
        .into_iter()
        .map(|o| o.expect("every partition has an owner"))
        .collect()
}

/// Per-topic balancing leaves members with equal subscriptions off by one per topic, so with
/// many single-partition topics one member could take them all. Uniform moves whole
/// partitions from the most to the least loaded member (both subscribed) until the totals
/// differ by at most one.
fn balance_across_topics(
    out: &mut BTreeMap<String, Assignment>,
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, TopicInfo>,
    name: &str,
) {
    if name != "uniform" {
        return;
    }
    let total = |a: &Assignment| a.values().map(BTreeSet::len).sum::<usize>();
    let bound = topics
        .values()
        .map(|t| t.partitions.max(0) as usize)
        .sum::<usize>()
        + 1;
    for _ in 0..bound {
        let Some((most, least)) = most_and_least(out, &total) else {
            return;
        };
        if total(&out[&most]) <= total(&out[&least]) + 1 {
            return;
        }
        let movable = out[&most].iter().find_map(|(id, ps)| {
            let topic = topics.iter().find(|(_, t)| t.id == *id)?.0;
            let ok = subscriptions.get(&least).is_some_and(|s| s.contains(topic));
            if ok {
                Some((*id, *ps.iter().next_back()?))
            } else {
                None
            }
        });
        let Some((id, p)) = movable else {
            return;
        };
        if let Some(ps) = out.get_mut(&most).and_then(|a| a.get_mut(&id)) {
            ps.remove(&p);
            if ps.is_empty() {
                out.get_mut(&most).map(|a| a.remove(&id));
            }
        }
        out.entry(least)
            .or_default()
            .entry(id)
            .or_default()
            .insert(p);
    }
}

fn most_and_least(
    out: &BTreeMap<String, Assignment>,
    total: &dyn Fn(&Assignment) -> usize,
) -> Option<(String, String)> {
    let most = out.iter().max_by_key(|(_, a)| total(a))?.0.clone();
    let least = out.iter().min_by_key(|(_, a)| total(a))?.0.clone();
    Some((most, least))
}
