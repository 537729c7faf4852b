//! The history checker: clean histories pass, and each anomaly injected into one is found (and
//! nothing unrelated is reported); inconsistent histories are refused; the JSON-lines format
//! round-trips and is strict.
//!
//! Histories are generated from a seed with a tiny xorshift generator: three producers write
//! interleaved to three partitions, most values acked, some refused (NOT_ENOUGH_REPLICAS, not
//! in the log) and some unknown (in the log or not), with a consumer that read a prefix of
//! each partition and a final read of every partition.

use std::collections::BTreeSet;

use millrace_replication::history::{
    check, refused_before_append, Category, FinalRead, History, HistoryError, Outcome, Produce,
    Read, Report, TopicPartition,
};

const SEEDS: u64 = 64;
const PARTITIONS: i32 = 3;
const PRODUCERS: u64 = 3;
const SENDS_PER_PARTITION: usize = 60;

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new("t", partition)
}

fn clean_history(seed: u64) -> History {
    let mut rng = Rng::new(seed);
    let mut h = History::default();
    for partition in 0..PARTITIONS {
        let mut log: Vec<String> = Vec::new();
        let mut seqs = [0u64; PRODUCERS as usize];
        for _ in 0..SENDS_PER_PARTITION {
            let producer = rng.below(PRODUCERS) as usize;
            let seq = seqs[producer];
            seqs[producer] += 1;
            let value = format!("p{producer}-{partition}-{seq}");
            let outcome = match rng.below(10) {
                0 => Outcome::Failed { error_code: 19 },
                1 => Outcome::Unknown {
                    error_code: Some(-192),
                },
                _ => Outcome::Acked {
                    offset: Some(log.len() as i64),
                },
            };
            let appended = match outcome {
                Outcome::Acked { .. } => true,
                Outcome::Failed { .. } => false,
                Outcome::Unknown { .. } => rng.below(2) == 0,
            };
            if appended {
                log.push(value.clone());
            }
            h.produces.push(Produce {
                tp: tp(partition),
                producer: format!("p{producer}"),
                seq,
                value,
                outcome,
            });
        }
        let read_up_to = rng.below(log.len() as u64 + 1) as usize;
        for (offset, value) in log.iter().enumerate().take(read_up_to) {
            h.reads.push(Read {
                tp: tp(partition),
                offset: offset as i64,
                value: value.clone(),
                reader: "c1".into(),
            });
        }
        h.final_reads.push(FinalRead {
            tp: tp(partition),
            log_start_offset: 0,
            high_watermark: log.len() as i64,
            records: log
                .into_iter()
                .enumerate()
                .map(|(o, v)| (o as i64, v))
                .collect(),
        });
    }
    h.notes.push(format!("generated from seed {seed}"));
    h
}

fn categories(report: &Report) -> BTreeSet<Category> {
    report.anomalies.iter().map(|a| a.category).collect()
}

/// The injected category is found, and every other category found is one the injection may
/// cause along with it.
fn assert_found(report: &Report, want: Category, also_allowed: &[Category], what: &str) {
    assert!(
        report.count(want) >= 1,
        "{what}: no {} anomaly\n{}",
        want.name(),
        report.summary(20)
    );
    for c in categories(report) {
        assert!(
            c == want || also_allowed.contains(&c),
            "{what}: unexpected {} anomaly\n{}",
            c.name(),
            report.summary(20)
        );
    }
    assert!(!report.is_clean(), "{what}: an error category yet clean");
}

fn final_read(h: &mut History, partition: i32) -> &mut FinalRead {
    h.final_reads
        .iter_mut()
        .find(|f| f.tp.partition == partition)
        .unwrap()
}

/// (index into produces, offset) of the acked produces of a partition.
fn acked(h: &History, partition: i32) -> Vec<(usize, i64)> {
    h.produces
        .iter()
        .enumerate()
        .filter(|(_, p)| p.tp.partition == partition)
        .filter_map(|(i, p)| match p.outcome {
            Outcome::Acked { offset: Some(o) } => Some((i, o)),
            _ => None,
        })
        .collect()
}

