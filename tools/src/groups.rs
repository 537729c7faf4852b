//! `groups list | describe | reset-offsets | delete`: consumer groups as an administrator sees
//! them, the view of Kafka's `kafka-consumer-groups.sh`. (`group.rs` is the other side: this
//! process as a member of a group.)
//!
//! ```text
//! list           Metadata -> every broker; ListGroups to each (a broker lists only the groups
//!                it coordinates); union, sorted by group id
//! describe G     FindCoordinator(G) -> DescribeGroups(G), OffsetFetch(G, all topics);
//!                per topic: Metadata, ListOffsets(latest) at each partition's leader;
//!                a KIP-848 group (DescribeGroups: GROUP_ID_NOT_FOUND) -> ConsumerGroupDescribe
//! reset-offsets  DescribeGroups: refuse unless Empty or Dead; ListOffsets earliest/latest
//!                (and at --to-datetime); plan; with --execute OffsetCommit(generation -1,
//!                member "") as a simple consumer would
//! delete G       DeleteGroups(G) at the coordinator
//! ```
//!
//! Decisions:
//!
//! * Lag is `log end offset - committed offset`, with the log end offset from ListOffsets
//!   (latest), as Kafka's tool computes it; a partition with nothing committed has no lag ("-").
//! * New offsets from `--to-offset` and `--shift-by` are clamped into
//!   `[log start offset, log end offset]`, as Kafka's tool does; `--shift-by` needs a committed
//!   offset to shift from. `--to-datetime` takes epoch milliseconds; a time after the last
//!   record resets to the log end offset.
//! * reset-offsets refuses a group that has members, dry run included: Kafka only lets an
//!   inactive group's offsets be reset, and a plan the tool cannot execute is no plan.
//! * Assignments are decoded only for protocol type "consumer"; other protocols (Connect)
//!   carry their own formats and are shown as "-".
//! * A consumer-protocol (KIP-848) group is described with ConsumerGroupDescribe when
//!   DescribeGroups answers GROUP_ID_NOT_FOUND, as Kafka's AdminClient does the other way
//!   round; its "protocol" column shows the server assignor and each member's assignment is its
//!   current one.

use std::collections::{BTreeMap, BTreeSet};

use clap::{ArgGroup, Args, Subcommand};
use kafka_protocol::messages::{
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::{metadata, topic_name, Output, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::client::Client;
use crate::error::{check, ToolError};
use crate::group::{decode_assignment, find_coordinator};
use crate::output::{out, outln, Json, Table};
use crate::route::Route;
use crate::Connection;
use millrace_wire::codes::{GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, UNKNOWN_TOPIC_OR_PARTITION};

const LIST_GROUPS_VERSIONS: std::ops::RangeInclusive<i16> = 0..=4;
const DESCRIBE_GROUPS_VERSIONS: std::ops::RangeInclusive<i16> = 0..=5;
const DELETE_GROUPS_VERSIONS: std::ops::RangeInclusive<i16> = 0..=2;
/// v2+ accepts "all topics" (null); v8 changes the layout to several groups, not needed here.
const OFFSET_FETCH_VERSIONS: std::ops::RangeInclusive<i16> = 2..=7;
const OFFSET_COMMIT_VERSIONS: std::ops::RangeInclusive<i16> = 2..=8;
const CONSUMER_GROUP_DESCRIBE_VERSIONS: std::ops::RangeInclusive<i16> = 0..=1;
const CONSUMER_PROTOCOL: &str = "consumer";
/// DescribeGroups states in which no member holds partitions.
const INACTIVE_STATES: [&str; 2] = ["Empty", "Dead"];

/// `groups ...`
#[derive(Subcommand)]
pub enum GroupsCommand {
    /// List consumer groups: id, protocol type, state.
    List {
        #[command(flatten)]
        out: Output,
        #[command(flatten)]
        conn: Connection,
    },
    /// A group's state, members, assignments, committed offsets and lag.
    Describe {
        /// Group id.
        group: String,
        #[command(flatten)]
        out: Output,
        #[command(flatten)]
        conn: Connection,
    },
    /// Plan (default) or, with --execute, commit new offsets for an inactive group.
    ResetOffsets(ResetArgs),
    /// Delete a group that has no members, with its committed offsets.
    Delete {
        /// Group id.
        group: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `groups reset-offsets GROUP --topic T [--partition N] <target> [--execute]`
#[derive(Args)]
#[command(group(ArgGroup::new("target").required(true).multiple(false).args(
    ["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"]
)))]
pub struct ResetArgs {
    /// Group id.
    group: String,
    /// Topic whose offsets to reset.
    #[arg(long)]
    topic: String,
    /// Only this partition (repeatable); default: every partition of the topic.
    #[arg(long)]
    partition: Vec<i32>,
    /// To the log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset.
    #[arg(long)]
    to_latest: bool,
    /// To this offset (clamped to the log's range).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// To the first offset with a timestamp at or after this time (epoch milliseconds).
    #[arg(long, value_name = "MS")]
    to_datetime: Option<i64>,
    /// Move the committed offset by N (negative: back), clamped to the log's range.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Commit the plan; without this flag only print it.
    #[arg(long)]
    execute: bool,
    #[command(flatten)]
    out: Output,
    #[command(flatten)]
    conn: Connection,
}

