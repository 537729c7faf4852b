//! DescribeShareGroupOffsets (key 90), version 0: each share partition's start offset (SPSO)
//! as its share coordinator holds it, on the group's coordinator. Null topics mean every
//! partition with share state (assigned once, or set by AlterShareGroupOffsets); a partition
//! without state answers start offset -1. A group that is not a share group is
//! GROUP_ID_NOT_FOUND, as in Kafka. (Version 1's `lag` is not served: kafka-protocol 0.18
//! has version 0 only.)

use super::{decode, group_call, respond, str_bytes, Context, Response};
use crate::coordinator::ShareDescribe;
use crate::share::record::ShareStateKey;
use bytes::Bytes;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as Group,
    DescribeShareGroupOffsetsResponsePartition as Partition,
    DescribeShareGroupOffsetsResponseTopic as Topic,
};
use kafka_protocol::messages::{
    DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, TopicName,
};
use millrace_security::acl::AclOperation;
use millrace_wire::codes as code;
use millrace_wire::frame::RequestHeader;
use std::collections::BTreeMap;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DescribeShareGroupOffsetsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let image = ctx.image();
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in &req.groups {
        let group_id = g.group_id.0.to_string();
        let out = Group::default().with_group_id(g.group_id.clone());
        let view = match group_call(
            &ctx,
            &group_id,
            AclOperation::Describe,
            ShareDescribe(group_id.clone()),
        )
        .await
        {
            Ok(Ok(view)) => view,
            Ok(Err(error)) | Err(error) => {
                groups.push(
                    out.with_error_code(error)
                        .with_error_message(Some(str_bytes(&format!(
                            "Group {group_id} not found or not a share group."
                        )))),
                );
                continue;
            }
        };
        // (name, partitions) asked for, in order.
        let wanted: Vec<(String, Vec<i32>)> = match &g.topics {
            Some(topics) => topics
                .iter()
                .map(|t| (t.topic_name.0.to_string(), t.partitions.clone()))
                .collect(),
            None => view
                .initialized
                .iter()
                .filter_map(|(id, ps)| {
                    let t = image.topic_by_id(id)?;
                    Some((t.name.clone(), ps.iter().copied().collect()))
                })
                .collect(),
        };
        let mut topics = BTreeMap::new();
        for (name, partitions) in wanted {
            let meta = image.topics.get(&name).cloned();
            let mut outs = Vec::with_capacity(partitions.len());
            for p in partitions {
                let part = Partition::default()
                    .with_partition_index(p)
                    .with_start_offset(-1)
                    .with_leader_epoch(-1);
                let Some(meta) = meta.as_ref().filter(|m| p >= 0 && p < m.partitions) else {
                    outs.push(part.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
                    continue;
                };
                let key = ShareStateKey {
                    group_id: group_id.clone(),
                    topic_id: meta.id,
                    partition: p,
                };
                outs.push(match ctx.share_state_summary(&key).await {
                    Ok(s) => part
                        .with_start_offset(s.start_offset)
                        .with_leader_epoch(s.leader_epoch),
                    Err(error) => part.with_error_code(error),
                });
            }
            let id = meta.map(|m| m.id).unwrap_or_default();
            topics.insert(
                name.clone(),
                Topic::default()
                    .with_topic_name(TopicName(str_bytes(&name)))
                    .with_topic_id(id)
                    .with_partitions(outs),
            );
        }
        groups.push(out.with_topics(topics.into_values().collect()));
    }
    respond(
        &header,
        &DescribeShareGroupOffsetsResponse::default().with_groups(groups),
    )
}
