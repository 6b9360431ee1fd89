//! `kpilot-kafka`: kpilot's Kafka admin client. An async (tokio) transport on the
//! `kafka-protocol` crate's message codecs, with TLS (rustls) and SASL (PLAIN, SCRAM), routing
//! of admin requests to the right broker with retries, and a cluster snapshot that feeds
//! `kpilot-cluster`'s pure health analysis. Performs network I/O.

pub mod codec;
pub mod config;
pub mod connection;
pub mod error_code;
pub mod scram;
pub mod tls;

pub use config::{
    BrokerAddress, ClientConfig, ConfigError, LoadedConfig, SaslMechanism, Secret, SecurityProtocol,
};
pub use connection::{Connection, ConnectionError};
pub use error_code::KafkaErrorCode;
pub mod admin;
pub mod groups;
pub mod produce;
pub mod snapshot;

pub use admin::{
    AdminClient, AdminError, ClusterDescription, ClusterMetadata, ConfigEntry, ConfigOp,
    ConfigResource, ConfigSource, ElectionOutcome, NewTopic, OffsetSpec, ThrottleOverride,
    TopicMetadata,
};
pub use groups::{GroupListing, GroupOffsets};
pub use produce::ActiveProducer;
pub use snapshot::{
    FOLLOWER_RATE, FOLLOWER_REPLICAS, LEADER_RATE, LEADER_REPLICAS, MIN_INSYNC_REPLICAS, Snapshot,
    SnapshotGap,
};
