//! ACLs through the API on the simulated broker with an authorizer configured: only a super
//! user may create and describe bindings, a binding decides Produce and Metadata for its
//! principal at once (the shard's index follows the image), Kafka's refusals fail one creation
//! without the others, and the bindings survive a crash.

use super::*;
use crate::errors::code;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use millrace_security::acl::AuthorizerSettings;

fn secured() -> Arc<Config> {
    let mut c = (*config()).clone();
    c.authorizer = Some(AuthorizerSettings {
        super_users: vec!["User:admin".into(), crate::auth::ANONYMOUS.into()],
        allow_everyone_if_no_acl_found: false,
    });
    Arc::new(c)
}

fn creation(resource_type: i8, name: &str, pattern: i8, principal: &str, op: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.into()))
        .with_resource_pattern_type(pattern)
        .with_principal(StrBytes::from_string(principal.into()))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(op)
        .with_permission_type(3)
}

async fn create(shard: &Rc<Shard>, creations: Vec<AclCreation>) -> Vec<i16> {
    let req = CreateAclsRequest::default().with_creations(creations);
    let resp: CreateAclsResponse = call(shard, ApiKey::CreateAcls, 3, &req).await;
    resp.results.iter().map(|r| r.error_code).collect()
}

/// Every binding as (principal, operation), or the top-level error.
async fn describe(shard: &Rc<Shard>) -> Result<Vec<(String, i8)>, i16> {
    let req = DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    let resp: DescribeAclsResponse = call(shard, ApiKey::DescribeAcls, 3, &req).await;
    if resp.error_code != code::NONE {
        return Err(resp.error_code);
    }
    let mut out: Vec<(String, i8)> = resp
        .resources
        .iter()
        .flat_map(|r| {
            r.acls
                .iter()
                .map(|a| (a.principal.to_string(), a.operation))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The topics Metadata lists for the current principal.
async fn listed(shard: &Rc<Shard>) -> Vec<String> {
    let req = MetadataRequest::default().with_topics(None);
    let resp: MetadataResponse = call(shard, ApiKey::Metadata, 12, &req).await;
    resp.topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect()
}

/// CreateTopics v7 of one topic with replication factor 1, as the current principal: its
/// result.
async fn create_topic_v7(
    shard: &Rc<Shard>,
    name: &str,
    partitions: i32,
) -> kafka_protocol::messages::create_topics_response::CreatableTopicResult {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(5_000);
    let mut resp: CreateTopicsResponse = call(shard, ApiKey::CreateTopics, 7, &req).await;
    resp.topics.swap_remove(0)
}

#[test]
fn acls_are_created_enforced_described_and_survive_a_crash() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(41);
    let shards = sim.block_on(boot_with(&disk, secured()));
    sim.block_on(async {
        act_as("User:alice");
        let denied = create(&shards[1], vec![creation(2, TOPIC, 3, "User:alice", 4)]).await;
        assert_eq!(denied, vec![code::CLUSTER_AUTHORIZATION_FAILED]);
        assert_eq!(
            describe(&shards[0]).await,
            Err(code::CLUSTER_AUTHORIZATION_FAILED)
        );
        assert_eq!(
            produce_to(&shards[0], TOPIC, 0).await,
            code::TOPIC_AUTHORIZATION_FAILED
        );
        assert!(
            listed(&shards[1]).await.is_empty(),
            "no ACL: nothing to describe"
        );

        act_as("User:admin");
        let done = create(
            &shards[1],
            vec![
                creation(2, &TOPIC[..2], 4, "User:alice", 4), // WRITE on the prefix
                creation(4, "not-kafka-cluster", 3, "User:alice", 7),
                creation(2, TOPIC, 3, "alice-without-type", 3),
                creation(2, &TOPIC[..2], 4, "User:alice", 4), // the same again
            ],
        )
        .await;
        assert_eq!(
            done,
            vec![
                code::NONE,
                code::INVALID_REQUEST,
                code::INVALID_REQUEST,
                code::NONE
            ]
        );
        assert_eq!(
            describe(&shards[0]).await,
            Ok(vec![("User:alice".into(), 4)])
        );

        act_as("User:alice");
        assert_eq!(produce_to(&shards[0], TOPIC, 0).await, code::NONE);
        assert_eq!(
            listed(&shards[1]).await,
            vec![TOPIC.to_string()],
            "WRITE implies DESCRIBE"
        );
        act_as("User:bob");
        assert_eq!(
            produce_to(&shards[1], TOPIC, 1).await,
            code::TOPIC_AUTHORIZATION_FAILED
        );
        act_as(crate::auth::ANONYMOUS); // the next boot's set-up requests are the broker's
    });
    drop(shards);
    sim.crash();
    disk.crash(41);

    let sim = Sim::new(42);
    let shards = sim.block_on(boot_with(&disk, secured()));
    sim.block_on(async {
        act_as("User:alice");
        assert_eq!(
            produce_to(&shards[1], TOPIC, 2).await,
            code::NONE,
            "kept across a crash"
        );
        act_as("User:admin");
        let filter = DeleteAclsFilter::default()
            .with_resource_type_filter(2)
            .with_pattern_type_filter(1)
            .with_resource_name_filter(None)
            .with_host_filter(None)
            .with_principal_filter(Some(StrBytes::from_static_str("User:alice")))
            .with_operation(1)
            .with_permission_type(1);
        let req = DeleteAclsRequest::default().with_filters(vec![filter.clone(), filter]);
        let resp: DeleteAclsResponse = call(&shards[0], ApiKey::DeleteAcls, 3, &req).await;
        let removed: Vec<usize> = resp
            .filter_results
            .iter()
            .map(|r| r.matching_acls.len())
            .collect();
        assert_eq!(
            removed,
            vec![1, 0],
            "a binding is reported by the first filter only"
        );
        act_as("User:alice");
        assert_eq!(
            produce_to(&shards[0], TOPIC, 0).await,
            code::TOPIC_AUTHORIZATION_FAILED
        );
        act_as(crate::auth::ANONYMOUS);
    });
}

/// The partition's error in a ShareFetch v1 of `TOPIC`'s partition 0 that opens a share
/// session (a simulated request has a connection of its own, so acknowledgements, which need
/// an open session, are not tried here).
async fn share_fetch(shard: &Rc<Shard>) -> i16 {
    use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{ShareFetchRequest, ShareFetchResponse};
    let topic_id = shard.image().topics[TOPIC].id;
    let req = ShareFetchRequest::default()
        .with_group_id(Some(StrBytes::from_static_str("share-g").into()))
        .with_member_id(Some(StrBytes::from_static_str("m-1")))
        .with_share_session_epoch(0)
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_max_records(10)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![
                FetchPartition::default().with_partition_index(0)
            ])]);
    let resp: ShareFetchResponse = call(shard, ApiKey::ShareFetch, 1, &req).await;
    resp.responses
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.error_code)
        .unwrap_or(resp.error_code)
}