#[test]
fn generated_histories_are_clean() {
    for seed in 0..SEEDS {
        let h = clean_history(seed);
        let report = check(&h).unwrap();
        assert!(
            report.anomalies.is_empty(),
            "seed {seed}\n{}",
            report.summary(20)
        );
        assert!(report.is_clean());
        let s = &report.stats;
        assert_eq!(s.partitions, PARTITIONS as usize);
        assert_eq!(s.produced, PARTITIONS as usize * SENDS_PER_PARTITION);
        assert_eq!(s.acked + s.failed + s.unknown, s.produced);
        assert!(s.acked > s.produced / 2, "seed {seed}: {s:?}");
        assert_eq!(s.final_reads, PARTITIONS as usize);
        assert!(s.unknown_present <= s.unknown);
    }
}

#[test]
fn a_record_missing_from_the_final_read_is_lost() {
    for seed in 0..SEEDS {
        let mut h = clean_history(seed);
        let mut rng = Rng::new(seed + 1000);
        let partition = rng.below(PARTITIONS as u64) as i32;
        let (_, offset) = *rng.pick(&acked(&h, partition));
        final_read(&mut h, partition)
            .records
            .retain(|(o, _)| *o != offset);
        let report = check(&h).unwrap();
        // A consumer that read it has read a record the committed log no longer holds.
        assert_found(
            &report,
            Category::Lost,
            &[Category::ReadUncommitted],
            &format!("seed {seed}"),
        );
        assert_eq!(report.count(Category::Lost), 1);
    }
}

#[test]
fn a_truncated_tail_loses_acked_values_and_makes_earlier_reads_uncommitted() {
    for seed in 0..SEEDS {
        let mut h = clean_history(seed);
        let mut rng = Rng::new(seed + 2000);
        let partition = rng.below(PARTITIONS as u64) as i32;
        let (_, cut) = *rng.pick(&acked(&h, partition));
        let f = final_read(&mut h, partition);
        f.records.retain(|(o, _)| *o < cut);
        f.high_watermark = cut;
        let report = check(&h).unwrap();
        assert_found(
            &report,
            Category::Lost,
            &[Category::ReadUncommitted],
            &format!("seed {seed}"),
        );
        let read_above = h
            .reads
            .iter()
            .any(|r| r.tp.partition == partition && r.offset >= cut);
        assert_eq!(report.count(Category::ReadUncommitted) > 0, read_above);
    }
}

#[test]
fn an_acked_offset_holding_another_value_is_an_offset_mismatch() {
    for seed in 0..SEEDS {
        let mut h = clean_history(seed);
        let mut rng = Rng::new(seed + 3000);
        let partition = rng.below(PARTITIONS as u64) as i32;
        let (index, offset) = *rng.pick(&acked(&h, partition));
        let hw = final_read(&mut h, partition).high_watermark;
        let elsewhere = (offset + 1 + rng.below(hw as u64 - 1) as i64) % hw;
        assert_ne!(elsewhere, offset);
        h.produces[index].outcome = Outcome::Acked {
            offset: Some(elsewhere),
        };
        let report = check(&h).unwrap();
        assert_found(
            &report,
            Category::OffsetMismatch,
            &[],
            &format!("seed {seed}"),
        );
        assert_eq!(report.count(Category::OffsetMismatch), 1);
    }
}

#[test]
fn a_value_written_twice_is_duplicated() {
    for seed in 0..SEEDS {
        let mut h = clean_history(seed);
        let mut rng = Rng::new(seed + 4000);
        let partition = rng.below(PARTITIONS as u64) as i32;
        let f = final_read(&mut h, partition);
        let (_, value) = rng.pick(&f.records).clone();
        f.records.push((f.high_watermark, value));
        f.high_watermark += 1;
        let report = check(&h).unwrap();
        assert_found(&report, Category::Duplicated, &[], &format!("seed {seed}"));
    }
}

