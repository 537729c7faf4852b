//! BrokerRegistration (key 62, controller listener): a broker joins the cluster. The active
//! controller commits its registration (fenced) and answers the broker epoch; any other
//! controller answers NOT_CONTROLLER. See `crate::controller::brokers`.

use super::{decode, respond, Context, Response};
use crate::controller::brokers::RegisterBroker;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::{BrokerRegistrationRequest, BrokerRegistrationResponse};
use millrace_replication::metadata::control;
use millrace_replication::metadata::BrokerEndpoint;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: BrokerRegistrationRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let call = RegisterBroker {
        cluster_id: req.cluster_id.to_string(),
        request: control::BrokerRegistrationRequest {
            broker_id: req.broker_id.0,
            incarnation_id: *req.incarnation_id.as_bytes(),
            endpoints: req
                .listeners
                .iter()
                .map(|l| BrokerEndpoint {
                    name: l.name.to_string(),
                    host: l.host.to_string(),
                    port: l.port,
                    security_protocol: l.security_protocol,
                })
                .collect(),
            rack: req.rack.as_ref().map(|r| r.to_string()),
        },
    };
    let answer = ctx.call(ctx.controller_shard(), call).await;
    let resp = match answer {
        Ok(Ok(epoch)) => BrokerRegistrationResponse::default().with_broker_epoch(epoch),
        Ok(Err((error_code, message))) => {
            // A restarted broker retries every few ms until its old session ends: not news.
            tracing::debug!(broker = req.broker_id.0, error_code, %message, "registration refused");
            BrokerRegistrationResponse::default()
                .with_error_code(error_code)
                .with_broker_epoch(-1)
        }
        Err(_) => BrokerRegistrationResponse::default()
            .with_error_code(code::NOT_CONTROLLER)
            .with_broker_epoch(-1),
    };
    respond(&header, &resp)
}
