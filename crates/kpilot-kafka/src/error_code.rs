//! Kafka protocol error codes as a named, documented enum, with whether a client may retry.
//! Pure: no I/O.
//!
//! The numbers are part of the Kafka wire protocol (`Errors.java` in Apache Kafka); the names
//! here are the protocol names in CamelCase. [`KafkaErrorCode::name`] gives Kafka's
//! UPPER_SNAKE_CASE name, which is what operators search for in broker logs.

use std::fmt;

macro_rules! kafka_error_codes {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $code:literal, $retriable:literal, $name:literal; )+) => {
        /// A non-zero Kafka error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[non_exhaustive]
        pub enum KafkaErrorCode {
            $( $(#[doc = $doc])+ $variant, )+
            /// A code this client does not know (newer broker); treated as not retriable.
            Unknown(i16),
        }

        impl KafkaErrorCode {
            /// The error for a response's error code; `None` for 0 (no error).
            pub fn from_code(code: i16) -> Option<Self> {
                match code {
                    0 => None,
                    $( $code => Some(KafkaErrorCode::$variant), )+
                    other => Some(KafkaErrorCode::Unknown(other)),
                }
            }

            /// The numeric code on the wire.
            pub fn code(self) -> i16 {
                match self {
                    $( KafkaErrorCode::$variant => $code, )+
                    KafkaErrorCode::Unknown(code) => code,
                }
            }

            /// Whether the operation may succeed if retried (after refreshing metadata where
            /// the error is about leadership or the controller).
            pub fn is_retriable(self) -> bool {
                match self {
                    $( KafkaErrorCode::$variant => $retriable, )+
                    KafkaErrorCode::Unknown(_) => false,
                }
            }

            /// Kafka's name for the error, e.g. `NOT_LEADER_OR_FOLLOWER`.
            pub fn name(self) -> &'static str {
                match self {
                    $( KafkaErrorCode::$variant => $name, )+
                    KafkaErrorCode::Unknown(_) => "UNKNOWN_CODE",
                }
            }

            /// Every known code, in numeric order.
            pub fn all() -> &'static [KafkaErrorCode] {
                &[ $( KafkaErrorCode::$variant, )+ ]
            }

            /// A one-line explanation.
            pub fn description(self) -> &'static str {
                match self {
                    $( KafkaErrorCode::$variant => concat!($($doc),+).trim_start(), )+
                    KafkaErrorCode::Unknown(_) => "an error code this client does not know",
                }
            }
        }
    };
}