#[test]
fn two_values_of_one_producer_swapped_in_the_log_are_reordered() {
    let mut injected = 0;
    for seed in 0..SEEDS {
        let mut h = clean_history(seed);
        let mut rng = Rng::new(seed + 5000);
        let partition = rng.below(PARTITIONS as u64) as i32;
        let producer = format!("p{}", rng.below(PRODUCERS));
        // Two acked values of this producer, consecutive in its send order.
        let mine: Vec<(usize, i64)> = acked(&h, partition)
            .into_iter()
            .filter(|(i, _)| h.produces[*i].producer == producer)
            .collect();
        if mine.len() < 2 {
            continue;
        }
        let k = rng.below(mine.len() as u64 - 1) as usize;
        let ((i, a), (j, b)) = (mine[k], mine[k + 1]);
        // Swap them in the log and in the acknowledgements: only the order is wrong.
        let f = final_read(&mut h, partition);
        let ia = f.records.iter().position(|(o, _)| *o == a).unwrap();
        let ib = f.records.iter().position(|(o, _)| *o == b).unwrap();
        let (va, vb) = (f.records[ia].1.clone(), f.records[ib].1.clone());
        f.records[ia].1 = vb;
        f.records[ib].1 = va;
        h.produces[i].outcome = Outcome::Acked { offset: Some(b) };
        h.produces[j].outcome = Outcome::Acked { offset: Some(a) };
        h.reads
            .retain(|r| !(r.tp.partition == partition && (r.offset == a || r.offset == b)));
        let report = check(&h).unwrap();
        assert_found(&report, Category::Reordered, &[], &format!("seed {seed}"));
        injected += 1;
    }
    assert!(injected > SEEDS / 2, "only {injected} injections");
}

#[test]
fn a_read_the_final_read_contradicts_is_read_uncommitted() {
    for seed in 0..SEEDS {
        let mut h = clean_history(seed);
        let mut rng = Rng::new(seed + 6000);
        let partition = rng.below(PARTITIONS as u64) as i32;
        let f = final_read(&mut h, partition).clone();
        // A value the log holds elsewhere, read at an offset it does not hold it at: inside the
        // log or above the high watermark.
        let (offset, value) = rng.pick(&f.records).clone();
        let at = if rng.below(2) == 0 {
            f.high_watermark + rng.below(3) as i64
        } else {
            (offset + 1) % f.high_watermark
        };
        if at == offset {
            continue;
        }
        h.reads.push(Read {
            tp: tp(partition),
            offset: at,
            value,
            reader: "c2".into(),
        });
        let report = check(&h).unwrap();
        assert_found(
            &report,
            Category::ReadUncommitted,
            &[],
            &format!("seed {seed}"),
        );
        assert_eq!(report.count(Category::ReadUncommitted), 1);
    }
}

#[test]
fn a_value_refused_before_the_append_that_is_read_is_an_error() {
    for seed in 0..SEEDS {
        let mut h = clean_history(seed);
        let refused = h
            .produces
            .iter()
            .find(|p| matches!(p.outcome, Outcome::Failed { .. }))
            .cloned()
            .expect("every generated history has failed produces");
        let f = final_read(&mut h, refused.tp.partition);
        f.records.push((f.high_watermark, refused.value.clone()));
        f.high_watermark += 1;
        let report = check(&h).unwrap();
        // At the end of the log it may also come after values its producer sent later.
        let reordered = report.count(Category::Reordered);
        assert_found(
            &report,
            Category::RefusedButPresent,
            &[Category::Reordered],
            &format!("seed {seed}"),
        );

        // With an indeterminate code in the `failed` slot it is a warning only.
        let index = h
            .produces
            .iter()
            .position(|p| p.value == refused.value)
            .unwrap();
        h.produces[index].outcome = Outcome::Failed { error_code: 20 };
        let report = check(&h).unwrap();
        assert_eq!(report.count(Category::FailedButPresent), 1);
        assert_eq!(report.warnings(), 1);
        assert_eq!(report.errors(), reordered, "{}", report.summary(5));
        assert_eq!(report.is_clean(), reordered == 0);
    }
}

#[test]
fn pre_append_refusals_are_the_definite_codes() {
    assert!(refused_before_append(19), "NOT_ENOUGH_REPLICAS");
    assert!(refused_before_append(6), "NOT_LEADER_OR_FOLLOWER");
    for indeterminate in [0, 7, 20, 46, -1, -192] {
        assert!(!refused_before_append(indeterminate), "{indeterminate}");
    }
}

#[test]
fn a_value_nobody_sent_there_is_unexpected() {
    for seed in 0..SEEDS {
        let mut h = clean_history(seed);
        let mut rng = Rng::new(seed + 7000);
        let partition = rng.below(PARTITIONS as u64) as i32;
        let other = (partition + 1) % PARTITIONS;
        let foreign = final_read(&mut h, other).records[0].1.clone();
        let f = final_read(&mut h, partition);
        let ghost = if rng.below(2) == 0 {
            "ghost".to_string()
        } else {
            foreign
        };
        f.records.push((f.high_watermark, ghost));
        f.high_watermark += 1;
        let report = check(&h).unwrap();
        assert_found(
            &report,
            Category::UnexpectedValue,
            &[],
            &format!("seed {seed}"),
        );
    }
}

