//! DeleteShareGroupOffsets (key 92), version 0: deletes the share state of topics of an empty
//! share group (NON_EMPTY_GROUP while it has members, GROUP_ID_NOT_FOUND when it is not a
//! share group): the group forgets them, their state records get tombstones, and the next
//! member to fetch them starts at `share.auto.offset.reset` again.

use super::{decode, group_call, respond, str_bytes, Context, Response};
use crate::coordinator::ShareUninitialize;
use crate::share::record::ShareStateKey;
use bytes::Bytes;
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as Topic;
use kafka_protocol::messages::{DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse};
use millrace_security::acl::AclOperation;
use millrace_wire::codes as code;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DeleteShareGroupOffsetsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let group_id = req.group_id.0.to_string();
    let image = ctx.image();
    let ids: Vec<uuid::Uuid> = req
        .topics
        .iter()
        .filter_map(|t| image.topics.get(t.topic_name.0.as_str()).map(|m| m.id))
        .collect();
    let gone = match group_call(
        &ctx,
        &group_id,
        AclOperation::Delete,
        ShareUninitialize(group_id.clone(), ids),
    )
    .await
    {
        Ok(Ok(gone)) => gone,
        Ok(Err(error)) | Err(error) => {
            let why = match error {
                code::NON_EMPTY_GROUP => "the share group has members: stop them first".into(),
                code::GROUP_ID_NOT_FOUND => format!("Group {group_id} is not a share group."),
                _ => format!("the coordinator of {group_id} did not answer"),
            };
            return respond(
                &header,
                &DeleteShareGroupOffsetsResponse::default()
                    .with_error_code(error)
                    .with_error_message(Some(str_bytes(&why))),
            );
        }
    };
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let Some(meta) = image.topics.get(t.topic_name.0.as_str()) else {
            topics.push(
                Topic::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION),
            );
            continue;
        };
        let keys: Vec<ShareStateKey> = gone
            .get(&meta.id)
            .into_iter()
            .flatten()
            .map(|&partition| ShareStateKey {
                group_id: group_id.clone(),
                topic_id: meta.id,
                partition,
            })
            .collect();
        let error = match ctx.share_state_delete(&keys).await {
            Ok(()) => code::NONE,
            Err(error) => error,
        };
        topics.push(
            Topic::default()
                .with_topic_name(t.topic_name.clone())
                .with_topic_id(meta.id)
                .with_error_code(error),
        );
    }
    respond(
        &header,
        &DeleteShareGroupOffsetsResponse::default().with_responses(topics),
    )
}
