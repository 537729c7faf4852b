//! The schema tables, one module per API, each with one [`Api`] and one `&[Field]` per struct.
//!
//! Derived from kafka-protocol 0.18's generated request decoders (`src/messages/*_request.rs`),
//! which are the decoders the broker runs after the guard: the version ranges, nullability and
//! flexible-version boundaries here must match those, not only Kafka's JSON schemas. A field
//! with range `0..=i16::MAX` is present in every version the API supports. Fields that no
//! supported version carries (InitProducerId's `enable_2_pc`/`keep_prepared_txn`, the
//! OffsetCommit/OffsetFetch `topic_id` of v10+) are left out.

use super::schema::{Api, Field, Ty};

/// Every API the guard knows, in no particular order.
pub(super) const APIS: &[Api] = &[
    api_versions::API,
    metadata::API,
    produce::API,
    fetch::API,
    list_offsets::API,
    create_topics::API,
    delete_topics::API,
    create_partitions::API,
    init_producer_id::API,
    describe_configs::API,
    describe_cluster::API,
    find_coordinator::API,
    offset_commit::API,
    offset_fetch::API,
    join_group::API,
    heartbeat::API,
    leave_group::API,
    sync_group::API,
    describe_groups::API,
    list_groups::API,
    delete_groups::API,
    offset_delete::API,
    consumer_group_heartbeat::API,
    consumer_group_describe::API,
    share_group_heartbeat::API,
    share_group_describe::API,
    share_fetch::API,
    share_acknowledge::API,
    describe_share_group_offsets::API,
    alter_share_group_offsets::API,
    delete_share_group_offsets::API,
    initialize_share_group_state::API,
    read_share_group_state::API,
    write_share_group_state::API,
    delete_share_group_state::API,
    read_share_group_state_summary::API,
    alter_configs::API,
    incremental_alter_configs::API,
    delete_records::API,
    sasl_handshake::API,
    sasl_authenticate::API,
    describe_user_scram_credentials::API,
    alter_user_scram_credentials::API,
    describe_acls::API,
    create_acls::API,
    delete_acls::API,
    describe_client_quotas::API,
    alter_client_quotas::API,
    envelope::API,
    describe_quorum::API,
    fetch_snapshot::API,
    alter_partition::API,
    broker_registration::API,
    broker_heartbeat::API,
    unregister_broker::API,
    allocate_producer_ids::API,
    elect_leaders::API,
    add_partitions_to_txn::API,
    add_offsets_to_txn::API,
    end_txn::API,
    write_txn_markers::API,
    txn_offset_commit::API,
    describe_producers::API,
    describe_transactions::API,
    list_transactions::API,
];

/// api_versions_request, api_key 18, versions 0-4, flexible 3+.
pub(super) mod api_versions {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 18,
        min_version: 0,
        max_version: 4,
        flexible_min: 3,
        body: API_VERSIONS_REQUEST,
    };
    const API_VERSIONS_REQUEST: &[Field] = &[
        Field::new("client_software_name", Ty::String, 3, i16::MAX),
        Field::new("client_software_version", Ty::String, 3, i16::MAX),
    ];
}

/// metadata_request, api_key 3, versions 0-13, flexible 9+.
pub(super) mod metadata {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 3,
        min_version: 0,
        max_version: 13,
        flexible_min: 9,
        body: METADATA_REQUEST,
    };
    const METADATA_REQUEST: &[Field] = &[
        Field::new(
            "topics",
            Ty::NullableArray(&Ty::Struct(METADATA_REQUEST_TOPIC)),
            0,
            i16::MAX,
        ),
        Field::new("allow_auto_topic_creation", Ty::Bool, 4, i16::MAX),
        Field::new("include_cluster_authorized_operations", Ty::Bool, 8, 10),
        Field::new("include_topic_authorized_operations", Ty::Bool, 8, i16::MAX),
    ];
    const METADATA_REQUEST_TOPIC: &[Field] = &[
        Field::new("topic_id", Ty::Uuid, 10, i16::MAX),
        Field::new("name", Ty::NullableString, 0, i16::MAX),
    ];
}

/// produce_request, api_key 0, versions 3-13, flexible 9+.
pub(super) mod produce {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 0,
        min_version: 3,
        max_version: 13,
        flexible_min: 9,
        body: PRODUCE_REQUEST,
    };
    const PARTITION_PRODUCE_DATA: &[Field] = &[
        Field::new("index", Ty::Int32, 0, i16::MAX),
        Field::new("records", Ty::NullableBytes, 0, i16::MAX),
    ];
    const PRODUCE_REQUEST: &[Field] = &[
        Field::new("transactional_id", Ty::NullableString, 0, i16::MAX),
        Field::new("acks", Ty::Int16, 0, i16::MAX),
        Field::new("timeout_ms", Ty::Int32, 0, i16::MAX),
        Field::new(
            "topic_data",
            Ty::Array(&Ty::Struct(TOPIC_PRODUCE_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const TOPIC_PRODUCE_DATA: &[Field] = &[
        Field::new("name", Ty::String, 0, 12),
        Field::new("topic_id", Ty::Uuid, 13, i16::MAX),
        Field::new(
            "partition_data",
            Ty::Array(&Ty::Struct(PARTITION_PRODUCE_DATA)),
            0,
            i16::MAX,
        ),
    ];
}

/// fetch_request, api_key 1, versions 4-18, flexible 12+.
pub(super) mod fetch {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 1,
        min_version: 4,
        max_version: 18,
        flexible_min: 12,
        body: FETCH_REQUEST,
    };
    const FETCH_PARTITION: &[Field] = &[
        Field::new("partition", Ty::Int32, 0, i16::MAX),
        Field::new("current_leader_epoch", Ty::Int32, 9, i16::MAX),
        Field::new("fetch_offset", Ty::Int64, 0, i16::MAX),
        Field::new("last_fetched_epoch", Ty::Int32, 12, i16::MAX),
        Field::new("log_start_offset", Ty::Int64, 5, i16::MAX),
        Field::new("partition_max_bytes", Ty::Int32, 0, i16::MAX),
        Field::tagged("replica_directory_id", Ty::Uuid, 0, 17, i16::MAX),
        Field::tagged("high_watermark", Ty::Int64, 1, 18, i16::MAX),
    ];
    const FETCH_REQUEST: &[Field] = &[
        Field::new("replica_id", Ty::Int32, 0, 14),
        Field::new("max_wait_ms", Ty::Int32, 0, i16::MAX),
        Field::new("min_bytes", Ty::Int32, 0, i16::MAX),
        Field::new("max_bytes", Ty::Int32, 0, i16::MAX),
        Field::new("isolation_level", Ty::Int8, 0, i16::MAX),
        Field::new("session_id", Ty::Int32, 7, i16::MAX),
        Field::new("session_epoch", Ty::Int32, 7, i16::MAX),
        Field::new("topics", Ty::Array(&Ty::Struct(FETCH_TOPIC)), 0, i16::MAX),
        Field::new(
            "forgotten_topics_data",
            Ty::Array(&Ty::Struct(FORGOTTEN_TOPIC)),
            7,
            i16::MAX,
        ),
        Field::new("rack_id", Ty::String, 11, i16::MAX),
        Field::tagged("cluster_id", Ty::NullableString, 0, 12, i16::MAX),
        Field::tagged("replica_state", Ty::Struct(REPLICA_STATE), 1, 15, i16::MAX),
    ];
    const FETCH_TOPIC: &[Field] = &[
        Field::new("topic", Ty::String, 0, 12),
        Field::new("topic_id", Ty::Uuid, 13, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(FETCH_PARTITION)),
            0,
            i16::MAX,
        ),
    ];
    const FORGOTTEN_TOPIC: &[Field] = &[
        Field::new("topic", Ty::String, 7, 12),
        Field::new("topic_id", Ty::Uuid, 13, i16::MAX),
        Field::new("partitions", Ty::Array(&Ty::Int32), 7, i16::MAX),
    ];
    const REPLICA_STATE: &[Field] = &[
        Field::new("replica_id", Ty::Int32, 15, i16::MAX),
        Field::new("replica_epoch", Ty::Int64, 15, i16::MAX),
    ];
}

/// list_offsets_request, api_key 2, versions 1-10, flexible 6+.
pub(super) mod list_offsets {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 2,
        min_version: 1,
        max_version: 10,
        flexible_min: 6,
        body: LIST_OFFSETS_REQUEST,
    };
    const LIST_OFFSETS_PARTITION: &[Field] = &[
        Field::new("partition_index", Ty::Int32, 0, i16::MAX),
        Field::new("current_leader_epoch", Ty::Int32, 4, i16::MAX),
        Field::new("timestamp", Ty::Int64, 0, i16::MAX),
    ];
    const LIST_OFFSETS_REQUEST: &[Field] = &[
        Field::new("replica_id", Ty::Int32, 0, i16::MAX),
        Field::new("isolation_level", Ty::Int8, 2, i16::MAX),
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(LIST_OFFSETS_TOPIC)),
            0,
            i16::MAX,
        ),
        Field::new("timeout_ms", Ty::Int32, 10, i16::MAX),
    ];
    const LIST_OFFSETS_TOPIC: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(LIST_OFFSETS_PARTITION)),
            0,
            i16::MAX,
        ),
    ];
}

