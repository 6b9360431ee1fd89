//! Producing records: a minimal idempotent `acks=all` producer (one uncompressed batch per
//! call, sent to the partition leader) and DescribeProducers, which shows what the leader
//! tracks of each producer. Used by the tests and benchmarks that put load on a cluster while
//! kpilot moves it. Performs network I/O.
//!
//! Why idempotent: a batch whose outcome is unknown must be retried, and without a producer id
//! a retry can append it twice. That happens under exactly the operations kpilot runs. The
//! leader appends a batch, followers copy it, then leadership moves (a drain, a roll, a
//! preferred election) before `acks=all` is answered. The old leader then answers
//! NOT_LEADER_OR_FOLLOWER although the batch is in the new leader's log. With a producer id and
//! a sequence number per partition, the broker recognises the retried batch and answers with
//! the offset of the first copy instead of appending it again.
//!
//! Bookkeeping: one producer id per client, taken lazily with InitProducerId; the next sequence
//! per partition; calls to one partition take turns (a later batch must not overtake an earlier
//! one that is being retried). A call that fails leaves its batch's fate unknown, so the
//! session is dropped and the next call starts a new producer id at sequence 0: reusing the
//! sequence could make the broker discard the next batch as a duplicate, skipping it could make
//! it refuse the next as out of order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{self as kp};
use kpilot_cluster::TopicPartition;
use serde::Serialize;

use crate::admin::{AdminClient, AdminError, Route, broker_error, kp_topic};
use crate::error_code::KafkaErrorCode;

/// The producer id, epoch and next sequences one client produces with.
#[derive(Debug, Default)]
pub(crate) struct ProducerState {
    session: Mutex<Option<Session>>,
    turns: Mutex<HashMap<TopicPartition, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    id: i64,
    epoch: i16,
    next: HashMap<TopicPartition, i32>,
}

/// What one batch is sent as: the producer id and epoch and the batch's first sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    id: i64,
    epoch: i16,
    sequence: i32,
}

impl ProducerState {
    /// The lock a call to `tp` holds while its batch is in flight.
    fn turn(&self, tp: &TopicPartition) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        turns.entry(tp.clone()).or_default().clone()
    }

    /// The stamp for a batch of `count` records to `tp`, or `None` when a new producer id is
    /// needed: there is none yet, or the partition's sequence would pass `i32::MAX`.
    fn stamp(&self, tp: &TopicPartition, count: i32) -> Option<Stamp> {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let s = session.as_ref()?;
        let sequence = s.next.get(tp).copied().unwrap_or(0);
        if sequence > i32::MAX - count {
            *session = None;
            return None;
        }
        Some(Stamp {
            id: s.id,
            epoch: s.epoch,
            sequence,
        })
    }

    /// Starts a session with a new producer id, unless another call started one meanwhile.
    fn begin(&self, id: i64, epoch: i16) {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if session.is_none() {
            *session = Some(Session {
                id,
                epoch,
                next: HashMap::new(),
            });
        }
    }

    /// Records how a batch stamped `stamp` ended: acknowledged moves the partition's sequence
    /// on; failed ends the session (its fate is unknown). A session that already ended is left
    /// alone.
    fn finish(&self, tp: &TopicPartition, stamp: Stamp, count: i32, acknowledged: bool) {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = session.as_mut() else {
            return;
        };
        if (s.id, s.epoch) != (stamp.id, stamp.epoch) {
            return;
        }
        if acknowledged {
            s.next.insert(tp.clone(), stamp.sequence + count);
        } else {
            *session = None;
        }
    }
}

/// A producer as the partition leader tracks it (DescribeProducers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveProducer {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i32,
    /// The sequence number of the last record appended.
    pub last_sequence: i32,
    /// When the last batch was appended (ms since the epoch), if known.
    pub last_timestamp_ms: Option<i64>,
}

