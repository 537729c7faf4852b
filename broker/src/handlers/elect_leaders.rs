//! ElectLeaders (key 43): preferred or unclean leader elections, decided by the active
//! controller (a broker forwards the request there, as Kafka's brokers do).

use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::controller::elections::ElectLeaders;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use millrace_replication::metadata::control::ElectionType;
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: ElectLeadersRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    // v0 has no election type: always preferred.
    let election = if header.api_version >= 1 {
        ElectionType::from_wire(req.election_type)
    } else {
        Some(ElectionType::Preferred)
    };
    let asked: Option<Vec<(String, Vec<i32>)>> = req.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect()
    });
    let Some(election) = election else {
        let message = format!("unknown election type {}", req.election_type);
        let results = every_partition(asked, code::INVALID_REQUEST);
        return answer(&header, code::INVALID_REQUEST, Some(message), results);
    };
    if !ctx.allowed_on_cluster(AclOperation::Alter) {
        let results = every_partition(asked, code::CLUSTER_AUTHORIZATION_FAILED);
        return answer(&header, code::CLUSTER_AUTHORIZATION_FAILED, None, results);
    }
    if asked.as_ref().is_some_and(Vec::is_empty) {
        return answer(&header, code::NONE, None, Vec::new());
    }
    let request = ElectLeaders {
        election,
        partitions: asked.clone(),
    };
    match ctx.call(ctx.controller_shard(), request).await {
        Ok(results) => answer(&header, code::NONE, None, results),
        Err(_) => answer(
            &header,
            code::NONE,
            None,
            every_partition(asked, code::NOT_CONTROLLER),
        ),
    }
}

/// `error` for every partition asked for.
fn every_partition(
    asked: Option<Vec<(String, Vec<i32>)>>,
    error: i16,
) -> crate::controller::elections::ElectionResults {
    asked
        .unwrap_or_default()
        .into_iter()
        .map(|(topic, partitions)| {
            (
                topic,
                partitions.into_iter().map(|p| (p, error, None)).collect(),
            )
        })
        .collect()
}

fn answer(
    header: &RequestHeader,
    error_code: i16,
    message: Option<String>,
    results: crate::controller::elections::ElectionResults,
) -> Response {
    let results = results
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(str_bytes(&topic)))
                .with_partition_result(
                    partitions
                        .into_iter()
                        .map(|(p, error, m)| {
                            let m = m.or_else(|| (error != code::NONE).then(|| message.clone())?);
                            PartitionResult::default()
                                .with_partition_id(p)
                                .with_error_code(error)
                                .with_error_message(m.as_deref().map(str_bytes))
                        })
                        .collect(),
                )
        })
        .collect();
    let mut resp = ElectLeadersResponse::default().with_replica_election_results(results);
    if header.api_version >= 1 {
        resp.error_code = error_code;
    }
    respond(header, &resp)
}