/// create_topics_request, api_key 19, versions 2-7, flexible 5+.
pub(super) mod create_topics {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 19,
        min_version: 2,
        max_version: 7,
        flexible_min: 5,
        body: CREATE_TOPICS_REQUEST,
    };
    const CREATABLE_REPLICA_ASSIGNMENT: &[Field] = &[
        Field::new("partition_index", Ty::Int32, 0, i16::MAX),
        Field::new("broker_ids", Ty::Array(&Ty::Int32), 0, i16::MAX),
    ];
    const CREATABLE_TOPIC: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("num_partitions", Ty::Int32, 0, i16::MAX),
        Field::new("replication_factor", Ty::Int16, 0, i16::MAX),
        Field::new(
            "assignments",
            Ty::Array(&Ty::Struct(CREATABLE_REPLICA_ASSIGNMENT)),
            0,
            i16::MAX,
        ),
        Field::new(
            "configs",
            Ty::Array(&Ty::Struct(CREATABLE_TOPIC_CONFIG)),
            0,
            i16::MAX,
        ),
    ];
    const CREATABLE_TOPIC_CONFIG: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("value", Ty::NullableString, 0, i16::MAX),
    ];
    const CREATE_TOPICS_REQUEST: &[Field] = &[
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(CREATABLE_TOPIC)),
            0,
            i16::MAX,
        ),
        Field::new("timeout_ms", Ty::Int32, 0, i16::MAX),
        Field::new("validate_only", Ty::Bool, 0, i16::MAX),
    ];
}

/// delete_topics_request, api_key 20, versions 1-6, flexible 4+.
pub(super) mod delete_topics {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 20,
        min_version: 1,
        max_version: 6,
        flexible_min: 4,
        body: DELETE_TOPICS_REQUEST,
    };
    const DELETE_TOPIC_STATE: &[Field] = &[
        Field::new("name", Ty::NullableString, 6, i16::MAX),
        Field::new("topic_id", Ty::Uuid, 6, i16::MAX),
    ];
    const DELETE_TOPICS_REQUEST: &[Field] = &[
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(DELETE_TOPIC_STATE)),
            6,
            i16::MAX,
        ),
        Field::new("topic_names", Ty::Array(&Ty::String), 0, 5),
        Field::new("timeout_ms", Ty::Int32, 0, i16::MAX),
    ];
}

/// create_partitions_request, api_key 37, versions 0-3, flexible 2+.
pub(super) mod create_partitions {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 37,
        min_version: 0,
        max_version: 3,
        flexible_min: 2,
        body: CREATE_PARTITIONS_REQUEST,
    };
    const CREATE_PARTITIONS_ASSIGNMENT: &[Field] =
        &[Field::new("broker_ids", Ty::Array(&Ty::Int32), 0, i16::MAX)];
    const CREATE_PARTITIONS_REQUEST: &[Field] = &[
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(CREATE_PARTITIONS_TOPIC)),
            0,
            i16::MAX,
        ),
        Field::new("timeout_ms", Ty::Int32, 0, i16::MAX),
        Field::new("validate_only", Ty::Bool, 0, i16::MAX),
    ];
    const CREATE_PARTITIONS_TOPIC: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("count", Ty::Int32, 0, i16::MAX),
        Field::new(
            "assignments",
            Ty::NullableArray(&Ty::Struct(CREATE_PARTITIONS_ASSIGNMENT)),
            0,
            i16::MAX,
        ),
    ];
}

/// init_producer_id_request, api_key 22, versions 0-5, flexible 2+.
pub(super) mod init_producer_id {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 22,
        min_version: 0,
        max_version: 5,
        flexible_min: 2,
        body: INIT_PRODUCER_ID_REQUEST,
    };
    const INIT_PRODUCER_ID_REQUEST: &[Field] = &[
        Field::new("transactional_id", Ty::NullableString, 0, i16::MAX),
        Field::new("transaction_timeout_ms", Ty::Int32, 0, i16::MAX),
        Field::new("producer_id", Ty::Int64, 3, i16::MAX),
        Field::new("producer_epoch", Ty::Int16, 3, i16::MAX),
    ];
}

/// describe_configs_request, api_key 32, versions 1-4, flexible 4+.
pub(super) mod describe_configs {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 32,
        min_version: 1,
        max_version: 4,
        flexible_min: 4,
        body: DESCRIBE_CONFIGS_REQUEST,
    };
    const DESCRIBE_CONFIGS_REQUEST: &[Field] = &[
        Field::new(
            "resources",
            Ty::Array(&Ty::Struct(DESCRIBE_CONFIGS_RESOURCE)),
            0,
            i16::MAX,
        ),
        Field::new("include_synonyms", Ty::Bool, 0, i16::MAX),
        Field::new("include_documentation", Ty::Bool, 3, i16::MAX),
    ];
    const DESCRIBE_CONFIGS_RESOURCE: &[Field] = &[
        Field::new("resource_type", Ty::Int8, 0, i16::MAX),
        Field::new("resource_name", Ty::String, 0, i16::MAX),
        Field::new(
            "configuration_keys",
            Ty::NullableArray(&Ty::String),
            0,
            i16::MAX,
        ),
    ];
}

/// describe_cluster_request, api_key 60, versions 0-2, flexible 0+.
pub(super) mod describe_cluster {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 60,
        min_version: 0,
        max_version: 2,
        flexible_min: 0,
        body: DESCRIBE_CLUSTER_REQUEST,
    };
    const DESCRIBE_CLUSTER_REQUEST: &[Field] = &[
        Field::new(
            "include_cluster_authorized_operations",
            Ty::Bool,
            0,
            i16::MAX,
        ),
        Field::new("endpoint_type", Ty::Int8, 1, i16::MAX),
        Field::new("include_fenced_brokers", Ty::Bool, 2, i16::MAX),
    ];
}

/// find_coordinator_request, api_key 10, versions 0-6, flexible 3+.
pub(super) mod find_coordinator {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 10,
        min_version: 0,
        max_version: 6,
        flexible_min: 3,
        body: FIND_COORDINATOR_REQUEST,
    };
    const FIND_COORDINATOR_REQUEST: &[Field] = &[
        Field::new("key", Ty::String, 0, 3),
        Field::new("key_type", Ty::Int8, 1, i16::MAX),
        Field::new("coordinator_keys", Ty::Array(&Ty::String), 4, i16::MAX),
    ];
}

