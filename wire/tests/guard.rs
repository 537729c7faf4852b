//! Tests for the request-body guard against kafka-protocol's own encoder and decoder.
//!
//! For every covered API and version: a request with nested arrays, strings, nullable fields
//! (both null and set) and unknown tagged fields is encoded by kafka-protocol; the guard must
//! accept it, kafka-protocol must decode it back equal, every strict prefix and the body with
//! one extra byte must be refused. The encodings then seed a mutation fuzzer.

mod guard_support;

use guard_support::*;
use kafka_protocol::messages::create_partitions_request::*;
use kafka_protocol::messages::create_topics_request::*;
use kafka_protocol::messages::delete_topics_request::*;
use kafka_protocol::messages::describe_configs_request::*;
use kafka_protocol::messages::fetch_request::*;
use kafka_protocol::messages::list_offsets_request::*;
use kafka_protocol::messages::metadata_request::*;
use kafka_protocol::messages::produce_request::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use millrace_wire::guard::{check_request_body, has_schema, GuardError};
use std::time::{Duration, Instant};

fn metadata(v: i16, null: bool) -> MetadataRequest {
    let mut req = MetadataRequest::default();
    if null && v >= 1 {
        req.topics = None;
    } else {
        let mut named = MetadataRequestTopic::default().with_name(Some(topic("orders")));
        let mut other = MetadataRequestTopic::default().with_name(Some(topic("päyments")));
        if v >= 10 {
            named.topic_id = uuid(1);
            other.topic_id = uuid(2);
            if null {
                other.name = None;
            }
        }
        named.unknown_tagged_fields = tags(v, 9);
        req.topics = Some(vec![named, other]);
    }
    if v >= 4 {
        req.allow_auto_topic_creation = false;
    }
    if (8..=10).contains(&v) {
        req.include_cluster_authorized_operations = true;
    }
    if v >= 8 {
        req.include_topic_authorized_operations = true;
    }
    req.with_unknown_tagged_fields(tags(v, 9))
}

fn produce(v: i16, null: bool) -> ProduceRequest {
    let records = |index: i32, data: Option<&'static [u8]>| {
        let mut p = PartitionProduceData::default().with_index(index);
        p.records = data.map(bytes::Bytes::from_static);
        p.with_unknown_tagged_fields(tags(v, 9))
    };
    let mut topic_data = TopicProduceData::default().with_partition_data(vec![
        records(0, Some(b"\x00\x01record-batch-bytes")),
        records(1, if null { None } else { Some(b"") }),
    ]);
    if v >= 13 {
        topic_data.topic_id = uuid(7);
    } else {
        topic_data.name = topic("orders");
    }
    let mut req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![topic_data.with_unknown_tagged_fields(tags(v, 9))]);
    if !null {
        req.transactional_id = Some(TransactionalId(s("tx-1")));
    }
    req.with_unknown_tagged_fields(tags(v, 9))
}

fn fetch(v: i16, null: bool) -> FetchRequest {
    let mut part = FetchPartition::default()
        .with_partition(3)
        .with_fetch_offset(1_000)
        .with_partition_max_bytes(1 << 20);
    if v >= 9 {
        part.current_leader_epoch = 5;
    }
    if v >= 12 {
        part.last_fetched_epoch = 4;
    }
    if v >= 5 {
        part.log_start_offset = 10;
    }
    if v >= 17 {
        part.replica_directory_id = uuid(9);
    }
    if v >= 18 {
        part.high_watermark = 999;
    }
    let mut topic_entry = FetchTopic::default().with_partitions(vec![
        part.clone().with_unknown_tagged_fields(tags(v, 12)),
        part.with_partition(4),
    ]);
    let mut forgotten = ForgottenTopic::default().with_partitions(vec![1, 2, 3]);
    if v >= 13 {
        topic_entry.topic_id = uuid(3);
        forgotten.topic_id = uuid(4);
    } else {
        topic_entry.topic = topic("orders");
        forgotten.topic = topic("old");
    }
    let mut req = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_isolation_level(1)
        .with_topics(vec![topic_entry.with_unknown_tagged_fields(tags(v, 12))]);
    if v <= 14 {
        req.replica_id = BrokerId(-1);
    } else {
        req.replica_state = ReplicaState::default()
            .with_replica_id(BrokerId(2))
            .with_replica_epoch(7);
    }
    if v >= 7 {
        req.session_id = 11;
        req.session_epoch = 2;
        req.forgotten_topics_data = vec![forgotten.with_unknown_tagged_fields(tags(v, 12))];
    }
    if v >= 11 {
        req.rack_id = s("rack-a");
    }
    if v >= 12 && !null {
        req.cluster_id = Some(s("cluster-1"));
    }
    req.with_unknown_tagged_fields(tags(v, 12))
}

fn list_offsets(v: i16, _null: bool) -> ListOffsetsRequest {
    let mut part = ListOffsetsPartition::default()
        .with_partition_index(2)
        .with_timestamp(-1);
    if v >= 4 {
        part.current_leader_epoch = 3;
    }
    let topic_entry = ListOffsetsTopic::default()
        .with_name(topic("orders"))
        .with_partitions(vec![part.with_unknown_tagged_fields(tags(v, 6))])
        .with_unknown_tagged_fields(tags(v, 6));
    let mut req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![topic_entry]);
    if v >= 2 {
        req.isolation_level = 1;
    }
    if v >= 10 {
        req.timeout_ms = 1_000;
    }
    req.with_unknown_tagged_fields(tags(v, 6))
}