/// Runs a `groups` subcommand.
pub fn run(cmd: GroupsCommand) -> Result<(), ToolError> {
    match cmd {
        GroupsCommand::List { out, conn } => {
            let mut client = conn.connect()?;
            list_groups(&mut client, out.json)
        }
        GroupsCommand::Describe { group, out, conn } => {
            let mut client = conn.connect()?;
            describe_group(&mut client, &group, out.json)
        }
        GroupsCommand::ResetOffsets(args) => reset_offsets(&args),
        GroupsCommand::Delete { group, conn } => {
            let mut client = conn.connect()?;
            delete_group(&mut client, &group)?;
            outln!("Deleted group {group}.");
            Ok(())
        }
    }
}

/// Where `reset-offsets` moves a partition's committed offset.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    /// The offset ListOffsets found for the time (-1: none at or after it).
    Datetime(i64),
    ShiftBy(i64),
}

/// One partition's log range and committed offset, the inputs of a reset.
#[derive(Clone, Copy, Debug)]
struct PartitionState {
    log_start_offset: i64,
    log_end_offset: i64,
    committed: Option<i64>,
}

/// The new committed offset for one partition.
fn new_offset(to: ResetTo, p: PartitionState) -> Result<i64, String> {
    let clamp = |o: i64| o.clamp(p.log_start_offset, p.log_end_offset);
    Ok(match to {
        ResetTo::Earliest => p.log_start_offset,
        ResetTo::Latest => p.log_end_offset,
        ResetTo::Offset(o) => clamp(o),
        ResetTo::Datetime(o) if o < 0 => p.log_end_offset,
        ResetTo::Datetime(o) => clamp(o),
        ResetTo::ShiftBy(n) => match p.committed {
            Some(c) => clamp(c.saturating_add(n)),
            None => return Err("no committed offset to shift from".into()),
        },
    })
}

/// One group as DescribeGroups and OffsetFetch see it.
struct GroupView {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<MemberView>,
    /// (topic, partition) -> committed offset.
    committed: BTreeMap<(String, i32), i64>,
}

struct MemberView {
    member_id: String,
    instance_id: Option<String>,
    client_id: String,
    host: String,
    /// None when the protocol is not the consumer protocol or the blob does not decode.
    assignment: Option<Vec<(String, Vec<i32>)>>,
}

/// One row of `describe`'s offsets table.
struct OffsetRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end_offset: Option<i64>,
    owner: Option<String>,
}

impl OffsetRow {
    fn lag(&self) -> Option<i64> {
        Some(self.log_end_offset? - self.committed?)
    }
}