/// offset_commit_request, api_key 8, versions 2-9, flexible 8+.
pub(super) mod offset_commit {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 8,
        min_version: 2,
        max_version: 9,
        flexible_min: 8,
        body: OFFSET_COMMIT_REQUEST,
    };
    const OFFSET_COMMIT_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new("generation_id_or_member_epoch", Ty::Int32, 0, i16::MAX),
        Field::new("member_id", Ty::String, 0, i16::MAX),
        Field::new("group_instance_id", Ty::NullableString, 7, i16::MAX),
        Field::new("retention_time_ms", Ty::Int64, 0, 4),
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(OFFSET_COMMIT_REQUEST_TOPIC)),
            0,
            i16::MAX,
        ),
    ];
    const OFFSET_COMMIT_REQUEST_PARTITION: &[Field] = &[
        Field::new("partition_index", Ty::Int32, 0, i16::MAX),
        Field::new("committed_offset", Ty::Int64, 0, i16::MAX),
        Field::new("committed_leader_epoch", Ty::Int32, 6, i16::MAX),
        Field::new("committed_metadata", Ty::NullableString, 0, i16::MAX),
    ];
    const OFFSET_COMMIT_REQUEST_TOPIC: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(OFFSET_COMMIT_REQUEST_PARTITION)),
            0,
            i16::MAX,
        ),
    ];
}

/// offset_fetch_request, api_key 9, versions 1-9, flexible 6+.
pub(super) mod offset_fetch {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 9,
        min_version: 1,
        max_version: 9,
        flexible_min: 6,
        body: OFFSET_FETCH_REQUEST,
    };
    const OFFSET_FETCH_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, 7),
        Field::new(
            "topics",
            Ty::NullableArray(&Ty::Struct(OFFSET_FETCH_REQUEST_TOPIC)),
            0,
            7,
        ),
        Field::new(
            "groups",
            Ty::Array(&Ty::Struct(OFFSET_FETCH_REQUEST_GROUP)),
            8,
            i16::MAX,
        ),
        Field::new("require_stable", Ty::Bool, 7, i16::MAX),
    ];
    const OFFSET_FETCH_REQUEST_GROUP: &[Field] = &[
        Field::new("group_id", Ty::String, 8, i16::MAX),
        Field::new("member_id", Ty::NullableString, 9, i16::MAX),
        Field::new("member_epoch", Ty::Int32, 9, i16::MAX),
        Field::new(
            "topics",
            Ty::NullableArray(&Ty::Struct(OFFSET_FETCH_REQUEST_TOPICS)),
            8,
            i16::MAX,
        ),
    ];
    const OFFSET_FETCH_REQUEST_TOPIC: &[Field] = &[
        Field::new("name", Ty::String, 0, 7),
        Field::new("partition_indexes", Ty::Array(&Ty::Int32), 0, 7),
    ];
    const OFFSET_FETCH_REQUEST_TOPICS: &[Field] = &[
        Field::new("name", Ty::String, 8, i16::MAX),
        Field::new("partition_indexes", Ty::Array(&Ty::Int32), 8, i16::MAX),
    ];
}

/// join_group_request, api_key 11, versions 0-9, flexible 6+.
pub(super) mod join_group {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 11,
        min_version: 0,
        max_version: 9,
        flexible_min: 6,
        body: JOIN_GROUP_REQUEST,
    };
    const JOIN_GROUP_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new("session_timeout_ms", Ty::Int32, 0, i16::MAX),
        Field::new("rebalance_timeout_ms", Ty::Int32, 1, i16::MAX),
        Field::new("member_id", Ty::String, 0, i16::MAX),
        Field::new("group_instance_id", Ty::NullableString, 5, i16::MAX),
        Field::new("protocol_type", Ty::String, 0, i16::MAX),
        Field::new(
            "protocols",
            Ty::Array(&Ty::Struct(JOIN_GROUP_REQUEST_PROTOCOL)),
            0,
            i16::MAX,
        ),
        Field::new("reason", Ty::NullableString, 8, i16::MAX),
    ];
    const JOIN_GROUP_REQUEST_PROTOCOL: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("metadata", Ty::Bytes, 0, i16::MAX),
    ];
}

/// heartbeat_request, api_key 12, versions 0-4, flexible 4+.
pub(super) mod heartbeat {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 12,
        min_version: 0,
        max_version: 4,
        flexible_min: 4,
        body: HEARTBEAT_REQUEST,
    };
    const HEARTBEAT_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new("generation_id", Ty::Int32, 0, i16::MAX),
        Field::new("member_id", Ty::String, 0, i16::MAX),
        Field::new("group_instance_id", Ty::NullableString, 3, i16::MAX),
    ];
}

/// leave_group_request, api_key 13, versions 0-5, flexible 4+.
pub(super) mod leave_group {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 13,
        min_version: 0,
        max_version: 5,
        flexible_min: 4,
        body: LEAVE_GROUP_REQUEST,
    };
    const LEAVE_GROUP_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new("member_id", Ty::String, 0, 2),
        Field::new(
            "members",
            Ty::Array(&Ty::Struct(MEMBER_IDENTITY)),
            3,
            i16::MAX,
        ),
    ];
    const MEMBER_IDENTITY: &[Field] = &[
        Field::new("member_id", Ty::String, 3, i16::MAX),
        Field::new("group_instance_id", Ty::NullableString, 3, i16::MAX),
        Field::new("reason", Ty::NullableString, 5, i16::MAX),
    ];
}

/// sync_group_request, api_key 14, versions 0-5, flexible 4+.
pub(super) mod sync_group {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 14,
        min_version: 0,
        max_version: 5,
        flexible_min: 4,
        body: SYNC_GROUP_REQUEST,
    };
    const SYNC_GROUP_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new("generation_id", Ty::Int32, 0, i16::MAX),
        Field::new("member_id", Ty::String, 0, i16::MAX),
        Field::new("group_instance_id", Ty::NullableString, 3, i16::MAX),
        Field::new("protocol_type", Ty::NullableString, 5, i16::MAX),
        Field::new("protocol_name", Ty::NullableString, 5, i16::MAX),
        Field::new(
            "assignments",
            Ty::Array(&Ty::Struct(SYNC_GROUP_REQUEST_ASSIGNMENT)),
            0,
            i16::MAX,
        ),
    ];
    const SYNC_GROUP_REQUEST_ASSIGNMENT: &[Field] = &[
        Field::new("member_id", Ty::String, 0, i16::MAX),
        Field::new("assignment", Ty::Bytes, 0, i16::MAX),
    ];
}

/// describe_groups_request, api_key 15, versions 0-6, flexible 5+.
pub(super) mod describe_groups {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 15,
        min_version: 0,
        max_version: 6,
        flexible_min: 5,
        body: DESCRIBE_GROUPS_REQUEST,
    };
    const DESCRIBE_GROUPS_REQUEST: &[Field] = &[
        Field::new("groups", Ty::Array(&Ty::String), 0, i16::MAX),
        Field::new("include_authorized_operations", Ty::Bool, 3, i16::MAX),
    ];
}

/// list_groups_request, api_key 16, versions 0-5, flexible 3+.
pub(super) mod list_groups {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 16,
        min_version: 0,
        max_version: 5,
        flexible_min: 3,
        body: LIST_GROUPS_REQUEST,
    };
    const LIST_GROUPS_REQUEST: &[Field] = &[
        Field::new("states_filter", Ty::Array(&Ty::String), 4, i16::MAX),
        Field::new("types_filter", Ty::Array(&Ty::String), 5, i16::MAX),
    ];
}

/// delete_groups_request, api_key 42, versions 0-2, flexible 2+.
pub(super) mod delete_groups {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 42,
        min_version: 0,
        max_version: 2,
        flexible_min: 2,
        body: DELETE_GROUPS_REQUEST,
    };
    const DELETE_GROUPS_REQUEST: &[Field] = &[Field::new(
        "groups_names",
        Ty::Array(&Ty::String),
        0,
        i16::MAX,
    )];
}

/// offset_delete_request, api_key 47, versions 0-0, flexible never.
pub(super) mod offset_delete {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 47,
        min_version: 0,
        max_version: 0,
        flexible_min: i16::MAX,
        body: OFFSET_DELETE_REQUEST,
    };
    const OFFSET_DELETE_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(OFFSET_DELETE_REQUEST_TOPIC)),
            0,
            i16::MAX,
        ),
    ];
    const OFFSET_DELETE_REQUEST_PARTITION: &[Field] =
        &[Field::new("partition_index", Ty::Int32, 0, i16::MAX)];
    const OFFSET_DELETE_REQUEST_TOPIC: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(OFFSET_DELETE_REQUEST_PARTITION)),
            0,
            i16::MAX,
        ),
    ];
}

