//! The three workloads: setup on the main thread (metadata, topic, offsets, producer ids),
//! the run on the executors, then the summary and the JSON.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use millrace_security::client::ClientSecurity;

use crate::cli::{From, WorkloadArgs};
use crate::consumer::{ConsumerSpec, StopAt};
use crate::group::Group;
use crate::output::{self, BrokerInfo, Results, RunResult, Second, Throughput};
use crate::producer::ProducerSpec;
use crate::run::{self, Clock, Plan};
use crate::setup::{SyncClient, TopicRoute, EARLIEST, LATEST};
use crate::stats::{LatencySummary, Window};
use crate::BenchError;

/// Which workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Producers only.
    Produce,
    /// Consumers only.
    Consume,
    /// Both, with end-to-end latency.
    E2e,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Produce => "produce",
            Kind::Consume => "consume",
            Kind::E2e => "e2e",
        }
    }
}

const NS: u64 = 1_000_000_000;

/// Runs a workload end to end; errors if the run had errors.
pub fn run(kind: Kind, args: WorkloadArgs) -> Result<(), BenchError> {
    check_args(&args)?;
    let started_at_ms = millrace_shard::time::now_ms();
    let security = Arc::new(load_security(&args)?);
    let mut client = SyncClient::connect(&args.bootstrap_server, &security)?;
    if let Some(n) = args.partitions {
        if client.create_topic(&args.topic, n)? {
            eprintln!("created topic {} with {n} partitions", args.topic);
        }
    }
    let route = client.route(&args.topic)?;
    let partitions: Vec<i32> = route.leaders.keys().copied().collect();
    // Every leader serves the topic before the run starts: on a cluster, a leader learns of a
    // topic just created a moment after the metadata names it, and producers here do not retry.
    client.list_offsets(&args.topic, &partitions, LATEST)?;
    // Whole seconds, so the measured period is made of whole one-second windows.
    let warmup_s = match (kind, args.from) {
        (Kind::Consume, From::Beginning) => 0,
        _ => args.warmup.as_secs_f64().ceil() as u64,
    };
    let duration_s = (args.duration.as_secs_f64().ceil() as u64).max(1);
    let end_ns = (warmup_s + duration_s) * NS;
    let producers = match kind {
        Kind::Consume => Vec::new(),
        _ => producer_specs(&args, &mut client, &route, end_ns)?,
    };
    let group = match (&args.group, kind) {
        (Some(id), Kind::Consume | Kind::E2e) => {
            let members = args.consumers.min(partitions.len());
            let (group, assigned) = Group::join(
                &args.bootstrap_server,
                &security,
                id,
                &args.topic,
                partitions.len(),
                members,
            )?;
            eprintln!("joined group {id}: {members} members, assignment {assigned:?}");
            Some((group, assigned))
        }
        _ => None,
    };
    let assigned = group.as_ref().map(|(_, a)| a.clone());
    let consumers = match kind {
        Kind::Produce => Vec::new(),
        _ => consumer_specs(
            kind,
            &args,
            &mut client,
            &route,
            &partitions,
            assigned,
            end_ns,
        )?,
    };
    // The time base starts after the setup (topic, producer ids, group join).
    let clock = Clock::start();
    let plan = Plan {
        executors: args.executors,
        pin: !args.no_pin,
        producers,
        consumers,
        clock,
        measure_from_ns: warmup_s * NS,
        live: !args.quiet,
    };
    let outcome = run::execute(plan)?;
    let group_errors = group.map(|(g, _)| g.leave()).unwrap_or_default();
    let shared = &outcome.shared;
    let mut results = results(kind, &outcome.windows, warmup_s, duration_s);
    if kind == Kind::Consume && args.from == From::Beginning {
        // Catch-up: over the time until the last record arrived.
        let c = results.consume.clone().unwrap_or_default();
        let seconds = shared.consume_last_ns.load(Ordering::Relaxed) as f64 / 1e9;
        results.consume = Some(Throughput::of(c.records, c.bytes, seconds));
        results.measured_s = seconds;
    }
    results.acked_records_total = shared.acked_records.load(Ordering::Relaxed);
    results.consumed_records_total = shared.consumed_records.load(Ordering::Relaxed);
    results.produce_errors = shared.produce_errors.load(Ordering::Relaxed);
    results.errors = shared
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    results.errors.extend(group_errors);
    let result = RunResult {
        tool: "millrace-bench".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        workload: kind.name().into(),
        label: args
            .label
            .clone()
            .unwrap_or_else(|| format!("{} {}", args.broker_name, kind.name())),
        broker: BrokerInfo {
            name: args.broker_name.clone(),
            bootstrap_server: args.bootstrap_server.clone(),
        },
        parameters: parameters(&args, partitions.len()),
        git_revision: output::git_revision(),
        host: output::host_info(),
        started_at_ms,
        results,
    };
    print!("{}", output::summary(&result));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&result).expect("plain data serialises");
        std::fs::write(path, text + "\n")
            .map_err(|e| BenchError::Io(format!("writing {}: {e}", path.display())))?;
    }
    if !result.results.errors.is_empty() || result.results.produce_errors > 0 {
        return Err(BenchError::Io("the run had errors (see above)".into()));
    }
    Ok(())
}