kafka_error_codes! {
    /// The broker hit an unexpected error; see its log.
    UnknownServerError = -1, false, "UNKNOWN_SERVER_ERROR";
    /// The requested offset is outside the range kept by the partition.
    OffsetOutOfRange = 1, false, "OFFSET_OUT_OF_RANGE";
    /// A record failed its CRC check or is otherwise corrupt.
    CorruptMessage = 2, true, "CORRUPT_MESSAGE";
    /// The topic or partition does not exist on this broker (yet).
    UnknownTopicOrPartition = 3, true, "UNKNOWN_TOPIC_OR_PARTITION";
    /// The requested fetch size is invalid.
    InvalidFetchSize = 4, false, "INVALID_FETCH_SIZE";
    /// The partition has no leader right now (an election is in progress).
    LeaderNotAvailable = 5, true, "LEADER_NOT_AVAILABLE";
    /// The broker is not the leader (or follower) for the partition; refresh metadata.
    NotLeaderOrFollower = 6, true, "NOT_LEADER_OR_FOLLOWER";
    /// The broker did not complete the request within its timeout.
    RequestTimedOut = 7, true, "REQUEST_TIMED_OUT";
    /// The broker is not available.
    BrokerNotAvailable = 8, false, "BROKER_NOT_AVAILABLE";
    /// The replica is not available for the partition.
    ReplicaNotAvailable = 9, true, "REPLICA_NOT_AVAILABLE";
    /// The request contained a message larger than the broker accepts.
    MessageTooLarge = 10, false, "MESSAGE_TOO_LARGE";
    /// The controller epoch in the request is stale.
    StaleControllerEpoch = 11, false, "STALE_CONTROLLER_EPOCH";
    /// The offset commit's metadata is too large.
    OffsetMetadataTooLarge = 12, false, "OFFSET_METADATA_TOO_LARGE";
    /// The connection was closed before the response arrived.
    NetworkException = 13, true, "NETWORK_EXCEPTION";
    /// The group coordinator is still loading.
    CoordinatorLoadInProgress = 14, true, "COORDINATOR_LOAD_IN_PROGRESS";
    /// The group coordinator is not available.
    CoordinatorNotAvailable = 15, true, "COORDINATOR_NOT_AVAILABLE";
    /// This broker is not the coordinator for the group or transaction.
    NotCoordinator = 16, true, "NOT_COORDINATOR";
    /// The topic name is invalid, or the operation is not allowed on an internal topic.
    InvalidTopicException = 17, false, "INVALID_TOPIC_EXCEPTION";
    /// The record batch is larger than the segment size.
    RecordListTooLarge = 18, false, "RECORD_LIST_TOO_LARGE";
    /// Fewer in-sync replicas than `min.insync.replicas`: the write was rejected.
    NotEnoughReplicas = 19, true, "NOT_ENOUGH_REPLICAS";
    /// The write was appended but the ISR shrank below `min.insync.replicas` before it was acknowledged.
    NotEnoughReplicasAfterAppend = 20, true, "NOT_ENOUGH_REPLICAS_AFTER_APPEND";
    /// The `acks` value is invalid.
    InvalidRequiredAcks = 21, false, "INVALID_REQUIRED_ACKS";
    /// The consumer group generation is stale.
    IllegalGeneration = 22, false, "ILLEGAL_GENERATION";
    /// The member's protocol does not match the group's.
    InconsistentGroupProtocol = 23, false, "INCONSISTENT_GROUP_PROTOCOL";
    /// The group id is invalid.
    InvalidGroupId = 24, false, "INVALID_GROUP_ID";
    /// The member id is not known to the coordinator.
    UnknownMemberId = 25, false, "UNKNOWN_MEMBER_ID";
    /// The session timeout is outside the broker's allowed range.
    InvalidSessionTimeout = 26, false, "INVALID_SESSION_TIMEOUT";
    /// The group is rebalancing.
    RebalanceInProgress = 27, false, "REBALANCE_IN_PROGRESS";
    /// The committed offset's size is invalid.
    InvalidCommitOffsetSize = 28, false, "INVALID_COMMIT_OFFSET_SIZE";
    /// The principal may not access the topic.
    TopicAuthorizationFailed = 29, false, "TOPIC_AUTHORIZATION_FAILED";
    /// The principal may not access the group.
    GroupAuthorizationFailed = 30, false, "GROUP_AUTHORIZATION_FAILED";
    /// The principal may not perform cluster operations.
    ClusterAuthorizationFailed = 31, false, "CLUSTER_AUTHORIZATION_FAILED";
    /// A record timestamp is out of the accepted range.
    InvalidTimestamp = 32, false, "INVALID_TIMESTAMP";
    /// The broker does not enable this SASL mechanism on the listener.
    UnsupportedSaslMechanism = 33, false, "UNSUPPORTED_SASL_MECHANISM";
    /// The request is not valid in the current SASL state.
    IllegalSaslState = 34, false, "ILLEGAL_SASL_STATE";
    /// The broker does not support this request version.
    UnsupportedVersion = 35, false, "UNSUPPORTED_VERSION";
    /// A topic with this name already exists.
    TopicAlreadyExists = 36, false, "TOPIC_ALREADY_EXISTS";
    /// The number of partitions is invalid.
    InvalidPartitions = 37, false, "INVALID_PARTITIONS";
    /// The replication factor is invalid (for example larger than the number of brokers).
    InvalidReplicationFactor = 38, false, "INVALID_REPLICATION_FACTOR";
    /// The replica assignment is invalid (unknown brokers, duplicates...).
    InvalidReplicaAssignment = 39, false, "INVALID_REPLICA_ASSIGNMENT";
    /// A configuration name or value is invalid.
    InvalidConfig = 40, false, "INVALID_CONFIG";
    /// The request went to a broker that is not the controller; refresh metadata.
    NotController = 41, true, "NOT_CONTROLLER";
    /// The request is malformed or not valid for this broker.
    InvalidRequest = 42, false, "INVALID_REQUEST";
    /// The message format version does not support the request.
    UnsupportedForMessageFormat = 43, false, "UNSUPPORTED_FOR_MESSAGE_FORMAT";
    /// A broker-side policy rejected the request.
    PolicyViolation = 44, false, "POLICY_VIOLATION";
    /// The producer's sequence number is out of order.
    OutOfOrderSequenceNumber = 45, false, "OUT_OF_ORDER_SEQUENCE_NUMBER";
    /// The producer's sequence number is a duplicate.
    DuplicateSequenceNumber = 46, false, "DUPLICATE_SEQUENCE_NUMBER";
    /// The producer epoch is invalid (fenced by a newer producer).
    InvalidProducerEpoch = 47, false, "INVALID_PRODUCER_EPOCH";
    /// The transaction state does not allow the operation.
    InvalidTxnState = 48, false, "INVALID_TXN_STATE";
    /// The producer id does not match the transactional id.
    InvalidProducerIdMapping = 49, false, "INVALID_PRODUCER_ID_MAPPING";
    /// The transaction timeout is larger than the broker allows.
    InvalidTransactionTimeout = 50, false, "INVALID_TRANSACTION_TIMEOUT";
    /// Another transaction operation on the same id is in progress.
    ConcurrentTransactions = 51, false, "CONCURRENT_TRANSACTIONS";
    /// The transaction coordinator was fenced.
    TransactionCoordinatorFenced = 52, false, "TRANSACTION_COORDINATOR_FENCED";
    /// The principal may not use the transactional id.
    TransactionalIdAuthorizationFailed = 53, false, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED";
    /// Security features are disabled on the broker.
    SecurityDisabled = 54, false, "SECURITY_DISABLED";
    /// The broker did not attempt this part of the request because another part failed.
    OperationNotAttempted = 55, false, "OPERATION_NOT_ATTEMPTED";
    /// A disk error on the broker (an offline log directory).
    KafkaStorageError = 56, true, "KAFKA_STORAGE_ERROR";
    /// The log directory does not exist on the broker.
    LogDirNotFound = 57, false, "LOG_DIR_NOT_FOUND";
    /// SASL authentication failed: wrong user name or password, or a disabled mechanism.
    SaslAuthenticationFailed = 58, false, "SASL_AUTHENTICATION_FAILED";
    /// The producer id is not known to the broker.
    UnknownProducerId = 59, false, "UNKNOWN_PRODUCER_ID";
    /// A reassignment of the partition is already in progress.
    ReassignmentInProgress = 60, false, "REASSIGNMENT_IN_PROGRESS";
    /// Delegation tokens are disabled.
    DelegationTokenAuthDisabled = 61, false, "DELEGATION_TOKEN_AUTH_DISABLED";
    /// The delegation token was not found.
    DelegationTokenNotFound = 62, false, "DELEGATION_TOKEN_NOT_FOUND";
    /// The principal is not the delegation token's owner.
    DelegationTokenOwnerMismatch = 63, false, "DELEGATION_TOKEN_OWNER_MISMATCH";
    /// Delegation token requests are not allowed on this connection.
    DelegationTokenRequestNotAllowed = 64, false, "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED";
    /// The principal may not use the delegation token.
    DelegationTokenAuthorizationFailed = 65, false, "DELEGATION_TOKEN_AUTHORIZATION_FAILED";
    /// The delegation token has expired.
    DelegationTokenExpired = 66, false, "DELEGATION_TOKEN_EXPIRED";
    /// The principal type is not supported.
    InvalidPrincipalType = 67, false, "INVALID_PRINCIPAL_TYPE";
    /// The group is not empty.
    NonEmptyGroup = 68, false, "NON_EMPTY_GROUP";
    /// The group does not exist.
    GroupIdNotFound = 69, false, "GROUP_ID_NOT_FOUND";
    /// The fetch session id was not found.
    FetchSessionIdNotFound = 70, true, "FETCH_SESSION_ID_NOT_FOUND";
    /// The fetch session epoch is invalid.
    InvalidFetchSessionEpoch = 71, true, "INVALID_FETCH_SESSION_EPOCH";
    /// The leader has no endpoint on the listener the request came in on.
    ListenerNotFound = 72, true, "LISTENER_NOT_FOUND";
    /// Topic deletion is disabled (`delete.topic.enable=false`).
    TopicDeletionDisabled = 73, false, "TOPIC_DELETION_DISABLED";
    /// The leader epoch in the request is older than the broker's.
    FencedLeaderEpoch = 74, true, "FENCED_LEADER_EPOCH";
    /// The leader epoch in the request is newer than the broker's.
    UnknownLeaderEpoch = 75, true, "UNKNOWN_LEADER_EPOCH";
    /// The requesting client does not support the compression type.
    UnsupportedCompressionType = 76, false, "UNSUPPORTED_COMPRESSION_TYPE";
    /// The broker epoch is stale.
    StaleBrokerEpoch = 77, false, "STALE_BROKER_EPOCH";
    /// The leader high watermark has not caught up after an election.
    OffsetNotAvailable = 78, true, "OFFSET_NOT_AVAILABLE";
    /// The group member needs a member id to join.
    MemberIdRequired = 79, false, "MEMBER_ID_REQUIRED";
    /// The preferred leader is not available (down or not in the ISR).
    PreferredLeaderNotAvailable = 80, true, "PREFERRED_LEADER_NOT_AVAILABLE";
    /// The group has reached its maximum size.
    GroupMaxSizeReached = 81, false, "GROUP_MAX_SIZE_REACHED";
    /// A static member with the same instance id was fenced.
    FencedInstanceId = 82, false, "FENCED_INSTANCE_ID";
    /// No eligible replica can become leader (unclean election disabled).
    EligibleLeadersNotAvailable = 83, true, "ELIGIBLE_LEADERS_NOT_AVAILABLE";
    /// The election was not needed: the preferred leader already leads.
    ElectionNotNeeded = 84, true, "ELECTION_NOT_NEEDED";
    /// No reassignment is in progress for the partition.
    NoReassignmentInProgress = 85, false, "NO_REASSIGNMENT_IN_PROGRESS";
    /// The group is subscribed to the topic, so its offsets cannot be deleted.
    GroupSubscribedToTopic = 86, false, "GROUP_SUBSCRIBED_TO_TOPIC";
    /// A record failed broker-side validation.
    InvalidRecord = 87, false, "INVALID_RECORD";
    /// Pending transactional offsets exist for the partition.
    UnstableOffsetCommit = 88, true, "UNSTABLE_OFFSET_COMMIT";
    /// The request exceeded a throttling quota.
    ThrottlingQuotaExceeded = 89, true, "THROTTLING_QUOTA_EXCEEDED";
    /// A newer producer with the same transactional id fenced this one.
    ProducerFenced = 90, false, "PRODUCER_FENCED";
    /// The resource does not exist.
    ResourceNotFound = 91, false, "RESOURCE_NOT_FOUND";
    /// The resource is listed more than once in the request.
    DuplicateResource = 92, false, "DUPLICATE_RESOURCE";
    /// The credential is not acceptable.
    UnacceptableCredential = 93, false, "UNACCEPTABLE_CREDENTIAL";
    /// The voter set is inconsistent with the quorum's.
    InconsistentVoterSet = 94, false, "INCONSISTENT_VOTER_SET";
    /// The feature update version is invalid.
    InvalidUpdateVersion = 95, false, "INVALID_UPDATE_VERSION";
    /// The feature update failed.
    FeatureUpdateFailed = 96, false, "FEATURE_UPDATE_FAILED";
    /// The forwarded principal could not be deserialized.
    PrincipalDeserializationFailure = 97, false, "PRINCIPAL_DESERIALIZATION_FAILURE";
    /// The requested metadata snapshot was not found.
    SnapshotNotFound = 98, false, "SNAPSHOT_NOT_FOUND";
    /// The requested position is out of range of the snapshot.
    PositionOutOfRange = 99, false, "POSITION_OUT_OF_RANGE";
    /// The topic id is not known to the broker (yet).
    UnknownTopicId = 100, true, "UNKNOWN_TOPIC_ID";
    /// A broker registered with a duplicate id.
    DuplicateBrokerRegistration = 101, false, "DUPLICATE_BROKER_REGISTRATION";
    /// The broker id is not registered.
    BrokerIdNotRegistered = 102, false, "BROKER_ID_NOT_REGISTERED";
    /// The topic id does not match the topic name on the broker.
    InconsistentTopicId = 103, true, "INCONSISTENT_TOPIC_ID";
    /// The cluster id does not match.
    InconsistentClusterId = 104, false, "INCONSISTENT_CLUSTER_ID";
    /// The transactional id was not found.
    TransactionalIdNotFound = 105, false, "TRANSACTIONAL_ID_NOT_FOUND";
    /// The fetch session ran into a topic id error.
    FetchSessionTopicIdError = 106, true, "FETCH_SESSION_TOPIC_ID_ERROR";
    /// The new ISR contains at least one ineligible replica.
    IneligibleReplica = 107, false, "INELIGIBLE_REPLICA";
    /// A new leader was elected while the request was in flight.
    NewLeaderElected = 108, false, "NEW_LEADER_ELECTED";
    /// The offset has been moved to tiered storage.
    OffsetMovedToTieredStorage = 109, false, "OFFSET_MOVED_TO_TIERED_STORAGE";
    /// The consumer group member epoch was fenced.
    FencedMemberEpoch = 110, false, "FENCED_MEMBER_EPOCH";
    /// The static instance id has not been released yet.
    UnreleasedInstanceId = 111, false, "UNRELEASED_INSTANCE_ID";
    /// The assignor is not supported by the group.
    UnsupportedAssignor = 112, false, "UNSUPPORTED_ASSIGNOR";
    /// The member epoch is stale.
    StaleMemberEpoch = 113, false, "STALE_MEMBER_EPOCH";
    /// The request was sent to an endpoint of the wrong type (broker vs controller).
    MismatchedEndpointType = 114, false, "MISMATCHED_ENDPOINT_TYPE";
    /// The endpoint type is not supported for this request.
    UnsupportedEndpointType = 115, false, "UNSUPPORTED_ENDPOINT_TYPE";
    /// The controller id is not known.
    UnknownControllerId = 116, false, "UNKNOWN_CONTROLLER_ID";
    /// The client telemetry subscription id is not known.
    UnknownSubscriptionId = 117, false, "UNKNOWN_SUBSCRIPTION_ID";
    /// The client telemetry payload is too large.
    TelemetryTooLarge = 118, false, "TELEMETRY_TOO_LARGE";
    /// The controller rejected the broker registration.
    InvalidRegistration = 119, false, "INVALID_REGISTRATION";
    /// The transaction must be aborted by the client.
    TransactionAbortable = 120, false, "TRANSACTION_ABORTABLE";
    /// The record state is invalid (share groups).
    InvalidRecordState = 121, false, "INVALID_RECORD_STATE";
    /// The share session was not found.
    ShareSessionNotFound = 122, true, "SHARE_SESSION_NOT_FOUND";
    /// The share session epoch is invalid.
    InvalidShareSessionEpoch = 123, true, "INVALID_SHARE_SESSION_EPOCH";
    /// The share coordinator state epoch is fenced.
    FencedStateEpoch = 124, false, "FENCED_STATE_EPOCH";
    /// The voter key does not match the receiving replica's.
    InvalidVoterKey = 125, false, "INVALID_VOTER_KEY";
    /// The voter is already in the voter set.
    DuplicateVoter = 126, false, "DUPLICATE_VOTER";
    /// The voter is not in the voter set.
    VoterNotFound = 127, false, "VOTER_NOT_FOUND";
    /// The regular expression is invalid.
    InvalidRegularExpression = 128, false, "INVALID_REGULAR_EXPRESSION";
    /// The client must re-bootstrap its metadata.
    RebootstrapRequired = 129, false, "REBOOTSTRAP_REQUIRED";
    /// The streams topology is invalid.
    StreamsInvalidTopology = 130, false, "STREAMS_INVALID_TOPOLOGY";
    /// The streams topology epoch is invalid.
    StreamsInvalidTopologyEpoch = 131, false, "STREAMS_INVALID_TOPOLOGY_EPOCH";
    /// The streams topology was fenced.
    StreamsTopologyFenced = 132, false, "STREAMS_TOPOLOGY_FENCED";
    /// The share session limit was reached.
    ShareSessionLimitReached = 133, true, "SHARE_SESSION_LIMIT_REACHED";
}