/// consumer_group_heartbeat_request, api_key 68, versions 0-1, flexible 0+.
pub(super) mod consumer_group_heartbeat {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 68,
        min_version: 0,
        max_version: 1,
        flexible_min: 0,
        body: CONSUMER_GROUP_HEARTBEAT_REQUEST,
    };
    const CONSUMER_GROUP_HEARTBEAT_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new("member_id", Ty::String, 0, i16::MAX),
        Field::new("member_epoch", Ty::Int32, 0, i16::MAX),
        Field::new("instance_id", Ty::NullableString, 0, i16::MAX),
        Field::new("rack_id", Ty::NullableString, 0, i16::MAX),
        Field::new("rebalance_timeout_ms", Ty::Int32, 0, i16::MAX),
        Field::new(
            "subscribed_topic_names",
            Ty::NullableArray(&Ty::String),
            0,
            i16::MAX,
        ),
        Field::new("subscribed_topic_regex", Ty::NullableString, 1, i16::MAX),
        Field::new("server_assignor", Ty::NullableString, 0, i16::MAX),
        Field::new(
            "topic_partitions",
            Ty::NullableArray(&Ty::Struct(TOPIC_PARTITIONS)),
            0,
            i16::MAX,
        ),
    ];
    const TOPIC_PARTITIONS: &[Field] = &[
        Field::new("topic_id", Ty::Uuid, 0, i16::MAX),
        Field::new("partitions", Ty::Array(&Ty::Int32), 0, i16::MAX),
    ];
}

/// consumer_group_describe_request, api_key 69, versions 0-1, flexible 0+.
pub(super) mod consumer_group_describe {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 69,
        min_version: 0,
        max_version: 1,
        flexible_min: 0,
        body: CONSUMER_GROUP_DESCRIBE_REQUEST,
    };
    const CONSUMER_GROUP_DESCRIBE_REQUEST: &[Field] = &[
        Field::new("group_ids", Ty::Array(&Ty::String), 0, i16::MAX),
        Field::new("include_authorized_operations", Ty::Bool, 0, i16::MAX),
    ];
}

/// share_group_heartbeat_request, api_key 76, versions 1-1, flexible 0+.
pub(super) mod share_group_heartbeat {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 76,
        min_version: 1,
        max_version: 1,
        flexible_min: 0,
        body: SHARE_GROUP_HEARTBEAT_REQUEST,
    };
    const SHARE_GROUP_HEARTBEAT_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new("member_id", Ty::String, 0, i16::MAX),
        Field::new("member_epoch", Ty::Int32, 0, i16::MAX),
        Field::new("rack_id", Ty::NullableString, 0, i16::MAX),
        Field::new(
            "subscribed_topic_names",
            Ty::NullableArray(&Ty::String),
            0,
            i16::MAX,
        ),
    ];
}

/// share_group_describe_request, api_key 77, versions 1-1, flexible 0+.
pub(super) mod share_group_describe {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 77,
        min_version: 1,
        max_version: 1,
        flexible_min: 0,
        body: SHARE_GROUP_DESCRIBE_REQUEST,
    };
    const SHARE_GROUP_DESCRIBE_REQUEST: &[Field] = &[
        Field::new("group_ids", Ty::Array(&Ty::String), 0, i16::MAX),
        Field::new("include_authorized_operations", Ty::Bool, 0, i16::MAX),
    ];
}

