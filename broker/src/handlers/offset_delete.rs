//! OffsetDelete (key 47): removes committed offsets of a group that is not consuming them.

use super::Context;
use super::Response;
use super::{decode, group_call, respond};
use crate::coordinator::OffsetDelete;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: OffsetDeleteRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let denied: Vec<bool> = req
        .topics
        .iter()
        .map(|t| !ctx.allowed(AclOperation::Read, ResourceType::Topic, &t.name.0))
        .collect();
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&denied)
        .filter(|(_, denied)| !**denied)
        .flat_map(|(t, _)| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let count = partitions.len();
    let op = OffsetDelete {
        group_id: req.group_id.0.to_string(),
        partitions,
    };
    let (error, codes) = match group_call(&ctx, &req.group_id.0, AclOperation::Delete, op).await {
        Ok(answer) => answer,
        Err(error) => (error, Vec::new()),
    };
    if error != code::NONE {
        return respond(
            &header,
            &OffsetDeleteResponse::default().with_error_code(error),
        );
    }
    let mut codes = codes
        .into_iter()
        .chain(std::iter::repeat(code::NONE))
        .take(count);
    let topics = req
        .topics
        .iter()
        .zip(denied)
        .map(|(t, denied)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let e = match denied {
                        true => code::TOPIC_AUTHORIZATION_FAILED,
                        false => codes.next().unwrap_or(code::NONE),
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(e)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(
        &header,
        &OffsetDeleteResponse::default().with_topics(topics),
    )
}
