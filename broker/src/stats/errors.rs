//! The error codes a response carries, for `millrace_kafka_request_errors_total`: Kafka's
//! `ErrorsPerSec` counts each one (per partition, per topic, per group), NONE aside.
//!
//! Responses reach [`tally`] typed but as `&dyn Any` (from `handlers::respond`), so this one
//! table knows where each API keeps its codes and no handler has to. Fetch does not pass here:
//! it writes its own frame and counts its partitions' codes itself.

use kafka_protocol::messages::*;
use std::any::Any;

/// Calls `add` with every error code in `body`, the response to an `api_key` request. A body
/// of a type the table does not list adds nothing.
pub fn tally(api_key: i16, body: &dyn Any, add: &mut dyn FnMut(i16)) {
    macro_rules! as_ {
        ($t:ty) => {
            body.downcast_ref::<$t>()
        };
    }
    let Ok(key) = ApiKey::try_from(api_key) else {
        return;
    };
    match key {
        ApiKey::Produce => as_!(ProduceResponse).into_iter().for_each(|r| {
            r.responses
                .iter()
                .flat_map(|t| &t.partition_responses)
                .for_each(|p| add(p.error_code))
        }),
        ApiKey::ListOffsets => as_!(ListOffsetsResponse).into_iter().for_each(|r| {
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code))
        }),
        ApiKey::Metadata => as_!(MetadataResponse).into_iter().for_each(|r| {
            add(r.error_code);
            for t in &r.topics {
                add(t.error_code);
                t.partitions.iter().for_each(|p| add(p.error_code));
            }
        }),
        ApiKey::OffsetCommit => as_!(OffsetCommitResponse).into_iter().for_each(|r| {
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code))
        }),
        ApiKey::OffsetFetch => as_!(OffsetFetchResponse).into_iter().for_each(|r| {
            add(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code));
            for g in &r.groups {
                add(g.error_code);
                g.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| add(p.error_code));
            }
        }),
        ApiKey::FindCoordinator => as_!(FindCoordinatorResponse).into_iter().for_each(|r| {
            add(r.error_code);
            r.coordinators.iter().for_each(|c| add(c.error_code));
        }),
        ApiKey::JoinGroup => as_!(JoinGroupResponse)
            .into_iter()
            .for_each(|r| add(r.error_code)),
        ApiKey::Heartbeat => as_!(HeartbeatResponse)
            .into_iter()
            .for_each(|r| add(r.error_code)),
        ApiKey::LeaveGroup => as_!(LeaveGroupResponse).into_iter().for_each(|r| {
            add(r.error_code);
            r.members.iter().for_each(|m| add(m.error_code));
        }),
        ApiKey::SyncGroup => as_!(SyncGroupResponse)
            .into_iter()
            .for_each(|r| add(r.error_code)),
        ApiKey::DescribeGroups => as_!(DescribeGroupsResponse)
            .into_iter()
            .for_each(|r| r.groups.iter().for_each(|g| add(g.error_code))),
        ApiKey::ListGroups => as_!(ListGroupsResponse)
            .into_iter()
            .for_each(|r| add(r.error_code)),
        ApiKey::CreateTopics => as_!(CreateTopicsResponse)
            .into_iter()
            .for_each(|r| r.topics.iter().for_each(|t| add(t.error_code))),
        ApiKey::DeleteTopics => as_!(DeleteTopicsResponse)
            .into_iter()
            .for_each(|r| r.responses.iter().for_each(|t| add(t.error_code))),
        ApiKey::InitProducerId => as_!(InitProducerIdResponse)
            .into_iter()
            .for_each(|r| add(r.error_code)),
        ApiKey::AddPartitionsToTxn => as_!(AddPartitionsToTxnResponse).into_iter().for_each(|r| {
            add(r.error_code);
            r.results_by_transaction
                .iter()
                .flat_map(|t| &t.topic_results)
                .flat_map(|t| &t.results_by_partition)
                .for_each(|p| add(p.partition_error_code));
        }),
        ApiKey::AddOffsetsToTxn => as_!(AddOffsetsToTxnResponse)
            .into_iter()
            .for_each(|r| add(r.error_code)),
        ApiKey::EndTxn => as_!(EndTxnResponse)
            .into_iter()
            .for_each(|r| add(r.error_code)),
        ApiKey::TxnOffsetCommit => as_!(TxnOffsetCommitResponse).into_iter().for_each(|r| {
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code))
        }),
        ApiKey::WriteTxnMarkers => as_!(WriteTxnMarkersResponse).into_iter().for_each(|r| {
            r.markers
                .iter()
                .flat_map(|m| &m.topics)
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code))
        }),
        ApiKey::ConsumerGroupHeartbeat => as_!(ConsumerGroupHeartbeatResponse)
            .into_iter()
            .for_each(|r| add(r.error_code)),
        ApiKey::ConsumerGroupDescribe => as_!(ConsumerGroupDescribeResponse)
            .into_iter()
            .for_each(|r| r.groups.iter().for_each(|g| add(g.error_code))),
        ApiKey::ApiVersions => as_!(ApiVersionsResponse)
            .into_iter()
            .for_each(|r| add(r.error_code)),
        ApiKey::DescribeConfigs => as_!(DescribeConfigsResponse)
            .into_iter()
            .for_each(|r| r.results.iter().for_each(|x| add(x.error_code))),
        ApiKey::AlterConfigs => as_!(AlterConfigsResponse)
            .into_iter()
            .for_each(|r| r.responses.iter().for_each(|x| add(x.error_code))),
        ApiKey::IncrementalAlterConfigs => as_!(IncrementalAlterConfigsResponse)
            .into_iter()
            .for_each(|r| r.responses.iter().for_each(|x| add(x.error_code))),
        ApiKey::CreatePartitions => as_!(CreatePartitionsResponse)
            .into_iter()
            .for_each(|r| r.results.iter().for_each(|x| add(x.error_code))),
        ApiKey::DeleteRecords => as_!(DeleteRecordsResponse).into_iter().for_each(|r| {
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code))
        }),
        ApiKey::DeleteGroups => as_!(DeleteGroupsResponse)
            .into_iter()
            .for_each(|r| r.results.iter().for_each(|x| add(x.error_code))),
        ApiKey::OffsetDelete => as_!(OffsetDeleteResponse).into_iter().for_each(|r| {
            add(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code));
        }),
        ApiKey::ElectLeaders => as_!(ElectLeadersResponse).into_iter().for_each(|r| {
            add(r.error_code);
            r.replica_election_results
                .iter()
                .flat_map(|t| &t.partition_result)
                .for_each(|p| add(p.error_code));
        }),
        ApiKey::DescribeCluster => as_!(DescribeClusterResponse)
            .into_iter()
            .for_each(|r| add(r.error_code)),
        ApiKey::DescribeProducers => as_!(DescribeProducersResponse).into_iter().for_each(|r| {
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code))
        }),
        ApiKey::DescribeTransactions => as_!(DescribeTransactionsResponse)
            .into_iter()
            .for_each(|r| r.transaction_states.iter().for_each(|s| add(s.error_code))),
        ApiKey::ListTransactions => as_!(ListTransactionsResponse)
            .into_iter()
            .for_each(|r| add(r.error_code)),
        ApiKey::DescribeQuorum => as_!(DescribeQuorumResponse).into_iter().for_each(|r| {
            add(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code));
        }),
        ApiKey::InitializeShareGroupState => as_!(InitializeShareGroupStateResponse)
            .into_iter()
            .flat_map(|r| &r.results)
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ApiKey::ReadShareGroupState => as_!(ReadShareGroupStateResponse)
            .into_iter()
            .flat_map(|r| &r.results)
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ApiKey::WriteShareGroupState => as_!(WriteShareGroupStateResponse)
            .into_iter()
            .flat_map(|r| &r.results)
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ApiKey::DeleteShareGroupState => as_!(DeleteShareGroupStateResponse)
            .into_iter()
            .flat_map(|r| &r.results)
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ApiKey::ReadShareGroupStateSummary => as_!(ReadShareGroupStateSummaryResponse)
            .into_iter()
            .flat_map(|r| &r.results)
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_codes_are_found_and_a_foreign_type_adds_nothing() {
        let resp = ProduceResponse::default().with_responses(vec![
            produce_response::TopicProduceResponse::default().with_partition_responses(vec![
                produce_response::PartitionProduceResponse::default().with_error_code(6),
                produce_response::PartitionProduceResponse::default(),
                produce_response::PartitionProduceResponse::default().with_error_code(19),
            ]),
        ]);
        let mut seen = Vec::new();
        tally(0, &resp, &mut |c| seen.push(c));
        assert_eq!(seen, vec![6, 0, 19]);
        // The same body under another key is not a ProduceResponse there.
        seen.clear();
        tally(3, &resp, &mut |c| seen.push(c));
        assert!(seen.is_empty());
        let md = MetadataResponse::default().with_topics(vec![
            metadata_response::MetadataResponseTopic::default()
                .with_error_code(3)
                .with_partitions(vec![metadata_response::MetadataResponsePartition::default(
                )
                .with_error_code(5)]),
        ]);
        tally(3, &md, &mut |c| seen.push(c));
        assert_eq!(seen, vec![0, 3, 5]);
    }
}