/// initialize_share_group_state_request, api_key 83, versions 0-0, flexible 0+.
pub(super) mod initialize_share_group_state {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 83,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: INITIALIZE_SHARE_GROUP_STATE_REQUEST,
    };
    const INITIALIZE_SHARE_GROUP_STATE_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(INITIALIZE_STATE_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const INITIALIZE_STATE_DATA: &[Field] = &[
        Field::new("topic_id", Ty::Uuid, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(PARTITION_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const PARTITION_DATA: &[Field] = &[
        Field::new("partition", Ty::Int32, 0, i16::MAX),
        Field::new("state_epoch", Ty::Int32, 0, i16::MAX),
        Field::new("start_offset", Ty::Int64, 0, i16::MAX),
    ];
}

/// read_share_group_state_request, api_key 84, versions 0-0, flexible 0+.
pub(super) mod read_share_group_state {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 84,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: READ_SHARE_GROUP_STATE_REQUEST,
    };
    const READ_SHARE_GROUP_STATE_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(READ_STATE_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const READ_STATE_DATA: &[Field] = &[
        Field::new("topic_id", Ty::Uuid, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(PARTITION_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const PARTITION_DATA: &[Field] = &[
        Field::new("partition", Ty::Int32, 0, i16::MAX),
        Field::new("leader_epoch", Ty::Int32, 0, i16::MAX),
    ];
}

/// write_share_group_state_request, api_key 85, versions 0-0, flexible 0+.
pub(super) mod write_share_group_state {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 85,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: WRITE_SHARE_GROUP_STATE_REQUEST,
    };
    const WRITE_SHARE_GROUP_STATE_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(WRITE_STATE_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const WRITE_STATE_DATA: &[Field] = &[
        Field::new("topic_id", Ty::Uuid, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(PARTITION_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const PARTITION_DATA: &[Field] = &[
        Field::new("partition", Ty::Int32, 0, i16::MAX),
        Field::new("state_epoch", Ty::Int32, 0, i16::MAX),
        Field::new("leader_epoch", Ty::Int32, 0, i16::MAX),
        Field::new("start_offset", Ty::Int64, 0, i16::MAX),
        Field::new(
            "state_batches",
            Ty::Array(&Ty::Struct(STATE_BATCH)),
            0,
            i16::MAX,
        ),
    ];
    const STATE_BATCH: &[Field] = &[
        Field::new("first_offset", Ty::Int64, 0, i16::MAX),
        Field::new("last_offset", Ty::Int64, 0, i16::MAX),
        Field::new("delivery_state", Ty::Int8, 0, i16::MAX),
        Field::new("delivery_count", Ty::Int16, 0, i16::MAX),
    ];
}

/// delete_share_group_state_request, api_key 86, versions 0-0, flexible 0+.
pub(super) mod delete_share_group_state {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 86,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: DELETE_SHARE_GROUP_STATE_REQUEST,
    };
    const DELETE_SHARE_GROUP_STATE_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(DELETE_STATE_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const DELETE_STATE_DATA: &[Field] = &[
        Field::new("topic_id", Ty::Uuid, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(PARTITION_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const PARTITION_DATA: &[Field] = &[Field::new("partition", Ty::Int32, 0, i16::MAX)];
}

/// read_share_group_state_summary_request, api_key 87, versions 0-0, flexible 0+.
pub(super) mod read_share_group_state_summary {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 87,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: READ_SHARE_GROUP_STATE_SUMMARY_REQUEST,
    };
    const READ_SHARE_GROUP_STATE_SUMMARY_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(READ_STATE_SUMMARY_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const READ_STATE_SUMMARY_DATA: &[Field] = &[
        Field::new("topic_id", Ty::Uuid, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(PARTITION_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const PARTITION_DATA: &[Field] = &[
        Field::new("partition", Ty::Int32, 0, i16::MAX),
        Field::new("leader_epoch", Ty::Int32, 0, i16::MAX),
    ];
}

/// share_fetch_request, api_key 78, versions 1-2, flexible 0+ (v0's `partition_max_bytes`
/// is in no supported version; v2 is Kafka 4.4's, which kafka-protocol 0.18 lacks: the broker
/// decodes it as v1 once its two extra fields are cut out).
pub(super) mod share_fetch {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 78,
        min_version: 1,
        max_version: 2,
        flexible_min: 0,
        body: SHARE_FETCH_REQUEST,
    };
    const SHARE_FETCH_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::NullableString, 0, i16::MAX),
        Field::new("member_id", Ty::NullableString, 0, i16::MAX),
        Field::new("share_session_epoch", Ty::Int32, 0, i16::MAX),
        Field::new("max_wait_ms", Ty::Int32, 0, i16::MAX),
        Field::new("min_bytes", Ty::Int32, 0, i16::MAX),
        Field::new("max_bytes", Ty::Int32, 0, i16::MAX),
        Field::new("max_records", Ty::Int32, 0, i16::MAX),
        Field::new("batch_size", Ty::Int32, 0, i16::MAX),
        Field::new("share_acquire_mode", Ty::Int8, 2, i16::MAX),
        Field::new("is_renew_ack", Ty::Bool, 2, i16::MAX),
        Field::new("topics", Ty::Array(&Ty::Struct(FETCH_TOPIC)), 0, i16::MAX),
        Field::new(
            "forgotten_topics_data",
            Ty::Array(&Ty::Struct(FORGOTTEN_TOPIC)),
            0,
            i16::MAX,
        ),
    ];
    const FETCH_TOPIC: &[Field] = &[
        Field::new("topic_id", Ty::Uuid, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(FETCH_PARTITION)),
            0,
            i16::MAX,
        ),
    ];
    const FETCH_PARTITION: &[Field] = &[
        Field::new("partition_index", Ty::Int32, 0, i16::MAX),
        Field::new(
            "acknowledgement_batches",
            Ty::Array(&Ty::Struct(ACKNOWLEDGEMENT_BATCH)),
            0,
            i16::MAX,
        ),
    ];
    pub(super) const ACKNOWLEDGEMENT_BATCH: &[Field] = &[
        Field::new("first_offset", Ty::Int64, 0, i16::MAX),
        Field::new("last_offset", Ty::Int64, 0, i16::MAX),
        Field::new("acknowledge_types", Ty::Array(&Ty::Int8), 0, i16::MAX),
    ];
    const FORGOTTEN_TOPIC: &[Field] = &[
        Field::new("topic_id", Ty::Uuid, 0, i16::MAX),
        Field::new("partitions", Ty::Array(&Ty::Int32), 0, i16::MAX),
    ];
}

/// share_acknowledge_request, api_key 79, versions 1-2, flexible 0+ (v2 as ShareFetch's).
pub(super) mod share_acknowledge {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 79,
        min_version: 1,
        max_version: 2,
        flexible_min: 0,
        body: SHARE_ACKNOWLEDGE_REQUEST,
    };
    const SHARE_ACKNOWLEDGE_REQUEST: &[Field] = &[
        Field::new("group_id", Ty::NullableString, 0, i16::MAX),
        Field::new("member_id", Ty::NullableString, 0, i16::MAX),
        Field::new("share_session_epoch", Ty::Int32, 0, i16::MAX),
        Field::new("is_renew_ack", Ty::Bool, 2, i16::MAX),
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(ACKNOWLEDGE_TOPIC)),
            0,
            i16::MAX,
        ),
    ];
    const ACKNOWLEDGE_TOPIC: &[Field] = &[
        Field::new("topic_id", Ty::Uuid, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(ACKNOWLEDGE_PARTITION)),
            0,
            i16::MAX,
        ),
    ];
    const ACKNOWLEDGE_PARTITION: &[Field] = &[
        Field::new("partition_index", Ty::Int32, 0, i16::MAX),
        Field::new(
            "acknowledgement_batches",
            Ty::Array(&Ty::Struct(super::share_fetch::ACKNOWLEDGEMENT_BATCH)),
            0,
            i16::MAX,
        ),
    ];
}

/// describe_share_group_offsets_request, api_key 90, versions 0-0, flexible 0+.
pub(super) mod describe_share_group_offsets {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 90,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: REQUEST,
    };
    const REQUEST: &[Field] = &[Field::new(
        "groups",
        Ty::Array(&Ty::Struct(GROUP)),
        0,
        i16::MAX,
    )];
    const GROUP: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new("topics", Ty::NullableArray(&Ty::Struct(TOPIC)), 0, i16::MAX),
    ];
    const TOPIC: &[Field] = &[
        Field::new("topic_name", Ty::String, 0, i16::MAX),
        Field::new("partitions", Ty::Array(&Ty::Int32), 0, i16::MAX),
    ];
}

/// alter_share_group_offsets_request, api_key 91, versions 0-0, flexible 0+.
pub(super) mod alter_share_group_offsets {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 91,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: REQUEST,
    };
    const REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new("topics", Ty::Array(&Ty::Struct(TOPIC)), 0, i16::MAX),
    ];
    const TOPIC: &[Field] = &[
        Field::new("topic_name", Ty::String, 0, i16::MAX),
        Field::new("partitions", Ty::Array(&Ty::Struct(PARTITION)), 0, i16::MAX),
    ];
    const PARTITION: &[Field] = &[
        Field::new("partition_index", Ty::Int32, 0, i16::MAX),
        Field::new("start_offset", Ty::Int64, 0, i16::MAX),
    ];
}

/// delete_share_group_offsets_request, api_key 92, versions 0-0, flexible 0+.
pub(super) mod delete_share_group_offsets {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 92,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: REQUEST,
    };
    const REQUEST: &[Field] = &[
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new("topics", Ty::Array(&Ty::Struct(TOPIC)), 0, i16::MAX),
    ];
    const TOPIC: &[Field] = &[Field::new("topic_name", Ty::String, 0, i16::MAX)];
}

/// alter_configs_request, api_key 33, versions 0-2, flexible 2+.
pub(super) mod alter_configs {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 33,
        min_version: 0,
        max_version: 2,
        flexible_min: 2,
        body: ALTER_CONFIGS_REQUEST,
    };
    const ALTER_CONFIGS_REQUEST: &[Field] = &[
        Field::new(
            "resources",
            Ty::Array(&Ty::Struct(ALTER_CONFIGS_RESOURCE)),
            0,
            i16::MAX,
        ),
        Field::new("validate_only", Ty::Bool, 0, i16::MAX),
    ];
    const ALTER_CONFIGS_RESOURCE: &[Field] = &[
        Field::new("resource_type", Ty::Int8, 0, i16::MAX),
        Field::new("resource_name", Ty::String, 0, i16::MAX),
        Field::new(
            "configs",
            Ty::Array(&Ty::Struct(ALTERABLE_CONFIG)),
            0,
            i16::MAX,
        ),
    ];
    const ALTERABLE_CONFIG: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("value", Ty::NullableString, 0, i16::MAX),
    ];
}

/// incremental_alter_configs_request, api_key 44, versions 0-1, flexible 1+.
pub(super) mod incremental_alter_configs {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 44,
        min_version: 0,
        max_version: 1,
        flexible_min: 1,
        body: INCREMENTAL_ALTER_CONFIGS_REQUEST,
    };
    const ALTER_CONFIGS_RESOURCE: &[Field] = &[
        Field::new("resource_type", Ty::Int8, 0, i16::MAX),
        Field::new("resource_name", Ty::String, 0, i16::MAX),
        Field::new(
            "configs",
            Ty::Array(&Ty::Struct(ALTERABLE_CONFIG)),
            0,
            i16::MAX,
        ),
    ];
    const ALTERABLE_CONFIG: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("config_operation", Ty::Int8, 0, i16::MAX),
        Field::new("value", Ty::NullableString, 0, i16::MAX),
    ];
    const INCREMENTAL_ALTER_CONFIGS_REQUEST: &[Field] = &[
        Field::new(
            "resources",
            Ty::Array(&Ty::Struct(ALTER_CONFIGS_RESOURCE)),
            0,
            i16::MAX,
        ),
        Field::new("validate_only", Ty::Bool, 0, i16::MAX),
    ];
}