fn create_topics(v: i16, null: bool) -> CreateTopicsRequest {
    let config = |name: &str, value: Option<&str>| {
        CreatableTopicConfig::default()
            .with_name(s(name))
            .with_value(value.map(s))
            .with_unknown_tagged_fields(tags(v, 5))
    };
    let topic_entry = CreatableTopic::default()
        .with_name(topic("orders"))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![CreatableReplicaAssignment::default()
            .with_partition_index(0)
            .with_broker_ids(vec![BrokerId(1), BrokerId(2)])
            .with_unknown_tagged_fields(tags(v, 5))])
        .with_configs(vec![
            config("cleanup.policy", Some("compact")),
            config("retention.ms", if null { None } else { Some("1000") }),
        ])
        .with_unknown_tagged_fields(tags(v, 5));
    CreateTopicsRequest::default()
        .with_topics(vec![topic_entry])
        .with_timeout_ms(5_000)
        .with_validate_only(true)
        .with_unknown_tagged_fields(tags(v, 5))
}

fn delete_topics(v: i16, null: bool) -> DeleteTopicsRequest {
    let mut req = DeleteTopicsRequest::default().with_timeout_ms(5_000);
    if v >= 6 {
        let by_name = DeleteTopicState::default().with_name(Some(topic("orders")));
        let by_id = DeleteTopicState::default()
            .with_name(if null { None } else { Some(topic("x")) })
            .with_topic_id(uuid(5))
            .with_unknown_tagged_fields(tags(v, 4));
        req.topics = vec![by_name, by_id];
    } else {
        req.topic_names = vec![topic("orders"), topic("payments")];
    }
    req.with_unknown_tagged_fields(tags(v, 4))
}

fn create_partitions(v: i16, null: bool) -> CreatePartitionsRequest {
    let assignment = CreatePartitionsAssignment::default()
        .with_broker_ids(vec![BrokerId(1), BrokerId(3)])
        .with_unknown_tagged_fields(tags(v, 2));
    let with_assignments = CreatePartitionsTopic::default()
        .with_name(topic("orders"))
        .with_count(6)
        .with_assignments(Some(vec![assignment.clone(), assignment]))
        .with_unknown_tagged_fields(tags(v, 2));
    let without = CreatePartitionsTopic::default()
        .with_name(topic("payments"))
        .with_count(3)
        .with_assignments(if null { None } else { Some(vec![]) });
    CreatePartitionsRequest::default()
        .with_topics(vec![with_assignments, without])
        .with_timeout_ms(5_000)
        .with_validate_only(false)
        .with_unknown_tagged_fields(tags(v, 2))
}

fn init_producer_id(v: i16, null: bool) -> InitProducerIdRequest {
    let mut req = InitProducerIdRequest::default().with_transaction_timeout_ms(60_000);
    if !null {
        req.transactional_id = Some(TransactionalId(s("tx-1")));
    }
    if v >= 3 {
        req.producer_id = ProducerId(42);
        req.producer_epoch = 3;
    }
    req.with_unknown_tagged_fields(tags(v, 2))
}

fn describe_configs(v: i16, null: bool) -> DescribeConfigsRequest {
    let resource = |name: &str, keys: Option<Vec<StrBytes>>| {
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(name))
            .with_configuration_keys(keys)
            .with_unknown_tagged_fields(tags(v, 4))
    };
    let mut req = DescribeConfigsRequest::default()
        .with_resources(vec![
            resource("orders", Some(vec![s("retention.ms"), s("cleanup.policy")])),
            resource("payments", if null { None } else { Some(vec![]) }),
        ])
        .with_include_synonyms(true);
    if v >= 3 {
        req.include_documentation = true;
    }
    req.with_unknown_tagged_fields(tags(v, 4))
}

fn describe_cluster(v: i16, _null: bool) -> DescribeClusterRequest {
    let mut req =
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    if v >= 1 {
        req.endpoint_type = 2;
    }
    if v >= 2 {
        req.include_fenced_brokers = true;
    }
    req.with_unknown_tagged_fields(tags(v, 0))
}

fn find_coordinator(v: i16, _null: bool) -> FindCoordinatorRequest {
    let mut req = FindCoordinatorRequest::default();
    if v <= 3 {
        req.key = s("group-1");
    } else {
        req.coordinator_keys = vec![s("group-1"), s("group-2")];
    }
    if v >= 1 {
        req.key_type = 1;
    }
    req.with_unknown_tagged_fields(tags(v, 3))
}

fn api_versions(v: i16, _null: bool) -> ApiVersionsRequest {
    let mut req = ApiVersionsRequest::default();
    if v >= 3 {
        req.client_software_name = s("millrace-test");
        req.client_software_version = s("0.1.0");
    }
    req.with_unknown_tagged_fields(tags(v, 3))
}

fn offset_commit(v: i16, null: bool) -> OffsetCommitRequest {
    use kafka_protocol::messages::offset_commit_request::*;
    let mut part = OffsetCommitRequestPartition::default()
        .with_partition_index(1)
        .with_committed_offset(77)
        .with_committed_metadata(if null { None } else { Some(s("meta")) })
        .with_unknown_tagged_fields(tags(v, 8));
    if v >= 6 {
        part.committed_leader_epoch = 4;
    }
    let topic_entry = OffsetCommitRequestTopic::default()
        .with_name(topic("orders"))
        .with_partitions(vec![part.clone(), part.with_partition_index(2)])
        .with_unknown_tagged_fields(tags(v, 8));
    let mut req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("group-1")))
        .with_generation_id_or_member_epoch(3)
        .with_member_id(s("member-1"))
        .with_topics(vec![topic_entry]);
    if v >= 7 && !null {
        req.group_instance_id = Some(s("instance-1"));
    }
    if v <= 4 {
        req.retention_time_ms = 86_400_000;
    }
    req.with_unknown_tagged_fields(tags(v, 8))
}