fn list_groups(client: &mut Client, json: bool) -> Result<(), ToolError> {
    let brokers: Vec<String> = metadata(client, Some(&[]), false)?
        .brokers
        .iter()
        .map(|b| format!("{}:{}", b.host.as_str(), b.port))
        .collect();
    // (group id) -> (protocol type, state); a group is listed by its one coordinator.
    let mut groups: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    for address in brokers {
        let mut broker = client.connect_to(&address)?;
        let response = broker.call(&ListGroupsRequest::default(), LIST_GROUPS_VERSIONS)?;
        check(
            response.error_code,
            || format!("list groups at {address}"),
            None,
        )?;
        let has_state = broker.version(
            kafka_protocol::messages::ApiKey::ListGroups,
            LIST_GROUPS_VERSIONS,
        )? >= 4;
        for g in response.groups {
            let state = has_state.then(|| g.group_state.to_string());
            groups.insert(g.group_id.to_string(), (g.protocol_type.to_string(), state));
        }
    }
    if json {
        let items = groups
            .iter()
            .map(|(id, (protocol_type, state))| {
                Json::object(vec![
                    ("group", Json::Str(id.clone())),
                    ("protocol_type", Json::Str(protocol_type.clone())),
                    ("state", Json::opt_str(state.as_deref())),
                ])
            })
            .collect();
        outln!("{}", Json::Array(items).render());
        return Ok(());
    }
    let mut table = Table::new(&["GROUP", "PROTOCOL-TYPE", "STATE"]);
    for (id, (protocol_type, state)) in groups {
        let protocol_type = if protocol_type.is_empty() {
            "-".to_string()
        } else {
            protocol_type
        };
        table.row(vec![id, protocol_type, state.unwrap_or_else(|| "-".into())]);
    }
    out!("{}", table.render());
    Ok(())
}

fn describe_group(bootstrap: &mut Client, group: &str, json: bool) -> Result<(), ToolError> {
    let mut coordinator = find_coordinator(bootstrap, group)?;
    let view = group_view(&mut coordinator, group)?;
    if view.state == "Dead" {
        return Err(ToolError::Usage(format!(
            "group {group} does not exist (state Dead)"
        )));
    }
    let rows = offset_rows(bootstrap, &view)?;
    if json {
        outln!("{}", describe_json(group, &view, &rows).render());
        return Ok(());
    }
    outln!(
        "Group: {group}  State: {}  ProtocolType: {}  Protocol: {}  Members: {}",
        dash(&view.state),
        dash(&view.protocol_type),
        dash(&view.protocol),
        view.members.len()
    );
    if !view.members.is_empty() {
        outln!();
        let mut table = Table::new(&[
            "MEMBER-ID",
            "INSTANCE-ID",
            "CLIENT-ID",
            "HOST",
            "ASSIGNMENT",
        ]);
        for m in &view.members {
            table.row(vec![
                m.member_id.clone(),
                m.instance_id.clone().unwrap_or_else(|| "-".into()),
                dash(&m.client_id),
                dash(&m.host),
                m.assignment
                    .as_ref()
                    .map_or("-".to_string(), |a| assignment_text(a)),
            ]);
        }
        out!("{}", table.render());
    }
    outln!();
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "MEMBER-ID",
    ]);
    let text = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    for r in &rows {
        table.row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            text(r.committed),
            text(r.log_end_offset),
            text(r.lag()),
            r.owner.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    out!("{}", table.render());
    Ok(())
}