/// delete_records_request, api_key 21, versions 0-2, flexible 2+.
pub(super) mod delete_records {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 21,
        min_version: 0,
        max_version: 2,
        flexible_min: 2,
        body: DELETE_RECORDS_REQUEST,
    };
    const DELETE_RECORDS_PARTITION: &[Field] = &[
        Field::new("partition_index", Ty::Int32, 0, i16::MAX),
        Field::new("offset", Ty::Int64, 0, i16::MAX),
    ];
    const DELETE_RECORDS_REQUEST: &[Field] = &[
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(DELETE_RECORDS_TOPIC)),
            0,
            i16::MAX,
        ),
        Field::new("timeout_ms", Ty::Int32, 0, i16::MAX),
    ];
    const DELETE_RECORDS_TOPIC: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(DELETE_RECORDS_PARTITION)),
            0,
            i16::MAX,
        ),
    ];
}

/// sasl_handshake_request, api_key 17, versions 0-1, flexible never.
pub(super) mod sasl_handshake {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 17,
        min_version: 0,
        max_version: 1,
        flexible_min: i16::MAX,
        body: SASL_HANDSHAKE_REQUEST,
    };
    const SASL_HANDSHAKE_REQUEST: &[Field] = &[Field::new("mechanism", Ty::String, 0, i16::MAX)];
}

/// sasl_authenticate_request, api_key 36, versions 0-2, flexible 2+.
pub(super) mod sasl_authenticate {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 36,
        min_version: 0,
        max_version: 2,
        flexible_min: 2,
        body: SASL_AUTHENTICATE_REQUEST,
    };
    const SASL_AUTHENTICATE_REQUEST: &[Field] = &[Field::new("auth_bytes", Ty::Bytes, 0, i16::MAX)];
}

/// describe_user_scram_credentials_request, api_key 50, version 0, flexible 0+.
pub(super) mod describe_user_scram_credentials {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 50,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: REQUEST,
    };
    const USER_NAME: &[Field] = &[Field::new("name", Ty::String, 0, i16::MAX)];
    const REQUEST: &[Field] = &[Field::new(
        "users",
        Ty::NullableArray(&Ty::Struct(USER_NAME)),
        0,
        i16::MAX,
    )];
}

/// alter_user_scram_credentials_request, api_key 51, version 0, flexible 0+.
pub(super) mod alter_user_scram_credentials {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 51,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: REQUEST,
    };
    const DELETION: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("mechanism", Ty::Int8, 0, i16::MAX),
    ];
    const UPSERTION: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("mechanism", Ty::Int8, 0, i16::MAX),
        Field::new("iterations", Ty::Int32, 0, i16::MAX),
        Field::new("salt", Ty::Bytes, 0, i16::MAX),
        Field::new("salted_password", Ty::Bytes, 0, i16::MAX),
    ];
    const REQUEST: &[Field] = &[
        Field::new("deletions", Ty::Array(&Ty::Struct(DELETION)), 0, i16::MAX),
        Field::new("upsertions", Ty::Array(&Ty::Struct(UPSERTION)), 0, i16::MAX),
    ];
}

/// An ACL filter as DescribeAcls carries it and DeleteAcls carries a list of (v1+: the
/// pattern type).
const ACL_FILTER: &[Field] = &[
    Field::new("resource_type_filter", Ty::Int8, 0, i16::MAX),
    Field::new("resource_name_filter", Ty::NullableString, 0, i16::MAX),
    Field::new("pattern_type_filter", Ty::Int8, 1, i16::MAX),
    Field::new("principal_filter", Ty::NullableString, 0, i16::MAX),
    Field::new("host_filter", Ty::NullableString, 0, i16::MAX),
    Field::new("operation", Ty::Int8, 0, i16::MAX),
    Field::new("permission_type", Ty::Int8, 0, i16::MAX),
];

/// describe_acls_request, api_key 29, versions 1-3, flexible 2+.
pub(super) mod describe_acls {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 29,
        min_version: 1,
        max_version: 3,
        flexible_min: 2,
        body: ACL_FILTER,
    };
}

/// create_acls_request, api_key 30, versions 1-3, flexible 2+.
pub(super) mod create_acls {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 30,
        min_version: 1,
        max_version: 3,
        flexible_min: 2,
        body: REQUEST,
    };
    const CREATION: &[Field] = &[
        Field::new("resource_type", Ty::Int8, 0, i16::MAX),
        Field::new("resource_name", Ty::String, 0, i16::MAX),
        Field::new("resource_pattern_type", Ty::Int8, 1, i16::MAX),
        Field::new("principal", Ty::String, 0, i16::MAX),
        Field::new("host", Ty::String, 0, i16::MAX),
        Field::new("operation", Ty::Int8, 0, i16::MAX),
        Field::new("permission_type", Ty::Int8, 0, i16::MAX),
    ];
    const REQUEST: &[Field] = &[Field::new(
        "creations",
        Ty::Array(&Ty::Struct(CREATION)),
        0,
        i16::MAX,
    )];
}

/// delete_acls_request, api_key 31, versions 1-3, flexible 2+.
pub(super) mod delete_acls {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 31,
        min_version: 1,
        max_version: 3,
        flexible_min: 2,
        body: REQUEST,
    };
    const REQUEST: &[Field] = &[Field::new(
        "filters",
        Ty::Array(&Ty::Struct(ACL_FILTER)),
        0,
        i16::MAX,
    )];
}

/// describe_client_quotas_request, api_key 48, versions 0-1, flexible 1+.
pub(super) mod describe_client_quotas {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 48,
        min_version: 0,
        max_version: 1,
        flexible_min: 1,
        body: REQUEST,
    };
    const COMPONENT: &[Field] = &[
        Field::new("entity_type", Ty::String, 0, i16::MAX),
        Field::new("match_type", Ty::Int8, 0, i16::MAX),
        Field::new("match", Ty::NullableString, 0, i16::MAX),
    ];
    const REQUEST: &[Field] = &[
        Field::new("components", Ty::Array(&Ty::Struct(COMPONENT)), 0, i16::MAX),
        Field::new("strict", Ty::Bool, 0, i16::MAX),
    ];
}

/// alter_client_quotas_request, api_key 49, versions 0-1, flexible 1+.
pub(super) mod alter_client_quotas {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 49,
        min_version: 0,
        max_version: 1,
        flexible_min: 1,
        body: REQUEST,
    };
    const ENTITY: &[Field] = &[
        Field::new("entity_type", Ty::String, 0, i16::MAX),
        Field::new("entity_name", Ty::NullableString, 0, i16::MAX),
    ];
    const OP: &[Field] = &[
        Field::new("key", Ty::String, 0, i16::MAX),
        Field::new("value", Ty::Float64, 0, i16::MAX),
        Field::new("remove", Ty::Bool, 0, i16::MAX),
    ];
    const ENTRY: &[Field] = &[
        Field::new("entity", Ty::Array(&Ty::Struct(ENTITY)), 0, i16::MAX),
        Field::new("ops", Ty::Array(&Ty::Struct(OP)), 0, i16::MAX),
    ];
    const REQUEST: &[Field] = &[
        Field::new("entries", Ty::Array(&Ty::Struct(ENTRY)), 0, i16::MAX),
        Field::new("validate_only", Ty::Bool, 0, i16::MAX),
    ];
}

/// envelope_request, api_key 58, version 0, flexible 0+: a request a broker forwards to the
/// active controller with the client's principal and address.
pub(super) mod envelope {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 58,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: REQUEST,
    };
    const REQUEST: &[Field] = &[
        Field::new("request_data", Ty::Bytes, 0, i16::MAX),
        Field::new("request_principal", Ty::NullableBytes, 0, i16::MAX),
        Field::new("client_host_address", Ty::Bytes, 0, i16::MAX),
    ];
}

// The controller APIs below are served on the CONTROLLER listener, not in the client-facing
// handler registry. All of them are flexible from v0 (compact lengths, tagged sections, request
// header v2), as kafka-protocol decodes them.