impl AdminClient {
    /// Produces records to one partition with `acks=all` and returns the base offset: one
    /// uncompressed batch, idempotent (see the module docs). Retries every retriable failure,
    /// including the ones whose outcome is unknown (connection lost after sending, leadership
    /// moved before the acknowledgement): the broker appends a retried batch at most once.
    pub async fn produce(
        &self,
        tp: &TopicPartition,
        records: &[(Option<Bytes>, Option<Bytes>)],
    ) -> Result<i64, AdminError> {
        let count = i32::try_from(records.len()).map_err(|_| AdminError::EncodeRecords {
            partition: tp.clone(),
            message: format!("{} records do not fit one batch", records.len()),
        })?;
        let state = self.producer_state();
        let turn = state.turn(tp);
        let _turn = turn.lock().await;
        let stamp = match state.stamp(tp, count) {
            Some(stamp) => stamp,
            None => {
                let (id, epoch) = self.init_producer_id().await?;
                state.begin(id, epoch);
                state
                    .stamp(tp, count)
                    .ok_or_else(|| AdminError::InvalidResponse {
                        operation: "InitProducerId",
                        message: "the producer session ended as it began".to_string(),
                    })?
            }
        };
        let request = produce_request(tp, records, stamp, self.timeout_ms())?;
        let outcome = self
            .retrying("Produce", self.api_timeout(), || {
                self.send_batch(tp, &request)
            })
            .await;
        state.finish(tp, stamp, count, outcome.is_ok());
        outcome
    }

    /// A producer id for a non-transactional producer.
    async fn init_producer_id(&self) -> Result<(i64, i16), AdminError> {
        let request = kp::InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(kp::ProducerId(-1))
            .with_producer_epoch(-1);
        self.retrying("InitProducerId", self.api_timeout(), || async {
            let response = self.call(Route::Any, &request).await?;
            broker_error(
                "InitProducerId",
                "an idempotent producer id",
                response.error_code,
                None,
            )?;
            Ok((response.producer_id.0, response.producer_epoch))
        })
        .await
    }

    /// One attempt: the batch to the leader.
    async fn send_batch(
        &self,
        tp: &TopicPartition,
        request: &kp::ProduceRequest,
    ) -> Result<i64, AdminError> {
        let leader = self.leader_of(tp).await?;
        let response = self.call(Route::Broker(leader), request).await?;
        let p = response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .next()
            .ok_or_else(|| AdminError::InvalidResponse {
                operation: "Produce",
                message: "no partition in the response".to_string(),
            })?;
        match KafkaErrorCode::from_code(p.error_code) {
            // A duplicate is a batch the broker already has: it was appended once.
            None | Some(KafkaErrorCode::DuplicateSequenceNumber) => Ok(p.base_offset),
            Some(error) => {
                let mut details: Vec<String> =
                    p.error_message.iter().map(|m| m.to_string()).collect();
                details.extend(p.record_errors.iter().map(|r| {
                    format!(
                        "record {}: {}",
                        r.batch_index,
                        r.batch_index_error_message.as_deref().unwrap_or("rejected")
                    )
                }));
                Err(AdminError::Broker {
                    operation: "Produce",
                    resource: tp.to_string(),
                    error,
                    message: (!details.is_empty()).then(|| details.join("; ")),
                })
            }
        }
    }

    /// The producers the partition's leader tracks: the idempotent and transactional producers
    /// that appended to it and have not expired.
    pub async fn describe_producers(
        &self,
        tp: &TopicPartition,
    ) -> Result<Vec<ActiveProducer>, AdminError> {
        let request = kp::DescribeProducersRequest::default().with_topics(vec![
            kp::describe_producers_request::TopicRequest::default()
                .with_name(kp_topic(&tp.topic))
                .with_partition_indexes(vec![tp.partition]),
        ]);
        self.retrying("DescribeProducers", self.api_timeout(), || async {
            let leader = self.leader_of(tp).await?;
            let response = self.call(Route::Broker(leader), &request).await?;
            let p = response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == tp.partition)
                .ok_or_else(|| AdminError::InvalidResponse {
                    operation: "DescribeProducers",
                    message: format!("{tp} is not in the response"),
                })?;
            broker_error(
                "DescribeProducers",
                tp,
                p.error_code,
                p.error_message.as_ref(),
            )?;
            Ok(p.active_producers
                .iter()
                .map(|a| ActiveProducer {
                    producer_id: a.producer_id.0,
                    producer_epoch: a.producer_epoch,
                    last_sequence: a.last_sequence,
                    last_timestamp_ms: (a.last_timestamp >= 0).then_some(a.last_timestamp),
                })
                .collect())
        })
        .await
    }
}