fn offset_fetch(v: i16, null: bool) -> OffsetFetchRequest {
    use kafka_protocol::messages::offset_fetch_request::*;
    let mut req = OffsetFetchRequest::default();
    if v <= 7 {
        req.group_id = GroupId(s("group-1"));
        req.topics = if null && v >= 2 {
            None
        } else {
            Some(vec![OffsetFetchRequestTopic::default()
                .with_name(topic("orders"))
                .with_partition_indexes(vec![0, 1, 2])
                .with_unknown_tagged_fields(tags(v, 6))])
        };
    } else {
        let mut group = OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("group-1")))
            .with_topics(if null {
                None
            } else {
                Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(topic("orders"))
                    .with_partition_indexes(vec![0, 1])
                    .with_unknown_tagged_fields(tags(v, 6))])
            })
            .with_unknown_tagged_fields(tags(v, 6));
        if v >= 9 {
            group.member_id = if null { None } else { Some(s("member-1")) };
            group.member_epoch = 5;
        }
        let all = OffsetFetchRequestGroup::default().with_group_id(GroupId(s("group-2")));
        req.groups = vec![group, all];
    }
    if v >= 7 {
        req.require_stable = true;
    }
    req.with_unknown_tagged_fields(tags(v, 6))
}

fn join_group(v: i16, null: bool) -> JoinGroupRequest {
    use kafka_protocol::messages::join_group_request::*;
    let protocol = |name: &str, meta: &'static [u8]| {
        JoinGroupRequestProtocol::default()
            .with_name(s(name))
            .with_metadata(bytes::Bytes::from_static(meta))
            .with_unknown_tagged_fields(tags(v, 6))
    };
    let mut req = JoinGroupRequest::default()
        .with_group_id(GroupId(s("group-1")))
        .with_session_timeout_ms(10_000)
        .with_member_id(s("member-1"))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            protocol("range", b"\x00\x01meta"),
            protocol("sticky", b""),
        ]);
    if v >= 1 {
        req.rebalance_timeout_ms = 30_000;
    }
    if v >= 5 && !null {
        req.group_instance_id = Some(s("instance-1"));
    }
    if v >= 8 && !null {
        req.reason = Some(s("rejoin"));
    }
    req.with_unknown_tagged_fields(tags(v, 6))
}

fn heartbeat(v: i16, null: bool) -> HeartbeatRequest {
    let mut req = HeartbeatRequest::default()
        .with_group_id(GroupId(s("group-1")))
        .with_generation_id(3)
        .with_member_id(s("member-1"));
    if v >= 3 && !null {
        req.group_instance_id = Some(s("instance-1"));
    }
    req.with_unknown_tagged_fields(tags(v, 4))
}

fn leave_group(v: i16, null: bool) -> LeaveGroupRequest {
    use kafka_protocol::messages::leave_group_request::*;
    let mut req = LeaveGroupRequest::default().with_group_id(GroupId(s("group-1")));
    if v <= 2 {
        req.member_id = s("member-1");
    } else {
        let mut member = MemberIdentity::default()
            .with_member_id(s("member-1"))
            .with_group_instance_id(if null { None } else { Some(s("instance-1")) })
            .with_unknown_tagged_fields(tags(v, 4));
        if v >= 5 && !null {
            member.reason = Some(s("shutdown"));
        }
        req.members = vec![
            member,
            MemberIdentity::default().with_member_id(s("member-2")),
        ];
    }
    req.with_unknown_tagged_fields(tags(v, 4))
}

fn sync_group(v: i16, null: bool) -> SyncGroupRequest {
    use kafka_protocol::messages::sync_group_request::*;
    let assignment = |member: &str, data: &'static [u8]| {
        SyncGroupRequestAssignment::default()
            .with_member_id(s(member))
            .with_assignment(bytes::Bytes::from_static(data))
            .with_unknown_tagged_fields(tags(v, 4))
    };
    let mut req = SyncGroupRequest::default()
        .with_group_id(GroupId(s("group-1")))
        .with_generation_id(3)
        .with_member_id(s("member-1"))
        .with_assignments(vec![
            assignment("member-1", b"\x00\x01a"),
            assignment("m2", b""),
        ]);
    if v >= 3 && !null {
        req.group_instance_id = Some(s("instance-1"));
    }
    if v >= 5 && !null {
        req.protocol_type = Some(s("consumer"));
        req.protocol_name = Some(s("range"));
    }
    req.with_unknown_tagged_fields(tags(v, 4))
}

fn describe_groups(v: i16, _null: bool) -> DescribeGroupsRequest {
    let mut req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(s("group-1")), GroupId(s("group-2"))]);
    if v >= 3 {
        req.include_authorized_operations = true;
    }
    req.with_unknown_tagged_fields(tags(v, 5))
}

fn list_groups(v: i16, _null: bool) -> ListGroupsRequest {
    let mut req = ListGroupsRequest::default();
    if v >= 4 {
        req.states_filter = vec![s("Stable"), s("Empty")];
    }
    if v >= 5 {
        req.types_filter = vec![s("consumer")];
    }
    req.with_unknown_tagged_fields(tags(v, 3))
}

fn delete_groups(v: i16, _null: bool) -> DeleteGroupsRequest {
    DeleteGroupsRequest::default()
        .with_groups_names(vec![GroupId(s("group-1")), GroupId(s("group-2"))])
        .with_unknown_tagged_fields(tags(v, 2))
}

fn offset_delete(_v: i16, _null: bool) -> OffsetDeleteRequest {
    use kafka_protocol::messages::offset_delete_request::*;
    let part = |index: i32| OffsetDeleteRequestPartition::default().with_partition_index(index);
    OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("group-1")))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(topic("orders"))
            .with_partitions(vec![part(0), part(1)])])
}

fn consumer_group_heartbeat(v: i16, null: bool) -> ConsumerGroupHeartbeatRequest {
    use kafka_protocol::messages::consumer_group_heartbeat_request::*;
    let set = |text: &str| if null { None } else { Some(s(text)) };
    let mut req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("group-1")))
        .with_member_id(s("member-1"))
        .with_member_epoch(2)
        .with_instance_id(set("instance-1"))
        .with_rack_id(set("rack-a"))
        .with_rebalance_timeout_ms(30_000)
        .with_server_assignor(set("uniform"));
    if !null {
        req.subscribed_topic_names = Some(vec![topic("orders"), topic("payments")]);
        req.topic_partitions = Some(vec![TopicPartitions::default()
            .with_topic_id(uuid(6))
            .with_partitions(vec![0, 1])
            .with_unknown_tagged_fields(tags(v, 0))]);
    }
    if v >= 1 {
        req.subscribed_topic_regex = set("orders-.*");
    }
    req.with_unknown_tagged_fields(tags(v, 0))
}