fn describe_json(group: &str, view: &GroupView, rows: &[OffsetRow]) -> Json {
    let int = |v: Option<i64>| v.map_or(Json::Null, Json::Int);
    let members = view.members.iter().map(|m| {
        let assignment = m.assignment.as_ref().map_or(Json::Null, |a| {
            Json::Array(
                a.iter()
                    .map(|(topic, partitions)| {
                        let ps = partitions.iter().map(|&p| Json::Int(i64::from(p)));
                        Json::object(vec![
                            ("topic", Json::Str(topic.clone())),
                            ("partitions", Json::Array(ps.collect())),
                        ])
                    })
                    .collect(),
            )
        });
        Json::object(vec![
            ("member_id", Json::Str(m.member_id.clone())),
            ("instance_id", Json::opt_str(m.instance_id.as_deref())),
            ("client_id", Json::Str(m.client_id.clone())),
            ("host", Json::Str(m.host.clone())),
            ("assignment", assignment),
        ])
    });
    let offsets = rows.iter().map(|r| {
        Json::object(vec![
            ("topic", Json::Str(r.topic.clone())),
            ("partition", Json::Int(i64::from(r.partition))),
            ("committed_offset", int(r.committed)),
            ("log_end_offset", int(r.log_end_offset)),
            ("lag", int(r.lag())),
            ("member_id", Json::opt_str(r.owner.as_deref())),
        ])
    });
    Json::object(vec![
        ("group", Json::Str(group.to_string())),
        ("state", Json::Str(view.state.clone())),
        ("protocol_type", Json::Str(view.protocol_type.clone())),
        ("protocol", Json::Str(view.protocol.clone())),
        ("members", Json::Array(members.collect())),
        ("offsets", Json::Array(offsets.collect())),
    ])
}

/// DescribeGroups and OffsetFetch (all topics) for `group` at its coordinator.
fn group_view(coordinator: &mut Client, group: &str) -> Result<GroupView, ToolError> {
    let mut request = DescribeGroupsRequest::default();
    request.groups = vec![group_id(group)];
    let response: DescribeGroupsResponse = coordinator.call(&request, DESCRIBE_GROUPS_VERSIONS)?;
    let described = response
        .groups
        .into_iter()
        .find(|g| g.group_id.as_str() == group)
        .ok_or_else(|| ToolError::Protocol(format!("DescribeGroups omits group {group}")))?;
    let kip848 = coordinator.supports(kafka_protocol::messages::ApiKey::ConsumerGroupDescribe);
    if described.error_code == GROUP_ID_NOT_FOUND && kip848 {
        return consumer_group_view(coordinator, group);
    }
    check(
        described.error_code,
        || format!("describe group {group}"),
        described.error_message.as_ref().map(|m| m.as_str()),
    )?;
    let consumer = described.protocol_type.as_str() == CONSUMER_PROTOCOL;
    let members = described
        .members
        .iter()
        .map(|m| MemberView {
            member_id: m.member_id.to_string(),
            instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignment: consumer
                .then(|| decode_assignment(&m.member_assignment).ok())
                .flatten(),
        })
        .collect();
    Ok(GroupView {
        state: described.group_state.to_string(),
        protocol_type: described.protocol_type.to_string(),
        protocol: described.protocol_data.to_string(),
        members,
        committed: committed_offsets(coordinator, group)?,
    })
}

/// A KIP-848 group through ConsumerGroupDescribe, and its offsets.
fn consumer_group_view(coordinator: &mut Client, group: &str) -> Result<GroupView, ToolError> {
    let mut request = ConsumerGroupDescribeRequest::default();
    request.group_ids = vec![group_id(group)];
    let response = coordinator.call(&request, CONSUMER_GROUP_DESCRIBE_VERSIONS)?;
    let described = response
        .groups
        .into_iter()
        .find(|g| g.group_id.as_str() == group)
        .ok_or_else(|| ToolError::Protocol(format!("ConsumerGroupDescribe omits group {group}")))?;
    check(
        described.error_code,
        || format!("describe consumer group {group}"),
        described.error_message.as_ref().map(|m| m.as_str()),
    )?;
    let members = described
        .members
        .iter()
        .map(|m| MemberView {
            member_id: m.member_id.to_string(),
            instance_id: m.instance_id.as_ref().map(|s| s.to_string()),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignment: Some(
                m.assignment
                    .topic_partitions
                    .iter()
                    .map(|t| (t.topic_name.to_string(), t.partitions.clone()))
                    .collect(),
            ),
        })
        .collect();
    Ok(GroupView {
        state: described.group_state.to_string(),
        protocol_type: CONSUMER_PROTOCOL.to_string(),
        protocol: described.assignor_name.to_string(),
        members,
        committed: committed_offsets(coordinator, group)?,
    })
}

