//! ElectLeaders on a single node (its own active controller): every partition already has
//! the only leader it can have, so a named partition answers ELECTION_NOT_NEEDED (preferred
//! and unclean alike), an unknown one UNKNOWN_TOPIC_OR_PARTITION, "every partition" (null)
//! leaves out those that need nothing, an empty list is an empty answer, and an unknown
//! election type is INVALID_REQUEST. Nothing is written to the metadata log.

use super::*;
use crate::errors::code;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};

#[test]
fn elect_leaders_answers_per_partition_and_changes_nothing_that_needs_no_election() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(12);
    let shards = sim.block_on(boot(&disk));
    sim.block_on(async {
        let version = shards[0].applied_version();
        let named = Some(vec![
            TopicPartitions::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![0, 999]),
            TopicPartitions::default()
                .with_topic(TopicName(StrBytes::from_static_str("nowhere")))
                .with_partitions(vec![0]),
        ]);
        for (version, election) in [(0, 0), (2, 0), (2, 1)] {
            let resp = elect(&shards[1], version, election, named.clone()).await;
            assert_eq!(resp.error_code, code::NONE);
            let codes: Vec<(String, Vec<(i32, i16)>)> = resp
                .replica_election_results
                .iter()
                .map(|t| {
                    let parts = t.partition_result.iter();
                    let parts = parts.map(|p| (p.partition_id, p.error_code)).collect();
                    (t.topic.0.to_string(), parts)
                })
                .collect();
            let unknown = code::UNKNOWN_TOPIC_OR_PARTITION;
            assert_eq!(
                codes,
                [
                    (
                        TOPIC.to_string(),
                        vec![(0, code::ELECTION_NOT_NEEDED), (999, unknown)]
                    ),
                    ("nowhere".to_string(), vec![(0, unknown)]),
                ],
                "v{version} type {election}"
            );
        }
        let every = elect(&shards[0], 2, 0, None).await;
        assert_eq!(every.error_code, code::NONE);
        assert!(
            every
                .replica_election_results
                .iter()
                .all(|t| t.partition_result.is_empty()),
            "nothing needed an election: {every:?}"
        );
        let none = elect(&shards[0], 2, 0, Some(Vec::new())).await;
        assert!(none.replica_election_results.is_empty());
        let bad = elect(&shards[0], 2, 7, named.clone()).await;
        assert_eq!(bad.error_code, code::INVALID_REQUEST);
        assert!(bad.replica_election_results[0]
            .partition_result
            .iter()
            .all(|p| p.error_code == code::INVALID_REQUEST));
        assert_eq!(shards[0].applied_version(), version, "no metadata written");
    });
    drop(shards);
    sim.crash();
}

async fn elect(
    shard: &Rc<Shard>,
    version: i16,
    election: i8,
    partitions: Option<Vec<TopicPartitions>>,
) -> ElectLeadersResponse {
    let mut req = ElectLeadersRequest::default()
        .with_topic_partitions(partitions)
        .with_timeout_ms(10_000);
    if version >= 1 {
        req = req.with_election_type(election);
    }
    call(shard, ApiKey::ElectLeaders, version, &req).await
}
