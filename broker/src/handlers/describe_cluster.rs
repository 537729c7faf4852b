//! DescribeCluster (key 60): this node, which is also the controller.

use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use bytes::Bytes;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    if let Err(close) = decode::<DescribeClusterRequest>(&header, &body) {
        return close;
    }
    let c = ctx.config();
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(c.node_id))
        .with_host(str_bytes(&c.advertise.0))
        .with_port(i32::from(c.advertise.1));
    let resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&ctx.image().cluster_id))
        .with_controller_id(BrokerId(c.node_id))
        .with_brokers(vec![broker])
        .with_endpoint_type(1)
        .with_cluster_authorized_operations(i32::MIN);
    respond(&header, &resp)
}