/// The Produce request for one batch stamped with the producer id, epoch and base sequence.
fn produce_request(
    tp: &TopicPartition,
    records: &[(Option<Bytes>, Option<Bytes>)],
    stamp: Stamp,
    timeout_ms: i32,
) -> Result<kp::ProduceRequest, AdminError> {
    use kafka_protocol::records::{
        Compression, NO_PARTITION_LEADER_EPOCH, Record, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let batch: Vec<Record> = records
        .iter()
        .zip(0i32..)
        .map(|((key, value), i)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: stamp.id,
            producer_epoch: stamp.epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            // The encoder keeps records in one batch while `offset - sequence` is constant
            // (brokers accept exactly one batch per partition and request); the batch's base
            // sequence is the first record's.
            sequence: stamp.sequence + i,
            timestamp: now,
            key: key.clone(),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &batch,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| AdminError::EncodeRecords {
        partition: tp.clone(),
        message: e.to_string(),
    })?;
    Ok(kp::ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            kp::produce_request::TopicProduceData::default()
                .with_name(kp_topic(&tp.topic))
                .with_partition_data(vec![
                    kp::produce_request::PartitionProduceData::default()
                        .with_index(tp.partition)
                        .with_records(Some(buf.freeze())),
                ]),
        ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new(kpilot_cluster::TopicName::new("t").unwrap(), p)
    }

    #[test]
    fn acknowledged_batches_move_their_partition_sequence_on() {
        let state = ProducerState::default();
        assert_eq!(state.stamp(&tp(0), 10), None, "no producer id yet");
        state.begin(7, 0);
        let first = state.stamp(&tp(0), 10).unwrap();
        assert_eq!((first.id, first.epoch, first.sequence), (7, 0, 0));
        state.finish(&tp(0), first, 10, true);
        assert_eq!(state.stamp(&tp(0), 10).unwrap().sequence, 10);
        assert_eq!(
            state.stamp(&tp(1), 10).unwrap().sequence,
            0,
            "per partition"
        );
    }

    #[test]
    fn a_failed_batch_ends_the_session_so_the_next_gets_a_new_producer_id() {
        let state = ProducerState::default();
        state.begin(7, 0);
        let ok = state.stamp(&tp(0), 10).unwrap();
        state.finish(&tp(0), ok, 10, true);
        let failed = state.stamp(&tp(0), 10).unwrap();
        state.finish(&tp(0), failed, 10, false);
        assert_eq!(state.stamp(&tp(0), 10), None);
        state.begin(8, 0);
        let next = state.stamp(&tp(0), 10).unwrap();
        assert_eq!((next.id, next.sequence), (8, 0));
        // A batch of the old session that ends now changes nothing in the new one.
        state.finish(&tp(1), failed, 10, false);
        state.finish(&tp(0), ok, 10, true);
        assert_eq!(state.stamp(&tp(0), 10).unwrap(), next);
    }

    #[test]
    fn a_sequence_that_would_pass_the_maximum_starts_a_new_producer_id() {
        let state = ProducerState::default();
        state.begin(7, 0);
        let stamp = Stamp {
            id: 7,
            epoch: 0,
            sequence: i32::MAX - 15,
        };
        state.finish(&tp(0), stamp, 10, true);
        assert_eq!(state.stamp(&tp(0), 5).unwrap().sequence, i32::MAX - 5);
        assert_eq!(state.stamp(&tp(0), 6), None);
        assert_eq!(state.stamp(&tp(1), 1), None, "the whole session ended");
    }

    #[test]
    fn a_session_begun_meanwhile_is_kept() {
        let state = ProducerState::default();
        state.begin(7, 0);
        state.begin(8, 0);
        assert_eq!(state.stamp(&tp(0), 1).unwrap().id, 7);
    }

    #[test]
    fn the_batch_carries_the_producer_id_and_consecutive_sequences() {
        let stamp = Stamp {
            id: 42,
            epoch: 3,
            sequence: 100,
        };
        let records = vec![(None, Some(Bytes::from_static(b"v"))); 3];
        let request = produce_request(&tp(0), &records, stamp, 1000).unwrap();
        let mut bytes = request.topic_data[0].partition_data[0]
            .records
            .clone()
            .unwrap();
        let batches =
            kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).expect("decodes");
        assert_eq!(
            batches.len(),
            1,
            "one batch: brokers take one per partition"
        );
        let seen: Vec<(i64, i16, i32)> = batches[0]
            .records
            .iter()
            .map(|r| (r.producer_id, r.producer_epoch, r.sequence))
            .collect();
        assert_eq!(seen, vec![(42, 3, 100), (42, 3, 101), (42, 3, 102)]);
        assert_eq!(request.acks, -1);
    }
}
