//! Identifiers of cluster objects: broker and node ids, topic names, topic-partitions.
//! Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The id of a Kafka broker (`node.id` of a broker in KRaft mode, `broker.id` before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BrokerId(pub i32);

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<NodeId> for BrokerId {
    fn from(node: NodeId) -> Self {
        BrokerId(node.0)
    }
}

/// The id of a KRaft node: a controller (quorum voter) or a broker (quorum observer).
///
/// Brokers and controllers share one id space (`node.id`); in combined mode one process is
/// both, and its [`BrokerId`] equals its `NodeId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub i32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<BrokerId> for NodeId {
    fn from(broker: BrokerId) -> Self {
        NodeId(broker.0)
    }
}

/// The longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// A valid Kafka topic name: 1 to 249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicName(String);

/// Why a string is not a valid topic name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    /// The name is empty.
    #[error("a topic name cannot be empty")]
    Empty,
    /// The name is longer than [`MAX_TOPIC_NAME_LEN`] characters.
    #[error("topic name `{name}` is {len} characters long; Kafka allows at most 249")]
    TooLong {
        /// The rejected name.
        name: String,
        /// Its length in characters.
        len: usize,
    },
    /// The name is `.` or `..`.
    #[error("`{0}` is not a valid topic name")]
    Reserved(String),
    /// The name contains a character outside `[a-zA-Z0-9._-]`.
    #[error(
        "topic name `{name}` contains `{character}`; only ASCII letters, digits, `.`, `_` and `-` are allowed"
    )]
    InvalidCharacter {
        /// The rejected name.
        name: String,
        /// The first offending character.
        character: char,
    },
}

impl TopicName {
    /// Validates a topic name.
    pub fn new(name: impl Into<String>) -> Result<Self, TopicNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(TopicNameError::Empty);
        }
        let len = name.chars().count();
        if len > MAX_TOPIC_NAME_LEN {
            return Err(TopicNameError::TooLong { name, len });
        }
        if name == "." || name == ".." {
            return Err(TopicNameError::Reserved(name));
        }
        if let Some(character) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(TopicNameError::InvalidCharacter { name, character });
        }
        Ok(TopicName(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is one of Kafka's internal topics (names starting with `__`).
    pub fn is_internal_name(&self) -> bool {
        self.0.starts_with("__")
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TopicName {
    type Err = TopicNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicName::new(s)
    }
}

impl TryFrom<String> for TopicName {
    type Error = TopicNameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        TopicName::new(value)
    }
}

impl From<TopicName> for String {
    fn from(name: TopicName) -> Self {
        name.0
    }
}

impl AsRef<str> for TopicName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// One partition of one topic. Displayed the way Kafka tools print it: `orders-3`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic.
    pub topic: TopicName,
    /// The partition index, from 0.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic-partition.
    pub fn new(topic: TopicName, partition: i32) -> Self {
        TopicPartition { topic, partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(TopicName::new("orders.v1_2-x").is_ok());
        assert_eq!(TopicName::new(""), Err(TopicNameError::Empty));
        assert!(matches!(
            TopicName::new(".."),
            Err(TopicNameError::Reserved(_))
        ));
        assert!(matches!(
            TopicName::new("a b"),
            Err(TopicNameError::InvalidCharacter { character: ' ', .. })
        ));
        assert!(matches!(
            TopicName::new("x".repeat(250)),
            Err(TopicNameError::TooLong { len: 250, .. })
        ));
        assert!(TopicName::new("x".repeat(249)).is_ok());
    }

    #[test]
    fn topic_partition_displays_like_kafka_tools() {
        let tp = TopicPartition::new(TopicName::new("orders").unwrap(), 3);
        assert_eq!(tp.to_string(), "orders-3");
    }

    #[test]
    fn topic_name_serde_validates() {
        let ok: TopicName = serde_json::from_str("\"orders\"").unwrap();
        assert_eq!(ok.as_str(), "orders");
        assert!(serde_json::from_str::<TopicName>("\"bad name\"").is_err());
    }
}
