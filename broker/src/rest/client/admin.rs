//! Topic creation for the HTTP services that keep their state in a topic (the schema
//! registry's `_schemas`): CreateTopics v5, as Kafka's AdminClient sends it.

use super::{topic_name, ClientError, KafkaClient};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use millrace_wire::codes as code;

impl KafkaClient {
    /// Creates `topic` with `partitions`, `replication_factor` and `configs` unless it exists
    /// (TOPIC_ALREADY_EXISTS is success). The controller is whichever broker answers: a
    /// broker forwards CreateTopics to it, as KIP-590 lets Kafka's brokers do.
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) -> Result<(), ClientError> {
        let _ = self.metadata(Some(&[]), false).await?;
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_value(Some(StrBytes::from_string(v.to_string())))
                        })
                        .collect(),
                )]);
        let resp: CreateTopicsResponse = self
            .any_broker()?
            .send_within(19, 5, &req, std::time::Duration::from_secs(40))
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let t = resp
            .topics
            .first()
            .ok_or_else(|| ClientError::Unreachable("no topic in the answer".into()))?;
        match t.error_code {
            code::NONE | code::TOPIC_ALREADY_EXISTS => Ok(()),
            c => Err(ClientError::Kafka(
                c,
                t.error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| code::name(c).to_string()),
            )),
        }
    }

    /// How many brokers the cluster's metadata lists.
    pub async fn broker_count(&self) -> Result<usize, ClientError> {
        let _ = self.metadata(Some(&[]), false).await?;
        Ok(self.brokers.borrow().len())
    }
}
