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
    let denied: Vec<bool> = req
        .topics
        .iter()
        .map(|t| !ctx.allowed(AclOperation::Alter, ResourceType::Topic, &t.name.0))
        .collect();
    let topics: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&denied)
        .filter(|(t, denied)| t.assignments.is_none() && !**denied)
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
            if denied {
                return r.with_error_code(code::TOPIC_AUTHORIZATION_FAILED);
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
        &CreatePartitionsResponse::default().with_results(results),
    )
}
