//! CreateAcls and DeleteAcls on the metadata writer, as Kafka's `AclControlManager` does
//! them: a creation is checked (enum values, CLUSTER name, empty name, principal, host) and
//! stored as one AccessControlEntryRecord under a new id, unless the same binding is already
//! stored (then it succeeds and writes nothing, so bindings never repeat); a deletion filter is
//! checked and removes every stored binding it matches that an earlier filter of the same
//! request did not already remove. One request's records commit together.

use super::{change_metadata, failure_message};
use crate::acls::{binding_of, record_of};
use crate::errors::code;
use crate::mesh::Call;
use crate::metadata::Draft;
use crate::shard::Shard;
use millrace_replication::metadata::{MetadataRecord, RemoveAccessControlEntryRecord};
use millrace_security::acl::{AclBinding, AclBindingFilter, AclError};
use std::collections::HashSet;
use std::rc::Rc;

/// An (error code, message) pair, per creation or per filter.
pub type Outcome = (i16, Option<String>);

/// Creates bindings; the reply has one outcome per binding, in order.
#[derive(Debug, Clone)]
pub struct CreateAcls {
    pub bindings: Vec<AclBinding>,
}

/// Deletes what each filter matches; the reply has, per filter in order, either its error or
/// the bindings it removed.
#[derive(Debug, Clone)]
pub struct DeleteAcls {
    pub filters: Vec<AclBindingFilter>,
}

/// Kafka's error code for a refused binding or filter.
pub fn error_code(e: &AclError) -> i16 {
    match e {
        AclError::CidrHostUnsupported { .. } => code::UNSUPPORTED_VERSION,
        _ => code::INVALID_REQUEST,
    }
}

impl Call<Shard> for CreateAcls {
    type Reply = Vec<Outcome>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |draft: &mut Draft| {
            let mut stored: HashSet<AclBinding> =
                draft.cluster.acls().values().map(binding_of).collect();
            let mut outcomes = Vec::with_capacity(self.bindings.len());
            let mut records = Vec::new();
            for binding in &self.bindings {
                if let Err(e) = binding.validate() {
                    outcomes.push((error_code(&e), Some(e.to_string())));
                    continue;
                }
                if stored.insert(binding.clone()) {
                    let id = *uuid::Uuid::new_v4().as_bytes();
                    records.push(MetadataRecord::AccessControlEntry(record_of(id, binding)));
                    tracing::info!(acl = %binding, "ACL created");
                }
                outcomes.push((code::NONE, None));
            }
            if let Err(e) = draft.push_all(records) {
                let message = e.to_string();
                for o in outcomes.iter_mut().filter(|o| o.0 == code::NONE) {
                    *o = (code::UNKNOWN_SERVER_ERROR, Some(message.clone()));
                }
            }
            outcomes
        };
        change_metadata(&shard, change, fail_all).await
    }
}

impl Call<Shard> for DeleteAcls {
    type Reply = Vec<Result<Vec<AclBinding>, Outcome>>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |draft: &mut Draft| {
            let stored: Vec<([u8; 16], AclBinding)> = draft
                .cluster
                .acls()
                .iter()
                .map(|(id, r)| (*id, binding_of(r)))
                .collect();
            let mut removed: HashSet<[u8; 16]> = HashSet::new();
            let mut records = Vec::new();
            let mut replies = Vec::with_capacity(self.filters.len());
            for filter in &self.filters {
                if let Err(e) = filter.validate() {
                    replies.push(Err((error_code(&e), Some(e.to_string()))));
                    continue;
                }
                let mut matched = Vec::new();
                for (id, binding) in &stored {
                    if filter.matches(binding) && removed.insert(*id) {
                        records.push(MetadataRecord::RemoveAccessControlEntry(
                            RemoveAccessControlEntryRecord { id: *id },
                        ));
                        tracing::info!(acl = %binding, "ACL deleted");
                        matched.push(binding.clone());
                    }
                }
                replies.push(Ok(matched));
            }
            if let Err(e) = draft.push_all(records) {
                let outcome = (code::UNKNOWN_SERVER_ERROR, Some(e.to_string()));
                return replies.into_iter().map(|_| Err(outcome.clone())).collect();
            }
            replies
        };
        let failed = |replies: Self::Reply, error_code: i16, error: &str| {
            let outcome = (error_code, Some(failure_message(error_code, error)));
            replies
                .into_iter()
                .map(|r| r.and(Err(outcome.clone())))
                .collect()
        };
        change_metadata(&shard, change, failed).await
    }
}

/// Every successful outcome becomes the commit's error.
fn fail_all(mut outcomes: Vec<Outcome>, error_code: i16, error: &str) -> Vec<Outcome> {
    for o in outcomes.iter_mut().filter(|o| o.0 == code::NONE) {
        *o = (error_code, Some(failure_message(error_code, error)));
    }
    outcomes
}
