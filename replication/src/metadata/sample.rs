//! Seeded generators of metadata records, for this crate's tests and for the cluster simulator:
//! [`RecordSource::next_valid`] returns a record that the given image accepts,
//! [`RecordSource::next_invalid`] one that it refuses. Same seed and same images, same records.

use super::image::{ClusterImage, PartitionImage};
use super::record::{
    security_protocol, BrokerEndpoint, BrokerRegistrationChangeRecord, ConfigRecord,
    ConfigResourceType, FenceBrokerRecord, MetadataRecord, PartitionChangeRecord, PartitionRecord,
    ProducerIdsRecord, RegisterBrokerRecord, RemoveTopicRecord, TopicId, TopicRecord,
    UnfenceBrokerRecord, UnregisterBrokerRecord,
};

/// A deterministic record generator.
#[derive(Debug, Clone)]
pub struct RecordSource {
    state: u64,
    topics_made: u64,
}

/// Brokers the generated replicas are drawn from.
const BROKERS: i32 = 5;

impl RecordSource {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        RecordSource {
            state: seed ^ 0x6d69_6c6c_7261_6365,
            topics_made: 0,
        }
    }

    /// SplitMix64.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A record `image` accepts.
    pub fn next_valid(&mut self, image: &ClusterImage) -> MetadataRecord {
        loop {
            let record = match self.below(115) {
                0..=14 => Some(self.new_topic(image)),
                15..=44 => self.new_partition(image),
                45..=64 => self.partition_change(image),
                65..=79 => self.config(image),
                80..=84 => self
                    .pick_topic(image)
                    .map(|topic_id| MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id })),
                85..=94 => Some(MetadataRecord::ProducerIds(ProducerIdsRecord {
                    broker_id: self.below(BROKERS as u64) as i32,
                    broker_epoch: self.below(100) as i64,
                    next_producer_id: image.next_producer_id() + 1 + self.below(2000) as i64,
                })),
                95..=99 => Some(MetadataRecord::NoOp),
                _ => self.broker_record(image),
            };
            if let Some(record) = record {
                return record;
            }
        }
    }

    /// A record `image` refuses.
    pub fn next_invalid(&mut self, image: &ClusterImage) -> MetadataRecord {
        let unknown = self.fresh_id(image);
        let existing = self.pick_topic(image);
        let topic = existing.and_then(|id| image.topic_by_id(&id));
        let partition = |partition_id, replicas: Vec<i32>, isr: Vec<i32>, leader| {
            MetadataRecord::Partition(PartitionRecord {
                topic_id: existing.unwrap_or(unknown),
                partition_id,
                state: PartitionImage {
                    replicas,
                    isr,
                    eligible_leader_replicas: vec![],
                    last_known_elr: vec![],
                    leader,
                    leader_epoch: 0,
                    partition_epoch: 0,
                },
            })
        };
        let next_partition = topic.map_or(0, |t| t.partitions.len() as i32);
        match (self.below(14), topic) {
            (10..=13, _) => self.invalid_broker_record(image),
            (0, Some(t)) => MetadataRecord::Topic(TopicRecord {
                name: t.name.clone(),
                topic_id: unknown,
            }),
            (1, Some(t)) => MetadataRecord::Topic(TopicRecord {
                name: self.fresh_name(image),
                topic_id: t.id,
            }),
            (2, Some(_)) => partition(next_partition + 1, vec![0], vec![0], 0),
            (3, Some(_)) => partition(next_partition, vec![0, 1], vec![1], 0),
            (4, Some(_)) => partition(next_partition, vec![0, 0], vec![0], 0),
            (5, Some(t)) => MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id: t.id,
                partition_id: t.partitions.len() as i32,
                leader: Some(-1),
                isr: None,
                replicas: None,
                eligible_leader_replicas: None,
                last_known_elr: None,
            }),
            (6, _) if self.below(2) == 0 => MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Group,
                resource_name: String::new(),
                name: "share.auto.offset.reset".into(),
                value: Some("earliest".into()),
            }),
            (6, _) => MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Topic,
                resource_name: self.fresh_name(image),
                name: "retention.ms".into(),
                value: Some("1".into()),
            }),
            (7, _) => MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: 0,
                broker_epoch: 0,
                next_producer_id: image.next_producer_id(),
            }),
            (8, _) => MetadataRecord::Topic(TopicRecord {
                name: "bad/name".into(),
                topic_id: unknown,
            }),
            _ => MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: unknown }),
        }
    }

    /// A registration (new, or again with a new epoch), a fence, unfence, unregistration or
    /// registration change of a registered broker with its current epoch.
    fn broker_record(&mut self, image: &ClusterImage) -> Option<MetadataRecord> {
        let broker_id = self.below(BROKERS as u64) as i32;
        let Some(current) = image.broker(broker_id) else {
            return Some(self.registration(image, broker_id));
        };
        let (id, epoch) = (broker_id, current.broker_epoch);
        let record = match self.below(10) {
            0..=1 => self.registration(image, broker_id),
            2..=3 => MetadataRecord::FenceBroker(FenceBrokerRecord { id, epoch }),
            4..=6 => MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id, epoch }),
            7 => MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
                broker_id,
                broker_epoch: epoch,
            }),
            _ => MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                broker_id,
                broker_epoch: epoch,
                fenced: [None, Some(true), Some(false)][self.below(3) as usize],
                in_controlled_shutdown: (self.below(2) == 0).then_some(true),
            }),
        };
        Some(record)
    }

    /// A registration `image` accepts: the epoch is the next offset if the log is dense (as a
    /// controller writes it), and above any epoch the image holds in any case.
    fn registration(&mut self, image: &ClusterImage, broker_id: i32) -> MetadataRecord {
        let racks = [None, Some("r1"), Some("r2"), Some("r3")];
        let mut endpoints = vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: format!("broker-{broker_id}.example"),
            port: 9092,
            security_protocol: security_protocol::PLAINTEXT,
        }];
        if self.below(2) == 0 {
            endpoints.push(BrokerEndpoint {
                name: "CONTROLLER".into(),
                host: format!("broker-{broker_id}.example"),
                port: 9093 + self.below(100) as u16,
                security_protocol: self.below(4) as i16,
            });
        }
        let mut incarnation_id = [0u8; 16];
        incarnation_id[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id,
            incarnation_id,
            broker_epoch: image.last_applied_offset() + 1,
            endpoints,
            rack: racks[self.below(racks.len() as u64) as usize].map(str::to_string),
            fenced: self.below(4) != 0,
        })
    }

    /// A broker record `image` refuses: a stale or unknown epoch, a registration that does not
    /// advance the epoch or is malformed, or a change leaving controlled shutdown.
    fn invalid_broker_record(&mut self, image: &ClusterImage) -> MetadataRecord {
        let broker_id = self.below(BROKERS as u64) as i32;
        let current = image.broker(broker_id).map(|b| b.broker_epoch);
        let wrong_epoch = match current {
            Some(epoch) if self.below(2) == 0 => epoch - 1 - self.below(3) as i64,
            Some(epoch) => epoch + 1 + self.below(3) as i64,
            None => self.below(100) as i64,
        };
        let mut registration = match self.registration(image, broker_id) {
            MetadataRecord::RegisterBroker(r) => r,
            _ => unreachable!("registration() makes a RegisterBrokerRecord"),
        };
        match (self.below(4), current) {
            (0, _) => MetadataRecord::FenceBroker(FenceBrokerRecord {
                id: broker_id,
                epoch: wrong_epoch,
            }),
            (1, Some(epoch)) => {
                registration.broker_epoch = epoch - self.below(2) as i64;
                MetadataRecord::RegisterBroker(registration)
            }
            (1, None) => {
                registration.rack = Some(String::new());
                MetadataRecord::RegisterBroker(registration)
            }
            (2, _) => MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                broker_id,
                broker_epoch: current.unwrap_or(0),
                fenced: None,
                in_controlled_shutdown: Some(false),
            }),
            _ => {
                let twin = registration.endpoints[0].clone();
                registration.endpoints.push(twin);
                MetadataRecord::RegisterBroker(registration)
            }
        }
    }

    fn new_topic(&mut self, image: &ClusterImage) -> MetadataRecord {
        MetadataRecord::Topic(TopicRecord {
            name: self.fresh_name(image),
            topic_id: self.fresh_id(image),
        })
    }

    fn new_partition(&mut self, image: &ClusterImage) -> Option<MetadataRecord> {
        let topic_id = self.pick_topic(image)?;
        let partition_id = image.topic_by_id(&topic_id)?.partitions.len() as i32;
        let replicas = self.replicas();
        let isr = self.subset(&replicas, true);
        let leader = if self.below(8) == 0 { -1 } else { isr[0] };
        let last_known_elr = self.subset(&replicas, false);
        Some(MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition_id,
            state: PartitionImage {
                replicas,
                isr,
                eligible_leader_replicas: vec![],
                last_known_elr,
                leader,
                leader_epoch: self.below(3) as i32,
                partition_epoch: self.below(3) as i32,
            },
        }))
    }

    fn partition_change(&mut self, image: &ClusterImage) -> Option<MetadataRecord> {
        let topic = image.topic_by_id(&self.pick_topic(image)?)?;
        if topic.partitions.is_empty() {
            return None;
        }
        let partition_id = self.below(topic.partitions.len() as u64) as i32;
        let old = &topic.partitions[partition_id as usize];
        let replicas = (self.below(4) == 0).then(|| self.replicas());
        let members = replicas.clone().unwrap_or_else(|| old.replicas.clone());
        let isr = self.subset(&members, false);
        let keep_leader = old.leader == -1 || isr.contains(&old.leader);
        let leader = if keep_leader && self.below(2) == 0 {
            None
        } else {
            Some(isr.first().copied().unwrap_or(-1))
        };
        let outside: Vec<i32> = members
            .iter()
            .filter(|b| !isr.contains(b))
            .copied()
            .collect();
        let elr = self.subset(&outside, false);
        Some(MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: topic.id,
            partition_id,
            leader,
            isr: Some(isr),
            replicas,
            eligible_leader_replicas: Some(elr),
            last_known_elr: (self.below(2) == 0).then(|| self.subset(&members, false)),
        }))
    }

    fn config(&mut self, image: &ClusterImage) -> Option<MetadataRecord> {
        let keys = ["retention.ms", "cleanup.policy", "segment.bytes"];
        let name = keys[self.below(keys.len() as u64) as usize].to_string();
        let value = (self.below(3) != 0).then(|| self.below(1_000_000).to_string());
        let kind = self.below(6);
        let (resource_type, resource_name) = if kind == 0 {
            let names = ["", "1", "3"];
            let broker = names[self.below(names.len() as u64) as usize];
            (ConfigResourceType::Broker, broker.to_string())
        } else if kind == 1 {
            // Group configs need no group: any non-empty id will do.
            let names = ["g", "share-a", "orders.consumers"];
            let group = names[self.below(names.len() as u64) as usize];
            (ConfigResourceType::Group, group.to_string())
        } else {
            let id = self.pick_topic(image)?;
            (
                ConfigResourceType::Topic,
                image.topic_by_id(&id)?.name.clone(),
            )
        };
        Some(MetadataRecord::Config(ConfigRecord {
            resource_type,
            resource_name,
            name,
            value,
        }))
    }

    fn pick_topic(&mut self, image: &ClusterImage) -> Option<TopicId> {
        let count = image.topic_count() as u64;
        if count == 0 {
            return None;
        }
        let n = self.below(count) as usize;
        image.topics().nth(n).map(|t| t.id)
    }

    fn fresh_name(&mut self, image: &ClusterImage) -> String {
        loop {
            self.topics_made += 1;
            let salt = self.below(1000);
            let name = format!("topic-{}.{salt}", self.topics_made);
            if image.topic(&name).is_none() {
                return name;
            }
        }
    }

    fn fresh_id(&mut self, image: &ClusterImage) -> TopicId {
        loop {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&self.next_u64().to_be_bytes());
            id[8..].copy_from_slice(&self.next_u64().to_be_bytes());
            let id = TopicId(id);
            if id != TopicId::ZERO && image.topic_by_id(&id).is_none() {
                return id;
            }
        }
    }

    /// 1 to 3 distinct brokers.
    fn replicas(&mut self) -> Vec<i32> {
        let want = 1 + self.below(3) as usize;
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            let broker = self.below(BROKERS as u64) as i32;
            if !out.contains(&broker) {
                out.push(broker);
            }
        }
        out
    }

    /// A random subset of `from`, in a random order; never empty when `non_empty`.
    fn subset(&mut self, from: &[i32], non_empty: bool) -> Vec<i32> {
        let mut out: Vec<i32> = from
            .iter()
            .copied()
            .filter(|_| self.below(2) == 0)
            .collect();
        if out.is_empty() && non_empty {
            out.push(from[self.below(from.len() as u64) as usize]);
        }
        if out.len() > 1 && self.below(2) == 0 {
            out.reverse();
        }
        out
    }
}