#[test]
fn share_fetches_need_read_on_the_group_and_on_each_topic() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(43);
    let shards = sim.block_on(boot_with(&disk, secured()));
    sim.block_on(async {
        act_as("User:admin");
        let done = create(
            &shards[0],
            vec![creation(3, "share-g", 3, "User:alice", 3)], // READ on the group
        )
        .await;
        assert_eq!(done, vec![code::NONE]);
        act_as("User:alice");
        assert_eq!(
            share_fetch(&shards[1]).await,
            code::TOPIC_AUTHORIZATION_FAILED
        );
        act_as("User:admin");
        let done = create(&shards[0], vec![creation(2, TOPIC, 3, "User:alice", 3)]).await;
        assert_eq!(done, vec![code::NONE]);
        act_as("User:alice");
        let fetched = share_fetch(&shards[1]).await;
        assert_ne!(
            fetched,
            code::TOPIC_AUTHORIZATION_FAILED,
            "READ on the topic"
        );
        assert_ne!(fetched, code::GROUP_AUTHORIZATION_FAILED);
        act_as(crate::auth::ANONYMOUS);
    });
}

#[test]
fn created_topics_show_their_configs_only_to_who_may_describe_them() {
    async fn create_topic(shard: &Rc<Shard>, name: &str) -> (i16, i16, bool) {
        let t = create_topic_v7(shard, name, 1).await;
        (
            t.error_code,
            t.topic_config_error_code,
            t.configs.as_ref().is_some_and(|c| !c.is_empty()),
        )
    }
    let disk = SimDisk::new(4096);
    let sim = Sim::new(44);
    let shards = sim.block_on(boot_with(&disk, secured()));
    sim.block_on(async {
        act_as("User:admin");
        // CREATE (5) on the prefix "made-" for alice, nothing else.
        let done = create(&shards[0], vec![creation(2, "made-", 4, "User:alice", 5)]).await;
        assert_eq!(done, vec![code::NONE]);
        act_as("User:alice");
        assert_eq!(
            create_topic(&shards[1], "made-by-alice").await,
            (code::NONE, code::TOPIC_AUTHORIZATION_FAILED, false)
        );
        act_as("User:admin");
        assert_eq!(
            create_topic(&shards[1], "made-by-admin").await,
            (code::NONE, code::NONE, true)
        );
        act_as(crate::auth::ANONYMOUS);
    });
}

