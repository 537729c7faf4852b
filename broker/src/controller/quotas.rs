//! AlterClientQuotas on the metadata writer, as Kafka's `ClientQuotaControlManager` applies it:
//! each entry (one entity and its key changes) is checked on its own (the entity, no key twice,
//! each set key valid for the entity's type with a valid value) and written as one
//! ClientQuotaRecord per change, or refused whole; removing a key the entity lacks writes
//! nothing. With `validate_only` nothing is written.

use super::{change_metadata, failure_message};
use crate::errors::code;
use crate::mesh::Call;
use crate::metadata::Draft;
use crate::quotas::{configs_of, parts_of};
use crate::shard::Shard;
use millrace_replication::metadata::{ClientQuotaRecord, MetadataRecord, QuotaValue};
use millrace_security::quota::{QuotaEntity, QuotaKey};
use std::rc::Rc;

/// One entry: the entity's (type, name) parts as sent and its (key, value or removal) ops.
pub type QuotaEntry = (Vec<(String, Option<String>)>, Vec<(String, Option<f64>)>);

/// Alters client quotas; the reply has one (error code, message) per entry, in order.
#[derive(Debug, Clone)]
pub struct AlterQuotas {
    pub entries: Vec<QuotaEntry>,
    pub validate_only: bool,
}

impl Call<Shard> for AlterQuotas {
    type Reply = Vec<(i16, Option<String>)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |draft: &mut Draft| {
            let mut configs = configs_of(&draft.cluster);
            let mut outcomes = Vec::with_capacity(self.entries.len());
            for (components, ops) in &self.entries {
                let outcome = alter_entry(draft, &mut configs, components, ops, self.validate_only);
                outcomes.push(match outcome {
                    Ok(()) => (code::NONE, None),
                    Err((error, message)) => (error, Some(message)),
                });
            }
            outcomes
        };
        let failed = |mut outcomes: Self::Reply, error_code: i16, error: &str| {
            for o in outcomes.iter_mut().filter(|o| o.0 == code::NONE) {
                *o = (error_code, Some(failure_message(error_code, error)));
            }
            outcomes
        };
        change_metadata(&shard, change, failed).await
    }
}

fn alter_entry(
    draft: &mut Draft,
    configs: &mut millrace_security::quota::QuotaConfigs,
    components: &[(String, Option<String>)],
    ops: &[(String, Option<f64>)],
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let refused = |e: millrace_security::quota::QuotaError| (e.error_code(), e.to_string());
    let entity = QuotaEntity::from_components(components).map_err(refused)?;
    let before = configs.clone();
    configs.alter(&entity, ops, true).map_err(refused)?;
    if validate_only {
        return Ok(());
    }
    let parts = parts_of(&entity);
    let mut records = Vec::new();
    for (name, value) in ops {
        let Some(key) = QuotaKey::from_name(name) else {
            continue; // removing an unknown key: nothing to remove
        };
        if value.is_none() && before.get(&entity, key).is_none() {
            continue;
        }
        records.push(MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: parts.clone(),
            key: name.clone(),
            value: QuotaValue(value.unwrap_or(0.0)),
            remove: value.is_none(),
        }));
    }
    configs.alter(&entity, ops, false).map_err(refused)?;
    draft
        .push_all(records)
        .map_err(|e| (code::UNKNOWN_SERVER_ERROR, e.to_string()))?;
    tracing::info!(%entity, "client quotas changed");
    Ok(())
}