fn consumer_group_describe(v: i16, _null: bool) -> ConsumerGroupDescribeRequest {
    ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(s("group-1"))])
        .with_include_authorized_operations(true)
        .with_unknown_tagged_fields(tags(v, 0))
}

fn alter_configs(v: i16, null: bool) -> AlterConfigsRequest {
    use kafka_protocol::messages::alter_configs_request::*;
    let config = |name: &str, value: Option<&str>| {
        AlterableConfig::default()
            .with_name(s(name))
            .with_value(value.map(s))
            .with_unknown_tagged_fields(tags(v, 2))
    };
    let resource = AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s("orders"))
        .with_configs(vec![
            config("retention.ms", Some("1000")),
            config("cleanup.policy", if null { None } else { Some("compact") }),
        ])
        .with_unknown_tagged_fields(tags(v, 2));
    AlterConfigsRequest::default()
        .with_resources(vec![resource])
        .with_validate_only(true)
        .with_unknown_tagged_fields(tags(v, 2))
}

fn incremental_alter_configs(v: i16, null: bool) -> IncrementalAlterConfigsRequest {
    use kafka_protocol::messages::incremental_alter_configs_request::*;
    let config = |name: &str, op: i8, value: Option<&str>| {
        AlterableConfig::default()
            .with_name(s(name))
            .with_config_operation(op)
            .with_value(value.map(s))
            .with_unknown_tagged_fields(tags(v, 1))
    };
    let resource = AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s("orders"))
        .with_configs(vec![
            config("retention.ms", 0, Some("1000")),
            config(
                "cleanup.policy",
                1,
                if null { None } else { Some("compact") },
            ),
        ])
        .with_unknown_tagged_fields(tags(v, 1));
    IncrementalAlterConfigsRequest::default()
        .with_resources(vec![resource])
        .with_validate_only(false)
        .with_unknown_tagged_fields(tags(v, 1))
}

fn delete_records(v: i16, _null: bool) -> DeleteRecordsRequest {
    use kafka_protocol::messages::delete_records_request::*;
    let part = |index: i32, offset: i64| {
        DeleteRecordsPartition::default()
            .with_partition_index(index)
            .with_offset(offset)
            .with_unknown_tagged_fields(tags(v, 2))
    };
    DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic("orders"))
            .with_partitions(vec![part(0, 10), part(1, -1)])
            .with_unknown_tagged_fields(tags(v, 2))])
        .with_timeout_ms(5_000)
        .with_unknown_tagged_fields(tags(v, 2))
}

fn sasl_authenticate(_v: i16, _null: bool) -> SaslAuthenticateRequest {
    SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from_static(
        b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL",
    ))
}

fn describe_user_scram_credentials(_v: i16, null: bool) -> DescribeUserScramCredentialsRequest {
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    DescribeUserScramCredentialsRequest::default()
        .with_users((!null).then(|| vec![UserName::default().with_name(s("alice"))]))
}

fn alter_user_scram_credentials(_v: i16, _null: bool) -> AlterUserScramCredentialsRequest {
    use kafka_protocol::messages::alter_user_scram_credentials_request::*;
    AlterUserScramCredentialsRequest::default()
        .with_deletions(vec![ScramCredentialDeletion::default()
            .with_name(s("bob"))
            .with_mechanism(1)])
        .with_upsertions(vec![ScramCredentialUpsertion::default()
            .with_name(s("alice"))
            .with_mechanism(2)
            .with_iterations(8192)
            .with_salt(bytes::Bytes::from_static(b"salt"))
            .with_salted_password(bytes::Bytes::from_static(&[7; 64]))])
}

fn describe_acls(v: i16, null: bool) -> DescribeAclsRequest {
    let name = |n: &str| (!null).then(|| s(n));
    DescribeAclsRequest::default()
        .with_resource_type_filter(2)
        .with_resource_name_filter(name("orders"))
        .with_pattern_type_filter(2)
        .with_principal_filter(name("User:alice"))
        .with_host_filter(name("*"))
        .with_operation(3)
        .with_permission_type(3)
        .with_unknown_tagged_fields(tags(v, 2))
}

fn create_acls(v: i16, _null: bool) -> CreateAclsRequest {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    let creation = |name: &str| {
        AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s(name))
            .with_resource_pattern_type(4)
            .with_principal(s("User:alice"))
            .with_host(s("*"))
            .with_operation(4)
            .with_permission_type(3)
            .with_unknown_tagged_fields(tags(v, 2))
    };
    CreateAclsRequest::default()
        .with_creations(vec![creation("orders"), creation("pay-")])
        .with_unknown_tagged_fields(tags(v, 2))
}

fn delete_acls(v: i16, null: bool) -> DeleteAclsRequest {
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter((!null).then(|| s("orders")))
        .with_pattern_type_filter(1)
        .with_principal_filter((!null).then(|| s("User:bob")))
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1)
        .with_unknown_tagged_fields(tags(v, 2));
    DeleteAclsRequest::default()
        .with_filters(vec![filter.clone(), filter])
        .with_unknown_tagged_fields(tags(v, 2))
}

fn describe_client_quotas(v: i16, null: bool) -> DescribeClientQuotasRequest {
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
    DescribeClientQuotasRequest::default()
        .with_components(vec![ComponentData::default()
            .with_entity_type(s("user"))
            .with_match_type(0)
            .with_match((!null).then(|| s("alice")))
            .with_unknown_tagged_fields(tags(v, 1))])
        .with_strict(true)
        .with_unknown_tagged_fields(tags(v, 1))
}

