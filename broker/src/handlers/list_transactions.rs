//! ListTransactions (key 66), versions 0-2: the transactional ids this broker coordinates
//! (every shard's; Kafka lists per broker), filtered by state names, producer ids, v1+ a
//! minimum duration, v2+ a regular expression the whole id must match. A state name Kafka does
//! not know is echoed in `unknown_state_filters`; an invalid expression is INVALID_REQUEST.

use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::errors::code;
use crate::mesh::join_all;
use crate::txn::{ListTxns, TxnFilter};
use bytes::Bytes;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: ListTransactionsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let mut resp = ListTransactionsResponse::default();
    let mut filter = TxnFilter {
        producer_ids: req.producer_id_filters.iter().map(|p| p.0).collect(),
        min_duration_ms: if header.api_version >= 1 {
            req.duration_filter
        } else {
            -1
        },
        ..TxnFilter::default()
    };
    let mut known_states = 0;
    for name in &req.state_filters {
        match crate::txn::TxnState::from_name(name) {
            Some(Some(state)) => {
                filter.states.push(state);
                known_states += 1;
            }
            Some(None) => known_states += 1,
            None => resp.unknown_state_filters.push(name.clone()),
        }
    }
    // Only names of states no transaction is ever in here ("Dead"): nothing can match.
    filter.matches_nothing = known_states > 0 && filter.states.is_empty();
    if let Some(pattern) = req
        .transactional_id_pattern
        .as_ref()
        .filter(|p| !p.is_empty())
    {
        match regex::Regex::new(&format!("^(?:{})$", pattern.as_str())) {
            Ok(re) => filter.pattern = Some(re),
            Err(_) => {
                resp.error_code = code::INVALID_REQUEST;
                return respond(&header, &resp);
            }
        }
    }
    let calls = (0..ctx.shards()).map(|target| {
        let ctx = ctx.clone();
        let call = ListTxns(filter.clone());
        async move { ctx.call(target, call).await }
    });
    // A shard that is stopping lists nothing.
    let listed = join_all(calls.collect()).await.into_iter().flatten();
    for (id, producer_id, state) in listed.flatten() {
        // Only transactional ids the principal may describe, as Kafka lists them.
        if !ctx.allowed_quietly(AclOperation::Describe, ResourceType::TransactionalId, &id) {
            continue;
        }
        resp.transaction_states.push(
            TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(&id)))
                .with_producer_id(ProducerId(producer_id))
                .with_transaction_state(str_bytes(state.name())),
        );
    }
    respond(&header, &resp)
}
