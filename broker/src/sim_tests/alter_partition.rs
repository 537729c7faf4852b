//! AlterPartition on the controller listener, through the real controller and quorum of a
//! single node: every refusal comes back with Kafka's code, an accepted change is committed
//! and answered with the partition's state, and a stale broker epoch refuses the request.
//! (A single node holds RF=1 partitions only, so the accepted change keeps the ISR; the
//! decisions on larger ISRs are `control::alter_partition`'s tests.)

use super::*;
use crate::errors::code;
use crate::handlers::Listener;
use kafka_protocol::messages::alter_partition_request::{BrokerState, PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, BrokerId};

async fn alter(
    shard: &Rc<Shard>,
    version: i16,
    req: &AlterPartitionRequest,
) -> AlterPartitionResponse {
    let key = ApiKey::AlterPartition;
    match request_on(shard, Listener::Controller, key, version, req).await {
        Response::Frame(frame) => decode_frame(key, version, frame),
        _ => panic!("AlterPartition answered without a frame"),
    }
}

#[test]
fn alter_partition_answers_each_partition_with_kafkas_codes() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(11);
    let shards = sim.block_on(boot(&disk));
    sim.block_on(async {
        let image = shards[0].image();
        let node = shards[0].config.node_id;
        let epoch = image.cluster.broker(node).expect("registered").broker_epoch;
        let topic = image.cluster.topic(TOPIC).expect("created").clone();
        let p = topic.partitions[0].clone();
        let topic_id = uuid::Uuid::from_bytes(topic.id.0);
        let part = |index: i32, le: i32, pe: i32, isr: &[i32]| {
            PartitionData::default()
                .with_partition_index(index)
                .with_leader_epoch(le)
                .with_partition_epoch(pe)
                .with_new_isr(isr.iter().copied().map(BrokerId).collect())
        };
        let (le, pe) = (p.leader_epoch, p.partition_epoch);
        let req = AlterPartitionRequest::default()
            .with_broker_id(BrokerId(node))
            .with_broker_epoch(epoch)
            .with_topics(vec![
                TopicData::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![
                        part(0, le + 1, pe, &[node]),
                        part(0, le, pe + 1, &[node]),
                        part(0, le, pe, &[]),
                        part(0, le, pe, &[node, 99]),
                        part(77, le, pe, &[node]),
                        part(0, le, pe, &[node]),
                    ]),
                TopicData::default()
                    .with_topic_id(uuid::Uuid::from_u128(5))
                    .with_partitions(vec![part(0, 0, 0, &[node])]),
            ]);
        let resp = alter(&shards[0], 2, &req).await;
        assert_eq!(resp.error_code, code::NONE);
        let codes: Vec<i16> = resp
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect();
        assert_eq!(
            codes,
            [
                code::FENCED_LEADER_EPOCH,
                code::INVALID_UPDATE_VERSION,
                code::INVALID_REQUEST,
                code::INVALID_REQUEST,
                code::UNKNOWN_TOPIC_OR_PARTITION,
                code::NONE,
                code::UNKNOWN_TOPIC_ID,
            ]
        );
        let ok = &resp.topics[0].partitions[5];
        assert_eq!(
            (ok.leader_id.0, ok.leader_epoch, ok.partition_epoch),
            (node, le, pe)
        );
        assert_eq!(ok.isr, [BrokerId(node)]);
        // v3 names members with their broker epochs; a stale one for an added member is
        // INELIGIBLE_REPLICA (here the leader is in the ISR already, so its epoch is not
        // checked and the change stands).
        let v3 = AlterPartitionRequest::default()
            .with_broker_id(BrokerId(node))
            .with_broker_epoch(epoch)
            .with_topics(vec![TopicData::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![PartitionData::default()
                    .with_partition_index(0)
                    .with_leader_epoch(le)
                    .with_partition_epoch(pe)
                    .with_new_isr_with_epochs(vec![BrokerState::default()
                        .with_broker_id(BrokerId(node))
                        .with_broker_epoch(epoch)])])]);
        let resp = alter(&shards[0], 3, &v3).await;
        assert_eq!(resp.topics[0].partitions[0].error_code, code::NONE);
        // A stale broker epoch refuses the whole request.
        let stale = req.clone().with_broker_epoch(epoch - 1);
        let resp = alter(&shards[0], 2, &stale).await;
        assert_eq!(
            (resp.error_code, resp.topics.len()),
            (code::STALE_BROKER_EPOCH, 0)
        );
    });
}