/// Every offset `group` has committed: (topic, partition) -> offset.
fn committed_offsets(
    coordinator: &mut Client,
    group: &str,
) -> Result<BTreeMap<(String, i32), i64>, ToolError> {
    let mut request = OffsetFetchRequest::default();
    request.group_id = group_id(group);
    request.topics = None;
    let response = coordinator.call(&request, OFFSET_FETCH_VERSIONS)?;
    let context = || format!("fetch offsets of group {group}");
    check(response.error_code, context, None)?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            check(p.error_code, context, None)?;
            if p.committed_offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// The committed and assigned partitions, with log end offsets from each partition's leader.
fn offset_rows(bootstrap: &mut Client, view: &GroupView) -> Result<Vec<OffsetRow>, ToolError> {
    let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &view.members {
        for (topic, partitions) in m.assignment.iter().flatten() {
            for &p in partitions {
                owners.insert((topic.clone(), p), m.member_id.clone());
            }
        }
    }
    let keys: BTreeSet<(String, i32)> = view
        .committed
        .keys()
        .chain(owners.keys())
        .cloned()
        .collect();
    let topics: BTreeSet<&String> = keys.iter().map(|(t, _)| t).collect();
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for topic in topics {
        let partitions: Vec<i32> = keys
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| *p)
            .collect();
        for (p, end) in log_end_offsets(bootstrap, topic, &partitions)? {
            ends.insert((topic.clone(), p), end);
        }
    }
    Ok(keys
        .into_iter()
        .map(|key| OffsetRow {
            committed: view.committed.get(&key).copied(),
            log_end_offset: ends.get(&key).copied(),
            owner: owners.get(&key).cloned(),
            topic: key.0,
            partition: key.1,
        })
        .collect())
}