/// describe_quorum_request, api_key 55, versions 0-2, flexible 0+. v1 and v2 change only the
/// response; the request is the same in every version.
pub(super) mod describe_quorum {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 55,
        min_version: 0,
        max_version: 2,
        flexible_min: 0,
        body: DESCRIBE_QUORUM_REQUEST,
    };
    const DESCRIBE_QUORUM_REQUEST: &[Field] = &[Field::new(
        "topics",
        Ty::Array(&Ty::Struct(TOPIC_DATA)),
        0,
        i16::MAX,
    )];
    const TOPIC_DATA: &[Field] = &[
        Field::new("topic_name", Ty::String, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(PARTITION_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const PARTITION_DATA: &[Field] = &[Field::new("partition_index", Ty::Int32, 0, i16::MAX)];
}

/// fetch_snapshot_request, api_key 59, versions 0-1, flexible 0+. `cluster_id` is tagged
/// (tag 0) in the request; v1 adds the tagged `replica_directory_id` (tag 0) of a partition.
pub(super) mod fetch_snapshot {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 59,
        min_version: 0,
        max_version: 1,
        flexible_min: 0,
        body: FETCH_SNAPSHOT_REQUEST,
    };
    const FETCH_SNAPSHOT_REQUEST: &[Field] = &[
        Field::tagged("cluster_id", Ty::NullableString, 0, 0, i16::MAX),
        Field::new("replica_id", Ty::Int32, 0, i16::MAX),
        Field::new("max_bytes", Ty::Int32, 0, i16::MAX),
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(TOPIC_SNAPSHOT)),
            0,
            i16::MAX,
        ),
    ];
    const TOPIC_SNAPSHOT: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(PARTITION_SNAPSHOT)),
            0,
            i16::MAX,
        ),
    ];
    const PARTITION_SNAPSHOT: &[Field] = &[
        Field::new("partition", Ty::Int32, 0, i16::MAX),
        Field::new("current_leader_epoch", Ty::Int32, 0, i16::MAX),
        Field::new("snapshot_id", Ty::Struct(SNAPSHOT_ID), 0, i16::MAX),
        Field::new("position", Ty::Int64, 0, i16::MAX),
        Field::tagged("replica_directory_id", Ty::Uuid, 0, 1, i16::MAX),
    ];
    const SNAPSHOT_ID: &[Field] = &[
        Field::new("end_offset", Ty::Int64, 0, i16::MAX),
        Field::new("epoch", Ty::Int32, 0, i16::MAX),
    ];
}

/// alter_partition_request, api_key 56, versions 2-3 (kafka-protocol decodes no older one),
/// flexible 0+. v2 names the new ISR by broker id, v3 with each member's broker epoch.
pub(super) mod alter_partition {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 56,
        min_version: 2,
        max_version: 3,
        flexible_min: 0,
        body: ALTER_PARTITION_REQUEST,
    };
    const ALTER_PARTITION_REQUEST: &[Field] = &[
        Field::new("broker_id", Ty::Int32, 0, i16::MAX),
        Field::new("broker_epoch", Ty::Int64, 0, i16::MAX),
        Field::new("topics", Ty::Array(&Ty::Struct(TOPIC_DATA)), 0, i16::MAX),
    ];
    const TOPIC_DATA: &[Field] = &[
        Field::new("topic_id", Ty::Uuid, 2, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(PARTITION_DATA)),
            0,
            i16::MAX,
        ),
    ];
    const PARTITION_DATA: &[Field] = &[
        Field::new("partition_index", Ty::Int32, 0, i16::MAX),
        Field::new("leader_epoch", Ty::Int32, 0, i16::MAX),
        Field::new("new_isr", Ty::Array(&Ty::Int32), 0, 2),
        Field::new(
            "new_isr_with_epochs",
            Ty::Array(&Ty::Struct(BROKER_STATE)),
            3,
            i16::MAX,
        ),
        Field::new("leader_recovery_state", Ty::Int8, 1, i16::MAX),
        Field::new("partition_epoch", Ty::Int32, 0, i16::MAX),
    ];
    const BROKER_STATE: &[Field] = &[
        Field::new("broker_id", Ty::Int32, 3, i16::MAX),
        Field::new("broker_epoch", Ty::Int64, 3, i16::MAX),
    ];
}

/// broker_registration_request, api_key 62, versions 0-4, flexible 0+. `rack` is nullable;
/// a listener's `port` is an unsigned 16-bit integer; v4 adds no field.
pub(super) mod broker_registration {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 62,
        min_version: 0,
        max_version: 4,
        flexible_min: 0,
        body: BROKER_REGISTRATION_REQUEST,
    };
    const BROKER_REGISTRATION_REQUEST: &[Field] = &[
        Field::new("broker_id", Ty::Int32, 0, i16::MAX),
        Field::new("cluster_id", Ty::String, 0, i16::MAX),
        Field::new("incarnation_id", Ty::Uuid, 0, i16::MAX),
        Field::new("listeners", Ty::Array(&Ty::Struct(LISTENER)), 0, i16::MAX),
        Field::new("features", Ty::Array(&Ty::Struct(FEATURE)), 0, i16::MAX),
        Field::new("rack", Ty::NullableString, 0, i16::MAX),
        Field::new("is_migrating_zk_broker", Ty::Bool, 1, i16::MAX),
        Field::new("log_dirs", Ty::Array(&Ty::Uuid), 2, i16::MAX),
        Field::new("previous_broker_epoch", Ty::Int64, 3, i16::MAX),
    ];
    const LISTENER: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("host", Ty::String, 0, i16::MAX),
        Field::new("port", Ty::Uint16, 0, i16::MAX),
        Field::new("security_protocol", Ty::Int16, 0, i16::MAX),
    ];
    const FEATURE: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("min_supported_version", Ty::Int16, 0, i16::MAX),
        Field::new("max_supported_version", Ty::Int16, 0, i16::MAX),
    ];
}

/// broker_heartbeat_request, api_key 63, versions 0-1, flexible 0+. v1 adds the tagged field
/// `offline_log_dirs` (tag 0); kafka-protocol refuses tag 0 in v0, as the guard does.
pub(super) mod broker_heartbeat {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 63,
        min_version: 0,
        max_version: 1,
        flexible_min: 0,
        body: BROKER_HEARTBEAT_REQUEST,
    };
    const BROKER_HEARTBEAT_REQUEST: &[Field] = &[
        Field::new("broker_id", Ty::Int32, 0, i16::MAX),
        Field::new("broker_epoch", Ty::Int64, 0, i16::MAX),
        Field::new("current_metadata_offset", Ty::Int64, 0, i16::MAX),
        Field::new("want_fence", Ty::Bool, 0, i16::MAX),
        Field::new("want_shut_down", Ty::Bool, 0, i16::MAX),
        Field::tagged("offline_log_dirs", Ty::Array(&Ty::Uuid), 0, 1, i16::MAX),
    ];
}

/// unregister_broker_request, api_key 64, versions 0-0, flexible 0+.
pub(super) mod unregister_broker {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 64,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: UNREGISTER_BROKER_REQUEST,
    };
    const UNREGISTER_BROKER_REQUEST: &[Field] = &[Field::new("broker_id", Ty::Int32, 0, i16::MAX)];
}

/// allocate_producer_ids_request, api_key 67, versions 0-0, flexible 0+.
pub(super) mod allocate_producer_ids {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 67,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: ALLOCATE_PRODUCER_IDS_REQUEST,
    };
    const ALLOCATE_PRODUCER_IDS_REQUEST: &[Field] = &[
        Field::new("broker_id", Ty::Int32, 0, i16::MAX),
        Field::new("broker_epoch", Ty::Int64, 0, i16::MAX),
    ];
}

/// elect_leaders_request, api_key 43, versions 0-2, flexible 2+.
pub(super) mod elect_leaders {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 43,
        min_version: 0,
        max_version: 2,
        flexible_min: 2,
        body: ELECT_LEADERS_REQUEST,
    };
    const ELECT_LEADERS_REQUEST: &[Field] = &[
        Field::new("election_type", Ty::Int8, 1, i16::MAX),
        Field::new(
            "topic_partitions",
            Ty::NullableArray(&Ty::Struct(TOPIC_PARTITIONS)),
            0,
            i16::MAX,
        ),
        Field::new("timeout_ms", Ty::Int32, 0, i16::MAX),
    ];
    const TOPIC_PARTITIONS: &[Field] = &[
        Field::new("topic", Ty::String, 0, i16::MAX),
        Field::new("partitions", Ty::Array(&Ty::Int32), 0, i16::MAX),
    ];
}

