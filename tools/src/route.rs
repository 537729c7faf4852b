//! Where a topic's partitions live: the leader of each partition and a connection per leader.
//!
//! Produce, Fetch and ListOffsets must go to the partition's leader (any other broker answers
//! NOT_LEADER_OR_FOLLOWER). On a single millrace node every leader is the bootstrap broker; on
//! a Kafka cluster they differ. Connections open on first use and are reused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_response::MetadataResponseTopic;

use crate::admin::{list_offsets, metadata};
use crate::client::Client;
use crate::command_config::Security;
use crate::error::{check, ToolError};
use millrace_wire::codes::{LEADER_NOT_AVAILABLE, NONE, UNKNOWN_TOPIC_OR_PARTITION};

/// How long to wait for a new topic's partitions to get leaders.
const LEADER_WAIT: Duration = Duration::from_secs(10);
const LEADER_RETRY: Duration = Duration::from_millis(200);

/// One topic's partition leaders and the connections to them.
pub struct Route {
    topic: String,
    /// partition -> leader broker id.
    leaders: BTreeMap<i32, i32>,
    /// broker id -> HOST:PORT.
    addresses: BTreeMap<i32, String>,
    clients: BTreeMap<i32, Client>,
    /// The bootstrap connection's security, for the connections to leaders.
    security: Arc<Security>,
}

impl Route {
    /// Reads the topic's metadata through `bootstrap`, waiting briefly for leaders of a topic
    /// that is being created. Errors for an unknown topic (unless `auto_create`).
    pub fn load(
        bootstrap: &mut Client,
        topic: &str,
        auto_create: bool,
    ) -> Result<(Route, MetadataResponseTopic), ToolError> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let response = metadata(bootstrap, Some(&[topic.to_string()]), auto_create)?;
            let found = response
                .topics
                .into_iter()
                .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic))
                .ok_or_else(|| ToolError::Protocol(format!("Metadata omits topic {topic}")))?;
            let leaderless = found.error_code == LEADER_NOT_AVAILABLE
                || (found.error_code == NONE
                    && (found.partitions.is_empty()
                        || found.partitions.iter().any(|p| p.leader_id.0 < 0)));
            if leaderless && Instant::now() < deadline {
                std::thread::sleep(LEADER_RETRY);
                continue;
            }
            check(
                found.error_code,
                || match found.error_code {
                    UNKNOWN_TOPIC_OR_PARTITION => format!("unknown topic {topic}"),
                    _ => format!("topic {topic}"),
                },
                None,
            )?;
            if found.partitions.is_empty() {
                return Err(ToolError::Protocol(format!(
                    "topic {topic} has no partitions"
                )));
            }
            let route = Route {
                topic: topic.to_string(),
                leaders: found
                    .partitions
                    .iter()
                    .map(|p| (p.partition_index, p.leader_id.0))
                    .collect(),
                addresses: response
                    .brokers
                    .iter()
                    .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
                    .collect(),
                clients: BTreeMap::new(),
                security: bootstrap.security().clone(),
            };
            return Ok((route, found));
        }
    }

    /// The topic's partitions, in order.
    pub fn partitions(&self) -> Vec<i32> {
        self.leaders.keys().copied().collect()
    }

    /// `partitions` grouped by leader.
    pub fn by_leader(&self, partitions: impl IntoIterator<Item = i32>) -> BTreeMap<i32, Vec<i32>> {
        let mut out: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in partitions {
            out.entry(self.leaders.get(&p).copied().unwrap_or(-1))
                .or_default()
                .push(p);
        }
        out
    }

    /// The leader of `partition`.
    pub fn leader(&self, partition: i32) -> i32 {
        self.leaders.get(&partition).copied().unwrap_or(-1)
    }

    /// True when broker `id` is in the cluster metadata.
    pub fn has_broker(&self, id: i32) -> bool {
        self.addresses.contains_key(&id)
    }

    /// The connection to broker `id`, opened on first use.
    pub fn client(&mut self, id: i32) -> Result<&mut Client, ToolError> {
        if !self.clients.contains_key(&id) {
            let address = self.addresses.get(&id).ok_or_else(|| {
                ToolError::Protocol(format!(
                    "{}: leader broker {id} is not in the cluster metadata (LEADER_NOT_AVAILABLE)",
                    self.topic
                ))
            })?;
            let client = Client::connect(address, &self.security)?;
            self.clients.insert(id, client);
        }
        Ok(self.clients.get_mut(&id).expect("inserted above"))
    }

    /// ListOffsets for `partitions`, each asked of its leader.
    pub fn list_offsets(
        &mut self,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<Vec<(i32, i64)>, ToolError> {
        let topic = self.topic.clone();
        let mut out = Vec::new();
        for (leader, parts) in self.by_leader(partitions.iter().copied()) {
            out.extend(list_offsets(
                self.client(leader)?,
                &topic,
                &parts,
                timestamp,
            )?);
        }
        out.sort_unstable();
        Ok(out)
    }
}
