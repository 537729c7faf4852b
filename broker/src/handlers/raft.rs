//! Raft messages between controllers (the private key `millrace_wire::frame::RAFT_API_KEY`,
//! controller listener only). The body is one message in the quorum's bounded codec, which
//! is the guard: a body that does not decode closes the connection, as a malformed Kafka
//! request does. The answer is empty: Raft's own messages carry every reply.

use super::{Context, Response};
use bytes::Bytes;
use millrace_wire::frame::{encode_raw_response, RequestHeader};

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    if header.api_version != 0 {
        return Response::Close(format!(
            "unsupported raft message version {}",
            header.api_version
        ));
    }
    let message = match millrace_replication::quorum::decode_message(&body) {
        Ok(m) => m,
        Err(e) => return Response::Close(format!("malformed raft message: {e}")),
    };
    let target = ctx.controller_shard();
    if ctx
        .call(target, crate::controller::StepRaft(message))
        .await
        .is_err()
    {
        return Response::Close("the controller is stopping".into());
    }
    Response::Frame(encode_raw_response(header.correlation_id, &[]))
}