impl fmt::Display for KafkaErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (code {}): {}",
            self.name(),
            self.code(),
            self.description()
        )
    }
}

impl std::error::Error for KafkaErrorCode {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for e in KafkaErrorCode::all() {
            assert!(seen.insert(e.code()), "duplicate code {}", e.code());
            assert_eq!(KafkaErrorCode::from_code(e.code()), Some(*e));
            assert!(e.name().chars().all(|c| c.is_ascii_uppercase() || c == '_'));
        }
        assert_eq!(seen.len(), 134);
        assert_eq!(KafkaErrorCode::from_code(0), None);
        assert_eq!(
            KafkaErrorCode::from_code(999),
            Some(KafkaErrorCode::Unknown(999))
        );
    }

    #[test]
    fn agrees_with_kafka_protocol_crate_on_every_code() {
        // Names (case-insensitively, without underscores) and retriability must match the
        // table in the kafka-protocol crate, which is generated from Kafka's own sources.
        use kafka_protocol::error::ResponseError;
        for e in KafkaErrorCode::all() {
            let theirs = ResponseError::try_from_code(e.code()).expect("known code");
            assert!(
                !matches!(theirs, ResponseError::Unknown(_)),
                "{} unknown to kafka-protocol",
                e.name()
            );
            let their_name = format!("{theirs:?}").to_ascii_lowercase();
            assert_eq!(their_name, e.name().replace('_', "").to_ascii_lowercase());
            assert_eq!(theirs.is_retriable(), e.is_retriable(), "{}", e.name());
        }
    }

    #[test]
    fn display_names_code_and_meaning() {
        assert_eq!(
            KafkaErrorCode::NotController.to_string(),
            "NOT_CONTROLLER (code 41): The request went to a broker that is not the controller; refresh metadata."
        );
        assert!(KafkaErrorCode::NotLeaderOrFollower.is_retriable());
        assert!(!KafkaErrorCode::SaslAuthenticationFailed.is_retriable());
    }
}