/// The `--command-config` file's TLS configuration and SASL login (none without it); its
/// warnings go to stderr.
fn load_security(args: &WorkloadArgs) -> Result<ClientSecurity, BenchError> {
    let Some(path) = &args.command_config else {
        return Ok(ClientSecurity::default());
    };
    let (security, warnings) = millrace_security::client::load(path)
        .map_err(|e| BenchError::Usage(format!("--command-config {}: {e}", path.display())))?;
    for warning in warnings {
        eprintln!(
            "millrace-bench: warning: --command-config {}: {warning}",
            path.display()
        );
    }
    Ok(security)
}

fn check_args(args: &WorkloadArgs) -> Result<(), BenchError> {
    let usage = |m: &str| Err(BenchError::Usage(m.to_string()));
    if args.record_size < crate::batch::STAMP_BYTES || args.record_size > 64 << 20 {
        return usage("--record-size must be 8..=67108864 (the first 8 bytes carry the send time)");
    }
    if millrace_wire::Compression::from_name(&args.compression).is_none() {
        return usage("--compression-type must be none, gzip, snappy, lz4 or zstd");
    }
    if args.producers == 0 || args.consumers == 0 || args.executors == 0 {
        return usage("--producers, --consumers and --executors must be at least 1");
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        return usage("--rate must be 0 (unlimited) or a positive number of records/s");
    }
    if args.batch_size == 0 || args.batch_size > 64 << 20 || args.max_in_flight == 0 {
        return usage("--batch-size must be 1..=67108864 and --max-in-flight at least 1");
    }
    if args.partitions.is_some_and(|n| n <= 0) {
        return usage("--partitions must be at least 1");
    }
    Ok(())
}

fn producer_specs(
    args: &WorkloadArgs,
    client: &mut SyncClient,
    route: &TopicRoute,
    end_ns: u64,
) -> Result<Vec<ProducerSpec>, BenchError> {
    use kafka_protocol::messages::ApiKey;
    let produce_version = client.version(ApiKey::Produce, 3..=9)?;
    let leaders = route
        .leaders
        .keys()
        .map(|&p| route.leader_address(p))
        .collect::<Result<Vec<_>, _>>()?;
    let idempotent = args
        .idempotence
        .unwrap_or(args.acks == crate::cli::Acks::All);
    if idempotent && args.acks != crate::cli::Acks::All {
        return Err(BenchError::Usage(
            "--idempotence true needs --acks all (as in Kafka)".into(),
        ));
    }
    let compression =
        millrace_wire::Compression::from_name(&args.compression).expect("checked in check_args");
    let rate = (args.rate > 0.0).then(|| args.rate / args.producers as f64);
    (0..args.producers)
        .map(|index| {
            Ok(ProducerSpec {
                index,
                topic: args.topic.clone(),
                leaders: leaders.clone(),
                record_size: args.record_size,
                keys: args.keys.clone(),
                rate,
                acks: args.acks.wire(),
                compression,
                batch_size: args.batch_size,
                linger_ns: args.linger_ms * 1_000_000,
                max_in_flight: args.max_in_flight,
                produce_version,
                idempotent: if idempotent {
                    Some(client.init_producer_id()?)
                } else {
                    None
                },
                seed: args.seed,
                end_ns,
                security: client.security().clone(),
            })
        })
        .collect()
}

