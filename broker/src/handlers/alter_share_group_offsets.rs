//! AlterShareGroupOffsets (key 91), version 0: sets share partitions' start offsets, on the
//! group's coordinator, for an empty share group (NON_EMPTY_GROUP while it has members; a
//! group that does not exist is created empty, as Kafka does). Each partition's state is
//! replaced (InitializeShareGroupState) by a new state epoch starting at the offset with
//! nothing in flight, so a
//! share-partition leader still holding the old state in memory is fenced at its next write
//! (FENCED_STATE_EPOCH) and reads the new one back; this broker's own shards drop theirs at
//! once.

use super::{decode, group_call, respond, str_bytes, Context, Response};
use crate::consumer_group::Assignment;
use crate::coordinator::ShareInitialize;
use crate::share::record::ShareStateKey;
use bytes::Bytes;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition as Partition,
    AlterShareGroupOffsetsResponseTopic as Topic,
};
use kafka_protocol::messages::{AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse};
use millrace_security::acl::AclOperation;
use millrace_wire::codes as code;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: AlterShareGroupOffsetsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let group_id = req.group_id.0.to_string();
    let image = ctx.image();
    let mut known: Assignment = Assignment::new();
    for t in &req.topics {
        if let Some(meta) = image.topics.get(t.topic_name.0.as_str()) {
            for p in &t.partitions {
                if p.partition_index >= 0 && p.partition_index < meta.partitions {
                    known.entry(meta.id).or_default().insert(p.partition_index);
                }
            }
        }
    }
    let initialized = group_call(
        &ctx,
        &group_id,
        AclOperation::Read,
        ShareInitialize(group_id.clone(), known),
    )
    .await;
    if let Err(error) | Ok(Err(error)) = initialized {
        let why = match error {
            code::NON_EMPTY_GROUP => "the share group has members: stop them first".to_string(),
            code::GROUP_ID_NOT_FOUND => format!("Group {group_id} is not a share group."),
            _ => format!("the coordinator of {group_id} did not answer"),
        };
        return respond(
            &header,
            &AlterShareGroupOffsetsResponse::default()
                .with_error_code(error)
                .with_error_message(Some(str_bytes(&why))),
        );
    }
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let meta = image.topics.get(t.topic_name.0.as_str()).cloned();
        let mut outs = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let part = Partition::default().with_partition_index(p.partition_index);
            let index = p.partition_index;
            let Some(meta) = meta.as_ref().filter(|m| index >= 0 && index < m.partitions) else {
                outs.push(part.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            if p.start_offset < 0 {
                outs.push(
                    part.with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(str_bytes("a start offset is not negative"))),
                );
                continue;
            }
            let key = ShareStateKey {
                group_id: group_id.clone(),
                topic_id: meta.id,
                partition: index,
            };
            let reset = match ctx.share_state_summary(&key).await {
                Ok(current) => {
                    let epoch = current.state_epoch + 1;
                    ctx.share_state_initialize(&key, epoch, p.start_offset)
                        .await
                }
                Err(error) => Err(error),
            };
            let error = match reset {
                Ok(()) => {
                    ctx.share_state_forget(std::slice::from_ref(&key)).await;
                    code::NONE
                }
                Err(error) => error,
            };
            outs.push(part.with_error_code(error));
        }
        topics.push(
            Topic::default()
                .with_topic_name(t.topic_name.clone())
                .with_topic_id(meta.map(|m| m.id).unwrap_or_default())
                .with_partitions(outs),
        );
    }
    respond(
        &header,
        &AlterShareGroupOffsetsResponse::default().with_responses(topics),
    )
}
