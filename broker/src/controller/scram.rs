//! AlterUserScramCredentials on the metadata writer: each user's deletions and upsertions are
//! checked together and written together (one UserScramCredentialRecord or
//! RemoveUserScramCredentialRecord each) or not at all, with Kafka's rules and messages
//! (ScramControlManager): an empty user name, an unknown mechanism, iterations outside
//! 4096–16384, a deletion of what does not exist, or one user's (user, mechanism) named twice
//! fail that user only.

use super::{change_metadata, failure_message};
use crate::errors::code;
use crate::mesh::Call;
use crate::metadata::Draft;
use crate::shard::Shard;
use millrace_replication::metadata::{
    MetadataRecord, RemoveUserScramCredentialRecord, UserScramCredentialRecord,
};
use millrace_security::sasl::{Mechanism, ScramCredential};
use std::rc::Rc;

/// One change of a user's credentials.
#[derive(Clone)]
pub enum ScramChange {
    /// Delete the credential of this mechanism type.
    Delete { mechanism: i8 },
    /// Set it from what the client salted.
    Upsert {
        mechanism: i8,
        iterations: i32,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
    },
}

impl std::fmt::Debug for ScramChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScramChange::Delete { mechanism } => write!(f, "Delete({mechanism})"),
            ScramChange::Upsert {
                mechanism,
                iterations,
                ..
            } => write!(f, "Upsert({mechanism}, {iterations} iterations)"),
        }
    }
}

/// Every user's changes, in the order the request names the users; the reply has one
/// (error code, message) per user, in the same order.
#[derive(Debug, Clone)]
pub struct AlterScram {
    /// (user, its changes).
    pub users: Vec<(String, Vec<ScramChange>)>,
}

impl Call<Shard> for AlterScram {
    type Reply = Vec<(i16, Option<String>)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |draft: &mut Draft| {
            self.users
                .iter()
                .map(|(user, changes)| match alter_user(draft, user, changes) {
                    Ok(()) => (code::NONE, None),
                    Err((error, message)) => (error, Some(message)),
                })
                .collect()
        };
        let failed = |mut results: Self::Reply, error_code: i16, error: &str| {
            for r in results.iter_mut().filter(|r| r.0 == code::NONE) {
                *r = (error_code, Some(failure_message(error_code, error)));
            }
            results
        };
        change_metadata(&shard, change, failed).await
    }
}

fn alter_user(draft: &mut Draft, user: &str, changes: &[ScramChange]) -> Result<(), (i16, String)> {
    if user.is_empty() {
        return Err((
            code::UNACCEPTABLE_CREDENTIAL,
            "Username must not be empty".into(),
        ));
    }
    let mut records = Vec::with_capacity(changes.len());
    let mut seen = Vec::new();
    for change in changes {
        let (ScramChange::Delete { mechanism } | ScramChange::Upsert { mechanism, .. }) = change;
        let Some(mech) = Mechanism::from_scram_type(*mechanism) else {
            return Err((
                code::UNSUPPORTED_SASL_MECHANISM,
                "Unknown SCRAM mechanism".into(),
            ));
        };
        if seen.contains(mechanism) {
            return Err((
                code::DUPLICATE_RESOURCE,
                "A user credential cannot be altered twice in the same request".into(),
            ));
        }
        seen.push(*mechanism);
        records.push(match change {
            ScramChange::Delete { mechanism } => {
                if draft.cluster.scram_credential(user, *mechanism).is_none() {
                    return Err((
                        code::RESOURCE_NOT_FOUND,
                        "Attempt to delete a user credential that does not exist".into(),
                    ));
                }
                MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
                    name: user.to_string(),
                    mechanism: *mechanism,
                })
            }
            ScramChange::Upsert {
                mechanism,
                iterations,
                salt,
                salted_password,
            } => {
                let c =
                    ScramCredential::from_salted_password(mech, salt, salted_password, *iterations)
                        .map_err(|e| {
                            (code::UNACCEPTABLE_CREDENTIAL, e.client_message(mech, false))
                        })?;
                MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                    name: user.to_string(),
                    mechanism: *mechanism,
                    salt: c.salt,
                    stored_key: c.stored_key,
                    server_key: c.server_key,
                    iterations: c.iterations,
                })
            }
        });
    }
    draft
        .push_all(records)
        .map_err(|e| (code::UNKNOWN_SERVER_ERROR, e.to_string()))?;
    tracing::info!(%user, "SCRAM credentials changed");
    Ok(())
}