/// A regex subscription gives each member only the matching topics its principal may
/// describe, and a group whose assignments name a hidden topic is not described to whoever
/// may not see it (ConsumerGroupDescribe answers TOPIC_AUTHORIZATION_FAILED, as Kafka's).
#[test]
fn regex_subscriptions_assign_only_topics_the_member_may_describe() {
    use kafka_protocol::messages::{
        ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
        ConsumerGroupHeartbeatResponse,
    };
    use std::collections::BTreeSet;
    const DESCRIBE: i8 = 8;
    const READ: i8 = 3;
    const GROUP_ID: &str = "regex-g";
    async fn create_topic(shard: &Rc<Shard>, name: &str) {
        let t = create_topic_v7(shard, name, 2).await;
        assert_eq!(t.error_code, code::NONE, "{name}");
    }
    /// (error, member epoch, topic ids assigned if the answer carries an assignment).
    async fn heartbeat(
        shard: &Rc<Shard>,
        member: &str,
        epoch: i32,
    ) -> (i16, i32, Option<BTreeSet<uuid::Uuid>>) {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str(GROUP_ID)))
            .with_member_id(StrBytes::from_string(member.into()))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(10_000)
            .with_subscribed_topic_regex(
                (epoch == 0).then(|| StrBytes::from_static_str("orders-.*")),
            )
            .with_topic_partitions((epoch == 0).then(Vec::new));
        let resp: ConsumerGroupHeartbeatResponse =
            call(shard, ApiKey::ConsumerGroupHeartbeat, 1, &req).await;
        let topics = resp
            .assignment
            .map(|a| a.topic_partitions.iter().map(|t| t.topic_id).collect());
        (resp.error_code, resp.member_epoch, topics)
    }
    /// (error, group epoch, topic names in each member's target).
    async fn describe_group(shard: &Rc<Shard>) -> (i16, i32, BTreeMap<String, BTreeSet<String>>) {
        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_static_str(GROUP_ID))]);
        let resp: ConsumerGroupDescribeResponse =
            call(shard, ApiKey::ConsumerGroupDescribe, 0, &req).await;
        let g = &resp.groups[0];
        let targets = g
            .members
            .iter()
            .map(|m| {
                let names = m
                    .target_assignment
                    .topic_partitions
                    .iter()
                    .map(|t| t.topic_name.0.to_string())
                    .collect();
                (m.member_id.to_string(), names)
            })
            .collect();
        (g.error_code, g.group_epoch, targets)
    }
    let disk = SimDisk::new(4096);
    let sim = Sim::new(45);
    let shards = sim.block_on(boot_with(&disk, secured()));
    sim.block_on(async {
        act_as("User:admin");
        create_topic(&shards[0], "orders-open").await;
        create_topic(&shards[0], "orders-secret").await;
        let image = shards[0].image();
        let open = image.topics["orders-open"].id;
        let secret = image.topics["orders-secret"].id;
        let done = create(
            &shards[0],
            vec![
                creation(3, GROUP_ID, 3, "User:alice", READ),
                creation(2, "orders-open", 3, "User:alice", DESCRIBE),
                creation(3, GROUP_ID, 3, "User:bob", READ),
                creation(2, "orders-", 4, "User:bob", DESCRIBE),
            ],
        )
        .await;
        assert_eq!(done, vec![code::NONE; 4]);
        act_as("User:alice");
        let (error, alice_epoch, topics) = heartbeat(&shards[1], "alice-1", 0).await;
        assert_eq!(error, code::NONE);
        assert_eq!(
            topics,
            Some(BTreeSet::from([open])),
            "only what alice may describe"
        );
        // Alice may describe her group: it names no topic hidden from her.
        let (error, _, targets) = describe_group(&shards[1]).await;
        assert_eq!(error, code::NONE);
        assert_eq!(
            targets["alice-1"],
            BTreeSet::from(["orders-open".to_string()])
        );
        act_as("User:bob");
        let (error, _, topics) = heartbeat(&shards[1], "bob-1", 0).await;
        assert_eq!(error, code::NONE);
        assert!(
            topics.is_some_and(|t| t.contains(&secret)),
            "bob may see orders-secret"
        );
        // The group now names orders-secret: alice may not describe it, bob may.
        let (error, group_epoch, targets) = describe_group(&shards[1]).await;
        assert_eq!(error, code::NONE);
        assert!(!targets["alice-1"].contains("orders-secret"), "{targets:?}");
        act_as("User:alice");
        let (error, _, targets) = describe_group(&shards[1]).await;
        assert_eq!(error, code::TOPIC_AUTHORIZATION_FAILED);
        assert!(targets.is_empty(), "no members are shown");
        // Alice is granted orders-secret: her next heartbeat moves the group epoch and her
        // target may now hold it.
        act_as("User:admin");
        let done = create(
            &shards[0],
            vec![creation(2, "orders-secret", 3, "User:alice", DESCRIBE)],
        )
        .await;
        assert_eq!(done, vec![code::NONE]);
        act_as("User:alice");
        let (error, _, _) = heartbeat(&shards[1], "alice-1", alice_epoch).await;
        assert_eq!(error, code::NONE);
        act_as("User:admin");
        let (error, after, _) = describe_group(&shards[1]).await;
        assert_eq!(error, code::NONE);
        assert_eq!(
            after,
            group_epoch + 1,
            "the grant changed alice's subscription"
        );
        act_as(crate::auth::ANONYMOUS);
    });
}