/// Log end offsets of those of `partitions` the topic still has; none for a deleted topic.
fn log_end_offsets(
    bootstrap: &mut Client,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i64)>, ToolError> {
    let mut route = match Route::load(bootstrap, topic, false) {
        Ok((route, _)) => route,
        Err(ToolError::Kafka {
            code: UNKNOWN_TOPIC_OR_PARTITION,
            ..
        }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let existing: BTreeSet<i32> = route.partitions().into_iter().collect();
    let wanted: Vec<i32> = partitions
        .iter()
        .copied()
        .filter(|p| existing.contains(p))
        .collect();
    route.list_offsets(&wanted, LATEST_TIMESTAMP)
}

fn reset_offsets(args: &ResetArgs) -> Result<(), ToolError> {
    let mut bootstrap = args.conn.connect()?;
    let group = args.group.as_str();
    let mut coordinator = find_coordinator(&mut bootstrap, group)?;
    let view = group_view(&mut coordinator, group)?;
    if !INACTIVE_STATES.contains(&view.state.as_str()) {
        return Err(ToolError::Usage(format!(
            "group {group} is not inactive (state {}, members: {}): offsets can only be reset \
             when the group has no members",
            view.state,
            view.members.len()
        )));
    }
    let (mut route, _) = Route::load(&mut bootstrap, &args.topic, false)?;
    let partitions = chosen_partitions(&route.partitions(), &args.partition, &args.topic)?;
    let starts: BTreeMap<i32, i64> = route
        .list_offsets(&partitions, EARLIEST_TIMESTAMP)?
        .into_iter()
        .collect();
    let ends: BTreeMap<i32, i64> = route
        .list_offsets(&partitions, LATEST_TIMESTAMP)?
        .into_iter()
        .collect();
    let at_time: BTreeMap<i32, i64> = match args.to_datetime {
        Some(ms) => route.list_offsets(&partitions, ms)?.into_iter().collect(),
        None => BTreeMap::new(),
    };
    let mut plan = Vec::with_capacity(partitions.len());
    for &p in &partitions {
        let state = PartitionState {
            log_start_offset: starts.get(&p).copied().unwrap_or(0),
            log_end_offset: ends.get(&p).copied().unwrap_or(0),
            committed: view.committed.get(&(args.topic.clone(), p)).copied(),
        };
        let to = reset_target(args, at_time.get(&p).copied().unwrap_or(-1));
        let offset = new_offset(to, state)
            .map_err(|why| ToolError::Usage(format!("{}-{p}: {why}", args.topic)))?;
        plan.push((p, state.committed, offset));
    }
    if args.execute {
        commit_offsets(&mut coordinator, group, &args.topic, &plan)?;
    }
    print_plan(group, &args.topic, &plan, args.out.json);
    if !args.execute {
        eprintln!("Dry run: nothing committed; add --execute to commit these offsets.");
    }
    Ok(())
}

fn reset_target(args: &ResetArgs, offset_at_time: i64) -> ResetTo {
    if args.to_earliest {
        ResetTo::Earliest
    } else if args.to_latest {
        ResetTo::Latest
    } else if let Some(o) = args.to_offset {
        ResetTo::Offset(o)
    } else if args.to_datetime.is_some() {
        ResetTo::Datetime(offset_at_time)
    } else if let Some(n) = args.shift_by {
        ResetTo::ShiftBy(n)
    } else {
        unreachable!("clap requires one reset target")
    }
}

/// `--partition` values checked against the topic, or every partition.
fn chosen_partitions(all: &[i32], chosen: &[i32], topic: &str) -> Result<Vec<i32>, ToolError> {
    if chosen.is_empty() {
        return Ok(all.to_vec());
    }
    let mut out: Vec<i32> = chosen.to_vec();
    out.sort_unstable();
    out.dedup();
    match out.iter().find(|p| !all.contains(p)) {
        Some(p) => Err(ToolError::Usage(format!(
            "topic {topic} has no partition {p} (it has {})",
            all.len()
        ))),
        None => Ok(out),
    }
}

fn commit_offsets(
    coordinator: &mut Client,
    group: &str,
    topic: &str,
    plan: &[(i32, Option<i64>, i64)],
) -> Result<(), ToolError> {
    let mut t = OffsetCommitRequestTopic::default();
    t.name = topic_name(topic);
    t.partitions = plan
        .iter()
        .map(|&(p, _, offset)| {
            let mut cp = OffsetCommitRequestPartition::default();
            cp.partition_index = p;
            cp.committed_offset = offset;
            cp.committed_leader_epoch = -1;
            cp
        })
        .collect();
    let mut request = OffsetCommitRequest::default();
    request.group_id = group_id(group);
    // Generation -1 and no member: a commit from outside the group's membership.
    request.generation_id_or_member_epoch = -1;
    request.member_id = StrBytes::from_static_str("");
    request.retention_time_ms = -1;
    request.topics = vec![t];
    let response = coordinator.call(&request, OFFSET_COMMIT_VERSIONS)?;
    for t in &response.topics {
        for p in &t.partitions {
            check(
                p.error_code,
                || {
                    format!(
                        "commit offsets of group {group} for {topic}-{}",
                        p.partition_index
                    )
                },
                None,
            )?;
        }
    }
    Ok(())
}

fn print_plan(group: &str, topic: &str, plan: &[(i32, Option<i64>, i64)], json: bool) {
    if json {
        let items = plan.iter().map(|&(p, current, new)| {
            Json::object(vec![
                ("group", Json::Str(group.to_string())),
                ("topic", Json::Str(topic.to_string())),
                ("partition", Json::Int(i64::from(p))),
                ("current_offset", current.map_or(Json::Null, Json::Int)),
                ("new_offset", Json::Int(new)),
            ])
        });
        outln!("{}", Json::Array(items.collect()).render());
        return;
    }
    let mut table = Table::new(&[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "NEW-OFFSET",
    ]);
    for &(p, current, new) in plan {
        table.row(vec![
            group.to_string(),
            topic.to_string(),
            p.to_string(),
            current.map_or("-".to_string(), |c| c.to_string()),
            new.to_string(),
        ]);
    }
    out!("{}", table.render());
}

fn delete_group(bootstrap: &mut Client, group: &str) -> Result<(), ToolError> {
    let mut coordinator = find_coordinator(bootstrap, group)?;
    let mut request = DeleteGroupsRequest::default();
    request.groups_names = vec![group_id(group)];
    let response = coordinator.call(&request, DELETE_GROUPS_VERSIONS)?;
    for r in &response.results {
        let message = (r.error_code == NON_EMPTY_GROUP).then_some("the group has active members");
        check(r.error_code, || format!("delete group {group}"), message)?;
    }
    Ok(())
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}

/// `t:0,1 u:3` for a member's assignment.
fn assignment_text(assignment: &[(String, Vec<i32>)]) -> String {
    if assignment.iter().all(|(_, ps)| ps.is_empty()) {
        return "-".to_string();
    }
    assignment
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| {
            let ps: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
            format!("{t}:{}", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(start: i64, end: i64, committed: Option<i64>) -> PartitionState {
        PartitionState {
            log_start_offset: start,
            log_end_offset: end,
            committed,
        }
    }

    #[test]
    fn new_offsets_follow_the_target_and_stay_in_the_log() {
        let p = state(3, 10, Some(5));
        assert_eq!(new_offset(ResetTo::Earliest, p), Ok(3));
        assert_eq!(new_offset(ResetTo::Latest, p), Ok(10));
        assert_eq!(new_offset(ResetTo::Offset(7), p), Ok(7));
        assert_eq!(new_offset(ResetTo::Offset(0), p), Ok(3));
        assert_eq!(new_offset(ResetTo::Offset(99), p), Ok(10));
        assert_eq!(new_offset(ResetTo::ShiftBy(2), p), Ok(7));
        assert_eq!(new_offset(ResetTo::ShiftBy(-4), p), Ok(3));
        assert_eq!(new_offset(ResetTo::ShiftBy(i64::MAX), p), Ok(10));
        assert_eq!(new_offset(ResetTo::Datetime(4), p), Ok(4));
        assert_eq!(new_offset(ResetTo::Datetime(-1), p), Ok(10));
        assert!(new_offset(ResetTo::ShiftBy(1), state(0, 5, None)).is_err());
    }

    #[test]
    fn chosen_partitions_must_exist() {
        assert_eq!(chosen_partitions(&[0, 1], &[], "t").unwrap(), vec![0, 1]);
        assert_eq!(chosen_partitions(&[0, 1], &[1, 1], "t").unwrap(), vec![1]);
        let e = chosen_partitions(&[0, 1], &[2], "t").unwrap_err();
        assert!(e.to_string().contains("no partition 2"), "{e}");
    }

    #[test]
    fn lag_needs_both_offsets() {
        let mut row = OffsetRow {
            topic: "t".into(),
            partition: 0,
            committed: Some(4),
            log_end_offset: Some(10),
            owner: None,
        };
        assert_eq!(row.lag(), Some(6));
        row.committed = None;
        assert_eq!(row.lag(), None);
    }

    #[test]
    fn assignments_print_per_topic() {
        let a = vec![("t".to_string(), vec![0, 2]), ("u".to_string(), vec![])];
        assert_eq!(assignment_text(&a), "t:0,2");
        assert_eq!(assignment_text(&[]), "-");
    }
}
