//! CreatePartitions (key 37): grow a topic; new partitions go to the least loaded shards.

use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::controller::CreatePartitions;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: CreatePartitionsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let manual: Vec<bool> = req.topics.iter().map(|t| t.assignments.is_some()).collect();
    let mut refusals: Vec<Option<i16>> = req
        .topics
        .iter()
        .map(|t| {
            let allowed = ctx.allowed(AclOperation::Alter, ResourceType::Topic, &t.name.0);
            (!allowed).then_some(code::TOPIC_AUTHORIZATION_FAILED)
        })
        .collect();
    // controller_mutation_rate: the partitions each topic gains (a dry run takes none).
    let mut throttle_ms = 0;
    if !req.validate_only {
        let image = ctx.image();
        let permits: Vec<f64> = req
            .topics
            .iter()
            .zip(&refusals)
            .map(
                |(t, refusal)| match (refusal, image.topics.get(t.name.0.as_str())) {
                    (None, Some(meta)) => f64::from((t.count - meta.partitions).max(0)),
                    _ => 0.0,
                },
            )
            .collect();
        let client_id = header.client_id.as_deref().unwrap_or("");
        let (over, ms) = ctx
            .take_mutations(client_id, &permits, header.api_version >= 3)
            .await;
        for (refusal, over) in refusals.iter_mut().zip(over) {
            if over && refusal.is_none() {
                *refusal = Some(code::THROTTLING_QUOTA_EXCEEDED);
            }
        }
        throttle_ms = ms;
        ctx.throttle(ms);
    }
    let denied = refusals;
    let topics: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&denied)
        .filter(|(t, denied)| t.assignments.is_none() && denied.is_none())
        .map(|(t, _)| t)
        .map(|t| (t.name.0.to_string(), t.count))
        .collect();
    let request = CreatePartitions {
        topics,
        validate_only: req.validate_only,
    };
    let mut outcomes = ctx
        .call(ctx.controller_shard(), request)
        .await
        .unwrap_or_default()
        .into_iter();
    let results = req
        .topics
        .iter()
        .zip(manual.into_iter().zip(denied))
        .map(|(t, (manual, denied))| {
            let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if let Some(refusal) = denied {
                return r.with_error_code(refusal);
            }
            if manual {
                return r
                    .with_error_code(code::INVALID_REPLICA_ASSIGNMENT)
                    .with_error_message(Some(str_bytes(
                        "manual replica assignment is not supported on a single node",
                    )));
            }
            match outcomes.next() {
                Some(o) => r
                    .with_error_code(o.error_code)
                    .with_error_message(o.error_message.as_deref().map(str_bytes)),
                None => r.with_error_code(code::LEADER_NOT_AVAILABLE),
            }
        })
        .collect();
    respond(
        &header,
        &CreatePartitionsResponse::default()
            .with_results(results)
            .with_throttle_time_ms(throttle_ms.min(i32::MAX as u64) as i32),
    )
}