fn alter_client_quotas(v: i16, null: bool) -> AlterClientQuotasRequest {
    use kafka_protocol::messages::alter_client_quotas_request::*;
    AlterClientQuotasRequest::default()
        .with_entries(vec![EntryData::default()
            .with_entity(vec![EntityData::default()
                .with_entity_type(s("client-id"))
                .with_entity_name((!null).then(|| s("app")))
                .with_unknown_tagged_fields(tags(v, 1))])
            .with_ops(vec![OpData::default()
                .with_key(s("producer_byte_rate"))
                .with_value(1048576.0)
                .with_remove(false)
                .with_unknown_tagged_fields(tags(v, 1))])
            .with_unknown_tagged_fields(tags(v, 1))])
        .with_validate_only(true)
        .with_unknown_tagged_fields(tags(v, 1))
}

fn envelope(v: i16, null: bool) -> EnvelopeRequest {
    EnvelopeRequest::default()
        .with_request_data(bytes::Bytes::from_static(b"\x00\x13\x00\x07inner"))
        .with_request_principal((!null).then(|| bytes::Bytes::from_static(b"\x00\x00p")))
        .with_client_host_address(bytes::Bytes::from_static(&[127, 0, 0, 1]))
        .with_unknown_tagged_fields(tags(v, 0))
}

fn sasl_handshake(_v: i16, _null: bool) -> SaslHandshakeRequest {
    SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-512"))
}

fn describe_quorum(v: i16, _null: bool) -> DescribeQuorumRequest {
    use kafka_protocol::messages::describe_quorum_request::*;
    let part = |index: i32| {
        PartitionData::default()
            .with_partition_index(index)
            .with_unknown_tagged_fields(tags(v, 0))
    };
    DescribeQuorumRequest::default()
        .with_topics(vec![
            TopicData::default()
                .with_topic_name(topic("__cluster_metadata"))
                .with_partitions(vec![part(0), part(1)])
                .with_unknown_tagged_fields(tags(v, 0)),
            TopicData::default().with_topic_name(topic("empty")),
        ])
        .with_unknown_tagged_fields(tags(v, 0))
}

fn fetch_snapshot(v: i16, null: bool) -> FetchSnapshotRequest {
    use kafka_protocol::messages::fetch_snapshot_request::*;
    let part = |index: i32| {
        let mut p = PartitionSnapshot::default()
            .with_partition(index)
            .with_current_leader_epoch(7)
            .with_snapshot_id(SnapshotId::default().with_end_offset(1234).with_epoch(6))
            .with_position(4096)
            .with_unknown_tagged_fields(tags(v, 0));
        if v >= 1 {
            p = p.with_replica_directory_id(uuid(0x5678));
        }
        p
    };
    FetchSnapshotRequest::default()
        .with_cluster_id((!null).then(|| s("cluster-a")))
        .with_replica_id(BrokerId(3))
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            TopicSnapshot::default()
                .with_name(topic("__cluster_metadata"))
                .with_partitions(vec![part(0), part(1)])
                .with_unknown_tagged_fields(tags(v, 0)),
            TopicSnapshot::default().with_name(topic("empty")),
        ])
        .with_unknown_tagged_fields(tags(v, 0))
}

fn alter_partition(v: i16, _null: bool) -> AlterPartitionRequest {
    use kafka_protocol::messages::alter_partition_request::*;
    let part = |index: i32| {
        let mut p = PartitionData::default()
            .with_partition_index(index)
            .with_leader_epoch(4)
            .with_leader_recovery_state(0)
            .with_partition_epoch(9)
            .with_unknown_tagged_fields(tags(v, 0));
        if v >= 3 {
            p = p.with_new_isr_with_epochs(vec![
                BrokerState::default()
                    .with_broker_id(BrokerId(1))
                    .with_broker_epoch(77),
                BrokerState::default()
                    .with_broker_id(BrokerId(2))
                    .with_broker_epoch(78)
                    .with_unknown_tagged_fields(tags(v, 0)),
            ]);
        } else {
            p = p.with_new_isr(vec![BrokerId(1), BrokerId(2)]);
        }
        p
    };
    AlterPartitionRequest::default()
        .with_broker_id(BrokerId(1))
        .with_broker_epoch(77)
        .with_topics(vec![
            TopicData::default()
                .with_topic_id(uuid(0x42))
                .with_partitions(vec![part(0), part(3)])
                .with_unknown_tagged_fields(tags(v, 0)),
            TopicData::default().with_topic_id(uuid(0x43)),
        ])
        .with_unknown_tagged_fields(tags(v, 0))
}

fn broker_registration(v: i16, null: bool) -> BrokerRegistrationRequest {
    use kafka_protocol::messages::broker_registration_request::*;
    let listener = |name: &str, port: u16| {
        Listener::default()
            .with_name(s(name))
            .with_host(s("broker-1.example"))
            .with_port(port)
            .with_security_protocol(1)
            .with_unknown_tagged_fields(tags(v, 0))
    };
    let mut req = BrokerRegistrationRequest::default()
        .with_broker_id(BrokerId(3))
        .with_cluster_id(s("MkU3OEVBNTcwNTJENDM2Qg"))
        .with_incarnation_id(uuid(8))
        // 65535 checks that the port is unsigned on both sides.
        .with_listeners(vec![listener("PLAINTEXT", 9092), listener("SSL", 65535)])
        .with_features(vec![Feature::default()
            .with_name(s("metadata.version"))
            .with_min_supported_version(7)
            .with_max_supported_version(27)
            .with_unknown_tagged_fields(tags(v, 0))])
        .with_rack(if null { None } else { Some(s("rack-a")) });
    if v >= 1 {
        req.is_migrating_zk_broker = true;
    }
    if v >= 2 {
        req.log_dirs = vec![uuid(10), uuid(11)];
    }
    if v >= 3 {
        req.previous_broker_epoch = 41;
    }
    req.with_unknown_tagged_fields(tags(v, 0))
}

