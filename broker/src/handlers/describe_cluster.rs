//! DescribeCluster (key 60). On the client listener: the brokers (this node) and the
//! controller. On the controller listener (KIP-919, what the Admin client's
//! `bootstrap.controllers` uses to find the quorum): the voters' controller endpoints, the
//! quorum's leader as controller. Asking a listener for the other kind of endpoint gets
//! MISMATCHED_ENDPOINT_TYPE, as from Kafka.

use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

/// KIP-919's endpoint types.
const BROKERS: i8 = 1;
const CONTROLLERS: i8 = 2;
use millrace_security::acl::{ResourceType, CLUSTER_NAME};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req = match decode::<DescribeClusterRequest>(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let on_controller = ctx.client().listener == super::Listener::Controller;
    // v0 has no endpoint type: brokers.
    let wanted = if header.api_version >= 1 {
        req.endpoint_type
    } else {
        BROKERS
    };
    if (wanted == CONTROLLERS) != on_controller {
        let resp = DescribeClusterResponse::default()
            .with_error_code(code::MISMATCHED_ENDPOINT_TYPE)
            .with_endpoint_type(wanted)
            .with_cluster_id(str_bytes(&ctx.image().cluster_id))
            .with_cluster_authorized_operations(i32::MIN);
        return respond(&header, &resp);
    }
    if on_controller {
        return controllers(&ctx, &header).await;
    }
    let c = ctx.config();
    let brokers = ctx
        .brokers()
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(&b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.as_deref().map(str_bytes))
        })
        .collect();
    let resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&ctx.image().cluster_id))
        .with_controller_id(BrokerId(c.node_id))
        .with_brokers(brokers)
        .with_endpoint_type(1)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            ctx.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
        } else {
            i32::MIN
        });
    respond(&header, &resp)
}

/// The voters' controller endpoints; the controller is the quorum's leader (-1 if none).
async fn controllers(ctx: &Context, header: &RequestHeader) -> Response {
    let status = ctx
        .call(ctx.controller_shard(), crate::controller::DescribeQuorum)
        .await
        .ok()
        .flatten();
    let leader = status.and_then(|s| s.leader).unwrap_or(-1);
    let voters = ctx
        .config()
        .cluster
        .voters
        .iter()
        .map(|v| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(v.id))
                .with_host(str_bytes(&v.host))
                .with_port(i32::from(v.port))
        })
        .collect();
    let resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&ctx.image().cluster_id))
        .with_controller_id(BrokerId(leader))
        .with_brokers(voters)
        .with_endpoint_type(CONTROLLERS)
        .with_cluster_authorized_operations(i32::MIN);
    respond(header, &resp)
}