#[test]
fn unknown_outcomes_may_or_may_not_be_in_the_log() {
    let mut h = History::default();
    for (seq, value) in ["in", "out"].into_iter().enumerate() {
        h.produces.push(Produce {
            tp: tp(0),
            producer: "p".into(),
            seq: seq as u64,
            value: value.into(),
            outcome: Outcome::Unknown { error_code: None },
        });
    }
    h.final_reads.push(FinalRead {
        tp: tp(0),
        log_start_offset: 0,
        high_watermark: 1,
        records: vec![(0, "in".into())],
    });
    let report = check(&h).unwrap();
    assert!(report.anomalies.is_empty(), "{}", report.summary(5));
    assert_eq!(report.stats.unknown, 2);
    assert_eq!(report.stats.unknown_present, 1);
}

#[test]
fn acked_values_below_the_final_log_start_are_unverifiable_not_lost() {
    let mut h = History::default();
    for (seq, offset) in [(0u64, 0i64), (1, 1), (2, 2)] {
        h.produces.push(Produce {
            tp: tp(0),
            producer: "p".into(),
            seq,
            value: format!("v{seq}"),
            outcome: Outcome::Acked {
                offset: Some(offset),
            },
        });
    }
    // Retention removed offsets 0 and 1; a consumer had read offset 0 before.
    h.reads.push(Read {
        tp: tp(0),
        offset: 0,
        value: "v0".into(),
        reader: String::new(),
    });
    h.final_reads.push(FinalRead {
        tp: tp(0),
        log_start_offset: 2,
        high_watermark: 3,
        records: vec![(2, "v2".into())],
    });
    let report = check(&h).unwrap();
    assert!(report.anomalies.is_empty(), "{}", report.summary(5));
    assert_eq!(report.stats.acked_unverifiable, 1);

    // At or above the log start, absence is loss.
    h.final_reads[0].records.clear();
    let report = check(&h).unwrap();
    assert_eq!(categories(&report), [Category::Lost].into());
}

#[test]
fn without_a_final_read_the_consumer_reads_are_the_log() {
    let produce = |seq: u64, offset: Option<i64>| Produce {
        tp: tp(0),
        producer: "p".into(),
        seq,
        value: format!("v{seq}"),
        outcome: Outcome::Acked { offset },
    };
    let read = |offset: i64, value: &str, reader: &str| Read {
        tp: tp(0),
        offset,
        value: value.into(),
        reader: reader.into(),
    };
    let mut h = History::default();
    h.produces.push(produce(0, Some(0)));
    h.produces.push(produce(1, None));
    h.reads.push(read(0, "v0", "a"));
    h.reads.push(read(1, "v1", "a"));
    h.reads.push(read(1, "v1", "b"));
    let report = check(&h).unwrap();
    assert!(report.anomalies.is_empty(), "{}", report.summary(5));

    // Never read: lost.
    let mut never = h.clone();
    never.reads.retain(|r| r.value != "v1");
    assert_eq!(categories(&check(&never).unwrap()), [Category::Lost].into());

    // Read at two offsets: duplicated.
    let mut twice = h.clone();
    twice.reads.push(read(2, "v0", "b"));
    assert_eq!(
        categories(&check(&twice).unwrap()),
        [Category::Duplicated].into()
    );

    // Two readers disagree about one offset: one of them read something uncommitted.
    let mut disagree = h.clone();
    disagree.produces.push(produce(2, None));
    disagree.reads.push(read(2, "v2", "a"));
    disagree.reads.push(read(2, "v0", "b"));
    let report = check(&disagree).unwrap();
    assert_eq!(categories(&report), [Category::ReadUncommitted].into());
    assert!(
        report.anomalies[0].detail.contains("reader \"b\""),
        "{report:?}"
    );
}