fn consumer_specs(
    kind: Kind,
    args: &WorkloadArgs,
    client: &mut SyncClient,
    route: &TopicRoute,
    partitions: &[i32],
    group: Option<Vec<Vec<i32>>>,
    end_ns: u64,
) -> Result<Vec<ConsumerSpec>, BenchError> {
    use kafka_protocol::messages::ApiKey;
    let fetch_version = client.version(ApiKey::Fetch, 4..=12)?;
    let assigned: Vec<i32> = if args.assign.is_empty() {
        partitions.to_vec()
    } else {
        for p in &args.assign {
            if !partitions.contains(p) {
                return Err(BenchError::Usage(format!(
                    "--assign {p}: topic {} has partitions 0..{}",
                    args.topic,
                    partitions.len()
                )));
            }
        }
        args.assign.clone()
    };
    let catch_up = kind == Kind::Consume && args.from == From::Beginning;
    let start = client.list_offsets(
        &args.topic,
        &assigned,
        if catch_up { EARLIEST } else { LATEST },
    )?;
    let end = if catch_up {
        client.list_offsets(&args.topic, &assigned, LATEST)?
    } else {
        Default::default()
    };
    let stop = match kind {
        Kind::E2e => StopAt::ProducersDrained,
        _ if catch_up => StopAt::EndOffsets,
        _ => StopAt::Deadline,
    };
    let consumers = args.consumers.min(assigned.len()).max(1);
    // Each consumer's partitions: the group's assignment, or dealt out in turn.
    let shares: Vec<Vec<i32>> = group.unwrap_or_else(|| {
        (0..consumers)
            .map(|c| {
                assigned
                    .iter()
                    .skip(c)
                    .step_by(consumers)
                    .copied()
                    .collect()
            })
            .collect()
    });
    let mut specs = Vec::new();
    for (index, share) in shares.iter().enumerate() {
        let mine = share
            .iter()
            .map(|&p| {
                Ok((
                    p,
                    route.leader_address(p)?,
                    start.get(&p).copied().unwrap_or(0),
                    end.get(&p).copied().unwrap_or(i64::MAX),
                ))
            })
            .collect::<Result<Vec<_>, BenchError>>()?;
        specs.push(ConsumerSpec {
            // Consumers start after the producers in the executor deal-out.
            index: args.producers * usize::from(kind == Kind::E2e) + index,
            topic: args.topic.clone(),
            partitions: mine,
            security: client.security().clone(),
            fetch_version,
            max_wait_ms: args.fetch_max_wait_ms,
            fetch_max_bytes: args.fetch_max_bytes,
            partition_max_bytes: args.partition_max_bytes,
            check_crcs: args.check_crcs,
            stop,
            end_ns: if catch_up {
                // The limit for catch-up: the whole duration plus the drain timeout.
                end_ns + args.drain_timeout.as_nanos() as u64
            } else {
                end_ns
            },
            drain_ns: args.drain_timeout.as_nanos() as u64,
            e2e: kind == Kind::E2e,
        });
    }
    Ok(specs)
}

/// Totals over the measured windows; latency over every window after the warm-up (the drain
/// included, so late records are not left out).
pub fn results(kind: Kind, windows: &[Window], warmup_s: u64, duration_s: u64) -> Results {
    let end_s = warmup_s + duration_s;
    let mut measured = Window::new(0);
    let mut after_warmup = Window::new(0);
    for w in windows {
        if w.second >= warmup_s && w.second < end_s {
            measured.merge(w);
        }
        if w.second >= warmup_s {
            after_warmup.merge(w);
        }
    }
    let seconds = duration_s as f64;
    let produces = kind != Kind::Consume;
    let consumes = kind != Kind::Produce;
    Results {
        warmup_s: warmup_s as f64,
        measured_s: seconds,
        produce: produces
            .then(|| Throughput::of(measured.acked_records, measured.acked_bytes, seconds)),
        consume: consumes
            .then(|| Throughput::of(measured.consumed_records, measured.consumed_bytes, seconds)),
        produce_latency_us: produces.then(|| LatencySummary::of(&after_warmup.produce_latency)),
        e2e_latency_us: (kind == Kind::E2e).then(|| LatencySummary::of(&after_warmup.e2e_latency)),
        timeline: windows.iter().map(|w| Second::of(w, warmup_s)).collect(),
        ..Results::default()
    }
}

fn parameters(args: &WorkloadArgs, partitions: usize) -> serde_json::Value {
    serde_json::json!({
        "bootstrap_server": args.bootstrap_server,
        "topic": args.topic,
        "partitions": partitions,
        "record_size": args.record_size,
        "keys": format!("{:?}", args.keys),
        "producers": args.producers,
        "consumers": args.consumers,
        "assign": args.assign,
        "group": args.group,
        "rate": args.rate,
        "acks": args.acks.name(),
        "compression_type": args.compression,
        "batch_size": args.batch_size,
        "linger_ms": args.linger_ms,
        "max_in_flight": args.max_in_flight,
        "idempotence": args.idempotence.unwrap_or(args.acks == crate::cli::Acks::All),
        "from": format!("{:?}", args.from).to_lowercase(),
        "warmup_s": args.warmup.as_secs_f64(),
        "duration_s": args.duration.as_secs_f64(),
        "drain_timeout_s": args.drain_timeout.as_secs_f64(),
        "seed": args.seed,
        "executors": args.executors,
        "pin": !args.no_pin,
        "fetch_max_wait_ms": args.fetch_max_wait_ms,
        "fetch_max_bytes": args.fetch_max_bytes,
        "max_partition_fetch_bytes": args.partition_max_bytes,
        "check_crcs": args.check_crcs,
    })
}