fn broker_heartbeat(v: i16, null: bool) -> BrokerHeartbeatRequest {
    let mut req = BrokerHeartbeatRequest::default()
        .with_broker_id(BrokerId(3))
        .with_broker_epoch(41)
        .with_current_metadata_offset(1_234)
        .with_want_fence(false)
        .with_want_shut_down(true);
    if v >= 1 && !null {
        // Tag 0 (offline_log_dirs) is written only when not empty.
        req.offline_log_dirs = vec![uuid(12), uuid(13)];
    }
    req.with_unknown_tagged_fields(tags(v, 0))
}

fn unregister_broker(v: i16, _null: bool) -> UnregisterBrokerRequest {
    UnregisterBrokerRequest::default()
        .with_broker_id(BrokerId(3))
        .with_unknown_tagged_fields(tags(v, 0))
}

fn allocate_producer_ids(v: i16, _null: bool) -> AllocateProducerIdsRequest {
    AllocateProducerIdsRequest::default()
        .with_broker_id(BrokerId(3))
        .with_broker_epoch(41)
        .with_unknown_tagged_fields(tags(v, 0))
}

fn elect_leaders(v: i16, null: bool) -> ElectLeadersRequest {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    let mut r = ElectLeadersRequest::default()
        .with_topic_partitions((!null).then(|| {
            vec![
                TopicPartitions::default()
                    .with_topic(topic("orders"))
                    .with_partitions(vec![0, 2, 5])
                    .with_unknown_tagged_fields(tags(v, 2)),
                TopicPartitions::default().with_topic(topic("empty")),
            ]
        }))
        .with_timeout_ms(30_000)
        .with_unknown_tagged_fields(tags(v, 2));
    if v >= 1 {
        r = r.with_election_type(1);
    }
    r
}

fn initialize_share_group_state(v: i16, _null: bool) -> InitializeShareGroupStateRequest {
    use kafka_protocol::messages::initialize_share_group_state_request::*;
    let part = |p: i32, start: i64| {
        PartitionData::default()
            .with_partition(p)
            .with_state_epoch(3)
            .with_start_offset(start)
            .with_unknown_tagged_fields(tags(v, 0))
    };
    InitializeShareGroupStateRequest::default()
        .with_group_id(s("share-1"))
        .with_topics(vec![InitializeStateData::default()
            .with_topic_id(uuid(21))
            .with_partitions(vec![part(0, -1), part(4, 1_000)])
            .with_unknown_tagged_fields(tags(v, 0))])
        .with_unknown_tagged_fields(tags(v, 0))
}

fn read_share_group_state(v: i16, _null: bool) -> ReadShareGroupStateRequest {
    use kafka_protocol::messages::read_share_group_state_request::*;
    let part = |p: i32| {
        PartitionData::default()
            .with_partition(p)
            .with_leader_epoch(7)
            .with_unknown_tagged_fields(tags(v, 0))
    };
    ReadShareGroupStateRequest::default()
        .with_group_id(s("share-1"))
        .with_topics(vec![
            ReadStateData::default()
                .with_topic_id(uuid(22))
                .with_partitions(vec![part(0), part(1)])
                .with_unknown_tagged_fields(tags(v, 0)),
            ReadStateData::default().with_topic_id(uuid(23)),
        ])
        .with_unknown_tagged_fields(tags(v, 0))
}

fn write_share_group_state(v: i16, _null: bool) -> WriteShareGroupStateRequest {
    use kafka_protocol::messages::write_share_group_state_request::*;
    let batch = |first: i64, state: i8| {
        StateBatch::default()
            .with_first_offset(first)
            .with_last_offset(first + 9)
            .with_delivery_state(state)
            .with_delivery_count(2)
            .with_unknown_tagged_fields(tags(v, 0))
    };
    let part = PartitionData::default()
        .with_partition(2)
        .with_state_epoch(1)
        .with_leader_epoch(5)
        .with_start_offset(100)
        .with_state_batches(vec![batch(100, 0), batch(110, 2), batch(120, 4)])
        .with_unknown_tagged_fields(tags(v, 0));
    WriteShareGroupStateRequest::default()
        .with_group_id(s("share-1"))
        .with_topics(vec![WriteStateData::default()
            .with_topic_id(uuid(24))
            .with_partitions(vec![part, PartitionData::default().with_start_offset(-1)])
            .with_unknown_tagged_fields(tags(v, 0))])
        .with_unknown_tagged_fields(tags(v, 0))
}

fn delete_share_group_state(v: i16, _null: bool) -> DeleteShareGroupStateRequest {
    use kafka_protocol::messages::delete_share_group_state_request::*;
    let part = |p: i32| {
        PartitionData::default()
            .with_partition(p)
            .with_unknown_tagged_fields(tags(v, 0))
    };
    DeleteShareGroupStateRequest::default()
        .with_group_id(s("share-1"))
        .with_topics(vec![DeleteStateData::default()
            .with_topic_id(uuid(25))
            .with_partitions(vec![part(0), part(3)])
            .with_unknown_tagged_fields(tags(v, 0))])
        .with_unknown_tagged_fields(tags(v, 0))
}

fn read_share_group_state_summary(v: i16, _null: bool) -> ReadShareGroupStateSummaryRequest {
    use kafka_protocol::messages::read_share_group_state_summary_request::*;
    let part = |p: i32| {
        PartitionData::default()
            .with_partition(p)
            .with_leader_epoch(-1)
            .with_unknown_tagged_fields(tags(v, 0))
    };
    ReadShareGroupStateSummaryRequest::default()
        .with_group_id(s("share-1"))
        .with_topics(vec![ReadStateSummaryData::default()
            .with_topic_id(uuid(26))
            .with_partitions(vec![part(0), part(1)])
            .with_unknown_tagged_fields(tags(v, 0))])
        .with_unknown_tagged_fields(tags(v, 0))
}