#[test]
fn inconsistent_histories_are_refused() {
    let base = clean_history(1);
    let first = base.produces[0].clone();

    let mut h = base.clone();
    let mut again = first.clone();
    again.seq = 999;
    h.produces.push(again);
    assert!(matches!(
        check(&h),
        Err(HistoryError::DuplicateValue { .. })
    ));

    let mut h = base.clone();
    let mut same_seq = first.clone();
    same_seq.value = "fresh".into();
    h.produces.push(same_seq);
    assert!(matches!(
        check(&h),
        Err(HistoryError::DuplicateSequence { .. })
    ));

    let mut h = base.clone();
    h.final_reads.push(base.final_reads[0].clone());
    assert!(matches!(
        check(&h),
        Err(HistoryError::DuplicateFinalRead { .. })
    ));

    let mut h = base.clone();
    h.final_reads[0].records.swap(0, 1);
    assert!(matches!(check(&h), Err(HistoryError::BadOffset { .. })));

    let mut h = base.clone();
    h.final_reads[0].high_watermark -= 1;
    assert!(matches!(check(&h), Err(HistoryError::BadOffset { .. })));

    let mut h = base.clone();
    h.reads.push(Read {
        tp: tp(0),
        offset: -1,
        value: "x".into(),
        reader: String::new(),
    });
    assert!(matches!(check(&h), Err(HistoryError::BadOffset { .. })));
}

#[test]
fn jsonl_round_trips() {
    for seed in 0..8 {
        let mut h = clean_history(seed);
        h.notes
            .push("quotes \" and \\ and\nnewlines, \u{1} and ünïcödé 🦀".into());
        h.produces[0].value = "tab\there \u{7f}".into();
        h.produces[1].outcome = Outcome::Acked { offset: None };
        h.produces[2].outcome = Outcome::Unknown { error_code: None };
        let text = h.to_jsonl();
        assert_eq!(text.lines().count(), count_lines(&h));
        let back = History::from_jsonl(&text).unwrap();
        assert_eq!(back, h, "seed {seed}");
        assert_eq!(check(&back).unwrap(), check(&h).unwrap());
    }
}

fn count_lines(h: &History) -> usize {
    h.notes.len()
        + h.produces.len()
        + h.reads.len()
        + h.final_reads
            .iter()
            .map(|f| 1 + f.records.len())
            .sum::<usize>()
}

#[test]
fn jsonl_reads_what_pythons_json_module_writes() {
    // json.dumps defaults: ", " and ": " separators, ASCII only (\u escapes, surrogate pairs),
    // None as null; the final line after its records; blank lines.
    let text = r#"{"op": "note", "text": "caf\u00e9 \ud83e\udd80 \/"}

{"op": "produce", "topic": "t", "partition": 1, "producer": "p", "seq": 0, "value": "a", "outcome": "acked", "offset": 0}
{"op": "produce", "topic": "t", "partition": 1, "producer": "p", "seq": 1, "value": "b", "outcome": "unknown", "error": null}
{"op": "produce", "topic": "t", "partition": 1, "producer": "p", "seq": 2, "value": "c", "outcome": "failed", "error": 19}
{"op": "final_read", "topic": "t", "partition": 1, "offset": 0, "value": "a"}
{"op": "read", "topic": "t", "partition": 1, "offset": 0, "value": "a"}
{"op": "final", "topic": "t", "partition": 1, "log_start_offset": 0, "high_watermark": 1}
"#;
    let h = History::from_jsonl(text).unwrap();
    assert_eq!(h.notes, vec!["café 🦀 /".to_string()]);
    assert_eq!(h.produces.len(), 3);
    assert_eq!(h.produces[1].outcome, Outcome::Unknown { error_code: None });
    assert_eq!(h.produces[2].outcome, Outcome::Failed { error_code: 19 });
    assert_eq!(h.reads[0].reader, "");
    assert_eq!(h.final_reads[0].records, vec![(0, "a".to_string())]);
    let report = check(&h).unwrap();
    assert!(report.anomalies.is_empty(), "{}", report.summary(5));
}