/// add_partitions_to_txn_request, api_key 24, versions 0-5, flexible 3+ (v4+: the brokers'
/// batched form with `verify_only`).
pub(super) mod add_partitions_to_txn {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 24,
        min_version: 0,
        max_version: 5,
        flexible_min: 3,
        body: ADD_PARTITIONS_TO_TXN_REQUEST,
    };
    const ADD_PARTITIONS_TO_TXN_REQUEST: &[Field] = &[
        Field::new(
            "transactions",
            Ty::Array(&Ty::Struct(TRANSACTION)),
            4,
            i16::MAX,
        ),
        Field::new("v3_and_below_transactional_id", Ty::String, 0, 3),
        Field::new("v3_and_below_producer_id", Ty::Int64, 0, 3),
        Field::new("v3_and_below_producer_epoch", Ty::Int16, 0, 3),
        Field::new("v3_and_below_topics", Ty::Array(&Ty::Struct(TOPIC)), 0, 3),
    ];
    const TRANSACTION: &[Field] = &[
        Field::new("transactional_id", Ty::String, 4, i16::MAX),
        Field::new("producer_id", Ty::Int64, 4, i16::MAX),
        Field::new("producer_epoch", Ty::Int16, 4, i16::MAX),
        Field::new("verify_only", Ty::Bool, 4, i16::MAX),
        Field::new("topics", Ty::Array(&Ty::Struct(TOPIC)), 4, i16::MAX),
    ];
    const TOPIC: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("partitions", Ty::Array(&Ty::Int32), 0, i16::MAX),
    ];
}

/// add_offsets_to_txn_request, api_key 25, versions 0-4, flexible 3+.
pub(super) mod add_offsets_to_txn {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 25,
        min_version: 0,
        max_version: 4,
        flexible_min: 3,
        body: ADD_OFFSETS_TO_TXN_REQUEST,
    };
    const ADD_OFFSETS_TO_TXN_REQUEST: &[Field] = &[
        Field::new("transactional_id", Ty::String, 0, i16::MAX),
        Field::new("producer_id", Ty::Int64, 0, i16::MAX),
        Field::new("producer_epoch", Ty::Int16, 0, i16::MAX),
        Field::new("group_id", Ty::String, 0, i16::MAX),
    ];
}

/// txn_offset_commit_request, api_key 28, versions 0-5, flexible 3+.
pub(super) mod txn_offset_commit {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 28,
        min_version: 0,
        max_version: 5,
        flexible_min: 3,
        body: TXN_OFFSET_COMMIT_REQUEST,
    };
    const TXN_OFFSET_COMMIT_REQUEST: &[Field] = &[
        Field::new("transactional_id", Ty::String, 0, i16::MAX),
        Field::new("group_id", Ty::String, 0, i16::MAX),
        Field::new("producer_id", Ty::Int64, 0, i16::MAX),
        Field::new("producer_epoch", Ty::Int16, 0, i16::MAX),
        Field::new("generation_id", Ty::Int32, 3, i16::MAX),
        Field::new("member_id", Ty::String, 3, i16::MAX),
        Field::new("group_instance_id", Ty::NullableString, 3, i16::MAX),
        Field::new(
            "topics",
            Ty::Array(&Ty::Struct(TXN_OFFSET_COMMIT_REQUEST_TOPIC)),
            0,
            i16::MAX,
        ),
    ];
    const TXN_OFFSET_COMMIT_REQUEST_PARTITION: &[Field] = &[
        Field::new("partition_index", Ty::Int32, 0, i16::MAX),
        Field::new("committed_offset", Ty::Int64, 0, i16::MAX),
        Field::new("committed_leader_epoch", Ty::Int32, 2, i16::MAX),
        Field::new("committed_metadata", Ty::NullableString, 0, i16::MAX),
    ];
    const TXN_OFFSET_COMMIT_REQUEST_TOPIC: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new(
            "partitions",
            Ty::Array(&Ty::Struct(TXN_OFFSET_COMMIT_REQUEST_PARTITION)),
            0,
            i16::MAX,
        ),
    ];
}

/// describe_producers_request, api_key 61, version 0, flexible 0+.
pub(super) mod describe_producers {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 61,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: DESCRIBE_PRODUCERS_REQUEST,
    };
    const DESCRIBE_PRODUCERS_REQUEST: &[Field] = &[Field::new(
        "topics",
        Ty::Array(&Ty::Struct(TOPIC_REQUEST)),
        0,
        i16::MAX,
    )];
    const TOPIC_REQUEST: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("partition_indexes", Ty::Array(&Ty::Int32), 0, i16::MAX),
    ];
}

/// describe_transactions_request, api_key 65, version 0, flexible 0+.
pub(super) mod describe_transactions {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 65,
        min_version: 0,
        max_version: 0,
        flexible_min: 0,
        body: DESCRIBE_TRANSACTIONS_REQUEST,
    };
    const DESCRIBE_TRANSACTIONS_REQUEST: &[Field] = &[Field::new(
        "transactional_ids",
        Ty::Array(&Ty::String),
        0,
        i16::MAX,
    )];
}

/// list_transactions_request, api_key 66, versions 0-2, flexible 0+.
pub(super) mod list_transactions {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 66,
        min_version: 0,
        max_version: 2,
        flexible_min: 0,
        body: LIST_TRANSACTIONS_REQUEST,
    };
    const LIST_TRANSACTIONS_REQUEST: &[Field] = &[
        Field::new("state_filters", Ty::Array(&Ty::String), 0, i16::MAX),
        Field::new("producer_id_filters", Ty::Array(&Ty::Int64), 0, i16::MAX),
        Field::new("duration_filter", Ty::Int64, 1, i16::MAX),
        Field::new("transactional_id_pattern", Ty::NullableString, 2, i16::MAX),
    ];
}

/// end_txn_request, api_key 26, versions 0-5, flexible 3+.
pub(super) mod end_txn {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 26,
        min_version: 0,
        max_version: 5,
        flexible_min: 3,
        body: END_TXN_REQUEST,
    };
    const END_TXN_REQUEST: &[Field] = &[
        Field::new("transactional_id", Ty::String, 0, i16::MAX),
        Field::new("producer_id", Ty::Int64, 0, i16::MAX),
        Field::new("producer_epoch", Ty::Int16, 0, i16::MAX),
        Field::new("committed", Ty::Bool, 0, i16::MAX),
    ];
}

/// write_txn_markers_request, api_key 27, version 1 only (kafka-protocol 0.18 decodes no
/// other), flexible 1+.
pub(super) mod write_txn_markers {
    use super::*;
    pub(in super::super) const API: Api = Api {
        api_key: 27,
        min_version: 1,
        max_version: 1,
        flexible_min: 1,
        body: WRITE_TXN_MARKERS_REQUEST,
    };
    const WRITE_TXN_MARKERS_REQUEST: &[Field] = &[Field::new(
        "markers",
        Ty::Array(&Ty::Struct(MARKER)),
        0,
        i16::MAX,
    )];
    const MARKER: &[Field] = &[
        Field::new("producer_id", Ty::Int64, 0, i16::MAX),
        Field::new("producer_epoch", Ty::Int16, 0, i16::MAX),
        Field::new("transaction_result", Ty::Bool, 0, i16::MAX),
        Field::new("topics", Ty::Array(&Ty::Struct(TOPIC)), 0, i16::MAX),
        Field::new("coordinator_epoch", Ty::Int32, 0, i16::MAX),
    ];
    const TOPIC: &[Field] = &[
        Field::new("name", Ty::String, 0, i16::MAX),
        Field::new("partition_indexes", Ty::Array(&Ty::Int32), 0, i16::MAX),
    ];
}