/// Every covered API: key and the encodings of its sample requests at every version.
fn corpus() -> Vec<ApiCorpus> {
    vec![
        cases(18, api_versions),
        cases(3, metadata),
        cases(0, produce),
        cases(1, fetch),
        cases(2, list_offsets),
        cases(19, create_topics),
        cases(20, delete_topics),
        cases(37, create_partitions),
        cases(22, init_producer_id),
        cases(32, describe_configs),
        cases(60, describe_cluster),
        cases(10, find_coordinator),
        cases(8, offset_commit),
        cases(9, offset_fetch),
        cases(11, join_group),
        cases(12, heartbeat),
        cases(13, leave_group),
        cases(14, sync_group),
        cases(15, describe_groups),
        cases(16, list_groups),
        cases(42, delete_groups),
        cases(47, offset_delete),
        cases(68, consumer_group_heartbeat),
        cases(69, consumer_group_describe),
        cases(33, alter_configs),
        cases(44, incremental_alter_configs),
        cases(21, delete_records),
        cases(17, sasl_handshake),
        cases(36, sasl_authenticate),
        cases(50, describe_user_scram_credentials),
        cases(51, alter_user_scram_credentials),
        cases(29, describe_acls),
        cases(30, create_acls),
        cases(31, delete_acls),
        cases(48, describe_client_quotas),
        cases(49, alter_client_quotas),
        cases(58, envelope),
        cases(55, describe_quorum),
        cases(59, fetch_snapshot),
        cases(56, alter_partition),
        cases(62, broker_registration),
        cases(63, broker_heartbeat),
        cases(64, unregister_broker),
        cases(67, allocate_producer_ids),
        cases(43, elect_leaders),
        cases(83, initialize_share_group_state),
        cases(84, read_share_group_state),
        cases(85, write_share_group_state),
        cases(86, delete_share_group_state),
        cases(87, read_share_group_state_summary),
    ]
}

#[test]
fn every_version_round_trips_and_every_prefix_is_refused() {
    for api in corpus() {
        for case in &api.cases {
            let body = &case.body[..];
            let what = format!("api {} v{} {}", api.api_key, case.version, case.label);
            assert_eq!(
                check_request_body(api.api_key, case.version, body),
                Ok(()),
                "{what}"
            );
            for len in 0..body.len() {
                assert!(
                    check_request_body(api.api_key, case.version, &body[..len]).is_err(),
                    "{what}: prefix of {len} bytes accepted"
                );
            }
            let mut longer = body.to_vec();
            longer.push(0);
            assert_eq!(
                check_request_body(api.api_key, case.version, &longer),
                Err(GuardError::TrailingBytes { at: body.len() }),
                "{what}"
            );
        }
    }
}

#[test]
fn schemas_cover_exactly_kafka_protocol_versions() {
    for api in corpus() {
        for v in api.min_version..=api.max_version {
            assert!(has_schema(api.api_key, v), "api {} v{v}", api.api_key);
        }
        assert!(
            !has_schema(api.api_key, api.min_version - 1),
            "api {}",
            api.api_key
        );
        assert!(
            !has_schema(api.api_key, api.max_version + 1),
            "api {}",
            api.api_key
        );
        assert_eq!(
            check_request_body(api.api_key, api.max_version + 1, &[]),
            Err(GuardError::UnknownApi {
                api_key: api.api_key,
                api_version: api.max_version + 1
            })
        );
    }
    assert!(!has_schema(-1, 0));
    assert!(!has_schema(i16::MAX, 0));
}

/// Asserts the guard refuses `body` with `BadLength` at `at`, and quickly.
fn assert_refused_quickly(api_key: i16, version: i16, body: &[u8], at: usize) {
    let start = Instant::now();
    let result = check_request_body(api_key, version, body);
    assert!(
        matches!(result, Err(GuardError::BadLength { at: a, .. }) if a == at),
        "api {api_key} v{version}: {result:?}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "api {api_key} v{version} slow"
    );
}

#[test]
fn huge_metadata_topic_count_is_refused() {
    for v in 0..=8 {
        assert_refused_quickly(3, v, &[0x7f, 0xff, 0xff, 0xff], 0);
        // Seven bytes as sent on the wire after a minimal header: count plus the booleans.
        assert_refused_quickly(3, v, &[0x7f, 0xff, 0xff, 0xff, 1, 0, 0], 0);
    }
    for v in 9..=13 {
        // Compact count u32::MAX - 1 elements, and i32::MAX elements.
        assert_refused_quickly(3, v, &[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0, 0], 0);
        assert_refused_quickly(3, v, &[0x80, 0x80, 0x80, 0x80, 0x08, 1, 0, 0], 0);
    }
}

#[test]
fn huge_produce_topic_count_is_refused() {
    for v in 3..=8 {
        // transactional_id null, acks, timeout_ms, then the topic count.
        let mut body = vec![0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30];
        body.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        assert_refused_quickly(0, v, &body, 8);
    }
    for v in 9..=13 {
        let body = [
            0x00, 0, 1, 0, 0, 0x75, 0x30, 0xff, 0xff, 0xff, 0xff, 0x07, 0,
        ];
        assert_refused_quickly(0, v, &body, 7);
    }
}

#[test]
fn huge_fetch_counts_are_refused() {
    // Fetch v4: replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level, topics.
    let head = [
        0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0xf4, 0, 0, 0, 1, 0, 0x10, 0, 0, 0,
    ];
    let mut topics = head.to_vec();
    topics.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
    assert_refused_quickly(1, 4, &topics, head.len());
    // One topic named "t" declaring i32::MAX partitions.
    let mut partitions = head.to_vec();
    partitions.extend_from_slice(&[0, 0, 0, 1, 0, 1, b't', 0x7f, 0xff, 0xff, 0xff]);
    assert_refused_quickly(1, 4, &partitions, head.len() + 7);
    // A negative count other than -1 is refused even where -1 would be.
    let mut negative = head.to_vec();
    negative.extend_from_slice(&[0x80, 0, 0, 0]);
    assert_refused_quickly(1, 4, &negative, head.len());
}