#[test]
fn jsonl_errors_name_the_line_and_the_problem() {
    let good = r#"{"op":"read","topic":"t","partition":0,"offset":3,"value":"v"}"#;
    assert!(History::from_jsonl(good).is_ok());
    let cases = [
        (
            r#"{"op":"read","topic":"t","partition":0,"offset":3}"#,
            "missing key \"value\"",
        ),
        (
            r#"{"op":"read","topic":"t","partition":0,"offset":3,"value":"v","x":1}"#,
            "unknown key \"x\"",
        ),
        (
            r#"{"op":"read","topic":"t","partition":0,"offset":"3","value":"v"}"#,
            "must be an integer",
        ),
        (
            r#"{"op":"read","topic":"t","partition":0,"offset":3.0,"value":"v"}"#,
            "not an integer",
        ),
        (
            r#"{"op":"read","topic":"t","partition":0,"offset":1e3,"value":"v"}"#,
            "not an integer",
        ),
        (
            r#"{"op":"read","topic":"t","partition":0,"offset":03,"value":"v"}"#,
            "leading zero",
        ),
        (
            r#"{"op":"read","topic":"t","partition":0,"offset":true,"value":"v"}"#,
            "only strings, integers and null",
        ),
        (
            r#"{"op":"read","topic":"t","partition":0,"offset":[3],"value":"v"}"#,
            "only strings, integers and null",
        ),
        (
            r#"{"op":"read","topic":"t","partition":9999999999,"offset":3,"value":"v"}"#,
            "out of range",
        ),
        (
            r#"{"op":"read","topic":"t","topic":"u","partition":0,"offset":3,"value":"v"}"#,
            "duplicate key",
        ),
        (
            r#"{"op":"read","topic":"t","partition":0,"offset":3,"value":"v"} x"#,
            "trailing characters",
        ),
        (
            r#"{"op":"read","topic":"t","partition":0,"offset":3,"value":"v""#,
            "expected ','",
        ),
        (
            r#"{"op":"read","topic":"t","partition":0,"offset":3,"value":"v\q"}"#,
            "bad escape",
        ),
        (
            r#"{"op":"read","topic":"t","partition":0,"offset":3,"value":"\ud800"}"#,
            "unpaired surrogate",
        ),
        (r#"{"op":"write","topic":"t"}"#, "unknown op \"write\""),
        (
            r#"{"op":"produce","topic":"t","partition":0,"producer":"p","seq":0,"value":"v","outcome":"maybe"}"#,
            "is not acked, failed or unknown",
        ),
        (
            r#"{"op":"produce","topic":"t","partition":0,"producer":"p","seq":0,"value":"v","outcome":"failed"}"#,
            "missing key \"error\"",
        ),
        (
            r#"{"op":"produce","topic":"t","partition":0,"producer":"p","seq":0,"value":"v","outcome":"failed","error":19,"offset":3}"#,
            "unknown key \"offset\"",
        ),
        (
            r#"{"op":"produce","topic":"t","partition":0,"producer":"p","seq":-1,"value":"v","outcome":"acked"}"#,
            "out of range",
        ),
        ("[1, 2]", "expected '{'"),
    ];
    for (line, want) in cases {
        let text = format!("{good}\n\n{line}\n");
        match History::from_jsonl(&text) {
            Err(HistoryError::Syntax { line: 3, reason }) => {
                assert!(reason.contains(want), "{line}: {reason:?} lacks {want:?}")
            }
            other => panic!("{line}: {other:?}"),
        }
    }
    let orphan = r#"{"op":"final_read","topic":"t","partition":0,"offset":0,"value":"v"}"#;
    assert!(matches!(
        History::from_jsonl(orphan),
        Err(HistoryError::FinalRecordsWithoutRange { .. })
    ));
    let range =
        r#"{"op":"final","topic":"t","partition":0,"log_start_offset":0,"high_watermark":0}"#;
    assert!(matches!(
        History::from_jsonl(&format!("{range}\n{range}\n")),
        Err(HistoryError::DuplicateFinalRead { .. })
    ));
}

#[test]
fn the_summary_counts_every_category_and_shows_the_first_anomalies() {
    let mut h = clean_history(3);
    for f in &mut h.final_reads {
        f.records.clear();
    }
    h.reads.clear();
    let report = check(&h).unwrap();
    let lost = report.count(Category::Lost);
    assert_eq!(lost, report.stats.acked);
    let text = report.summary(2);
    assert!(text.contains(&format!("lost: {lost}\n")), "{text}");
    assert!(text.contains("failed_but_present (warning): 0\n"), "{text}");
    assert!(
        text.contains(&format!("anomalies: {lost} errors, 0 warnings")),
        "{text}"
    );
    assert!(
        text.contains(&format!("... and {} more", lost - 2)),
        "{text}"
    );
    for c in Category::ALL {
        assert!(text.contains(c.name()), "{text}");
    }
}
