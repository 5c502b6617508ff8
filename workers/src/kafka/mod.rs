//! The scale-out path through Kafka: the relay publishes the event store in
//! commit order ([`relay`]); projection workers consume it as one consumer
//! group per projection ([`consumer`]). Both speak plain Kafka; any broker
//! that implements the protocol faithfully will do.

pub mod consumer;
pub mod relay;

use std::time::Duration;

use marketplace_projections::StoredEvent;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::types::RDKafkaErrorCode;
use tracing::info;

/// Where the broker is and how topics are named and made.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port` list.
    pub brokers: String,
    /// The first part of every topic and group name (`marketplace`): several
    /// marketplaces, or test runs, can share one cluster.
    pub topic_prefix: String,
    /// Partitions of each topic the marketplace creates.
    pub partitions: i32,
    /// Replicas of each topic the marketplace creates.
    pub replication: i32,
    /// Consumer session timeout: how soon a dead worker's partitions move.
    pub session_timeout: Duration,
}

impl KafkaConfig {
    /// A single local broker with the defaults.
    pub fn local(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic_prefix: "marketplace".into(),
            partitions: 6,
            replication: 1,
            session_timeout: Duration::from_secs(10),
        }
    }

    /// The topic of an aggregate type's events: `marketplace.deployment.v1`.
    pub fn topic(&self, aggregate_type: &str) -> String {
        format!("{}.{aggregate_type}.v1", self.topic_prefix)
    }

    /// Where projection workers also send what they dead-lettered.
    pub fn dead_letter_topic(&self) -> String {
        format!("{}.dead-letters.v1", self.topic_prefix)
    }

    /// The consumer group of a projection.
    pub fn group(&self, projection: &str) -> String {
        format!("{}.projection.{projection}", self.topic_prefix)
    }

    /// The settings every client shares.
    pub fn client(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id)
            // Reconnect quickly after a broker restart.
            .set("reconnect.backoff.max.ms", "1000")
            .set("topic.metadata.refresh.interval.ms", "10000");
        config
    }

    /// Creates the topics that do not exist yet; existing ones are left as
    /// they are.
    pub async fn ensure_topics(&self, topics: &[String]) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.client("marketplace-admin").create()?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    self.partitions,
                    TopicReplication::Fixed(self.replication),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(new.iter(), &options).await? {
            match result {
                Ok(topic) => info!(topic, partitions = self.partitions, "topic created"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
            }
        }
        Ok(())
    }
}

/// Header names on every published event.
pub mod headers {
    /// The event's position in the store: stable across republishing.
    pub const EVENT_ID: &str = "event-id";
    /// The event type (`DeploymentRequested`).
    pub const EVENT_TYPE: &str = "event-type";
    /// The payload version.
    pub const EVENT_VERSION: &str = "event-version";
    /// The aggregate's sequence number of the event.
    pub const SEQUENCE: &str = "aggregate-sequence";
    /// The correlation id from the event's metadata, when it has one.
    pub const CORRELATION_ID: &str = "correlation-id";
}

/// The headers of a published event.
pub fn event_headers(event: &StoredEvent) -> OwnedHeaders {
    let id = event.position.to_string();
    let sequence = event.sequence.to_string();
    let mut h = OwnedHeaders::new_with_capacity(5)
        .insert(Header {
            key: headers::EVENT_ID,
            value: Some(id.as_str()),
        })
        .insert(Header {
            key: headers::EVENT_TYPE,
            value: Some(event.event_type.as_str()),
        })
        .insert(Header {
            key: headers::EVENT_VERSION,
            value: Some(event.event_version.as_str()),
        })
        .insert(Header {
            key: headers::SEQUENCE,
            value: Some(sequence.as_str()),
        });
    if let Some(correlation) = event.meta("correlation_id") {
        h = h.insert(Header {
            key: headers::CORRELATION_ID,
            value: Some(correlation),
        });
    }
    h
}