#[test]
fn overlong_varints_are_refused() {
    // DescribeCluster v0 is flexible from v0: bool, then the tagged-field count varint.
    assert_eq!(check_request_body(60, 0, &[1, 0]), Ok(()));
    let sixth = [1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
    assert_eq!(
        check_request_body(60, 0, &sixth),
        Err(GuardError::BadVarint { at: 1 })
    );
    let overflow = [1, 0x80, 0x80, 0x80, 0x80, 0x10];
    assert_eq!(
        check_request_body(60, 0, &overflow),
        Err(GuardError::BadVarint { at: 1 })
    );
    // A padded but in-range varint (zero, five bytes) is accepted, as Kafka accepts it.
    assert_eq!(
        check_request_body(60, 0, &[1, 0x80, 0x80, 0x80, 0x80, 0x00]),
        Ok(())
    );
}

#[test]
fn tagged_fields_are_checked_against_their_size() {
    // DescribeCluster v0: one unknown tag 5 of 3 bytes, then a size larger than what is left.
    assert_eq!(check_request_body(60, 0, &[1, 1, 5, 3, 9, 9, 9]), Ok(()));
    assert_eq!(
        check_request_body(60, 0, &[1, 1, 5, 4, 9, 9, 9]),
        Err(GuardError::BadLength { at: 3, declared: 4 })
    );
    // Tagged-field count larger than the bytes left could hold.
    assert_eq!(
        check_request_body(60, 0, &[1, 3, 5, 0]),
        Err(GuardError::BadLength { at: 1, declared: 3 })
    );
    // Fetch v12 top level: cluster_id (tag 0) whose content is shorter than its size.
    let mut req = fetch(12, false);
    req.unknown_tagged_fields.clear();
    let body = encode(&req, 12);
    // The body ends with: count=1, tag=0, size=10, compact string "cluster-1" (10 bytes).
    let n = body.len();
    assert_eq!(&body[n - 13..n - 10], &[1, 0, 10]);
    let mut wrong = body.clone();
    wrong[n - 11] = 11; // size says 11, content is 10
    wrong.push(0);
    assert!(matches!(
        check_request_body(1, 12, &wrong),
        Err(GuardError::BadTaggedField { tag: 0, .. })
    ));
    // Fetch tag 1 (replica_state) only exists from v15.
    let mut early = body[..n - 13].to_vec();
    early.extend_from_slice(&[1, 1, 13]);
    early.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7, 0]);
    assert!(matches!(
        check_request_body(1, 12, &early),
        Err(GuardError::BadTaggedField { tag: 1, .. })
    ));
}

#[test]
fn invalid_utf8_and_null_where_not_nullable_are_refused() {
    // FindCoordinator v0 is a single int16-length string.
    assert_eq!(check_request_body(10, 0, &[0, 2, b'o', b'k']), Ok(()));
    assert_eq!(
        check_request_body(10, 0, &[0, 2, 0xc3, 0x28]),
        Err(GuardError::InvalidUtf8 { at: 0 })
    );
    assert_eq!(
        check_request_body(10, 0, &[0xff, 0xff]),
        Err(GuardError::BadLength {
            at: 0,
            declared: -1
        })
    );
    assert_eq!(
        check_request_body(10, 0, &[0x80, 0x00]),
        Err(GuardError::BadLength {
            at: 0,
            declared: -32768
        })
    );
}

#[test]
fn mutated_bodies_never_panic_and_accepted_ones_decode() {
    let base_seed: u64 = std::env::var("GUARD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6d69_6c6c_7261_6365);
    let iterations: usize = std::env::var("GUARD_FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000);
    let mut accepted_mutants = 0;
    for api in corpus() {
        accepted_mutants += fuzz_api(&api, base_seed ^ api.api_key as u64, iterations);
    }
    // Flipping bytes inside integer fields keeps a body valid: if nothing mutated was ever
    // accepted, the mutator or the guard is broken and the decode half of this test is idle.
    assert!(
        accepted_mutants > 100,
        "only {accepted_mutants} mutants accepted"
    );
}

#[test]
fn controller_api_counts_and_tags_are_checked() {
    // DescribeQuorum: compact topic count u32::MAX - 1, then a valid tagged section.
    assert_refused_quickly(55, 0, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0], 0);
    // BrokerRegistration v0: broker_id, cluster_id "c", incarnation_id, then a huge listener
    // count.
    let mut body = vec![0, 0, 0, 3, 2, b'c'];
    body.extend_from_slice(&[7; 16]);
    let listeners_at = body.len();
    body.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08, 1, 1, 0, 0]);
    assert_refused_quickly(62, 0, &body, listeners_at);
    // BrokerHeartbeat: tag 0 (offline_log_dirs) exists from v1; v0 refuses it as
    // kafka-protocol does ("Tag 0 is not valid for version 0").
    let mut v1 = broker_heartbeat(1, false);
    v1.unknown_tagged_fields.clear();
    let body = encode(&v1, 1);
    assert_eq!(check_request_body(63, 1, &body), Ok(()));
    assert!(matches!(
        check_request_body(63, 0, &body),
        Err(GuardError::BadTaggedField { tag: 0, .. })
    ));
    // Its content must fill exactly the declared size. The body ends with: count=1, tag=0,
    // size=33, compact array of two uuids (1 + 32 bytes).
    let n = body.len();
    assert_eq!(&body[n - 36..n - 33], &[1, 0, 33]);
    let mut short = body.clone();
    short[n - 34] = 34; // size says 34, content is 33
    short.push(0);
    assert!(matches!(
        check_request_body(63, 1, &short),
        Err(GuardError::BadTaggedField { tag: 0, .. })
    ));
}
