//! The Kafka adapter: samples the cluster through the admin client (metadata, log-end
//! offsets, every broker's log directories, every consumer group's committed offsets), waits
//! the window, samples again, and lets [`crate::deltas`] compute the rates. Performs network
//! I/O and sleeps for the window.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kpilot_cluster::TopicPartition;
use kpilot_kafka::{AdminClient, OffsetSpec};
use kpilot_units::Span;

use crate::MetricsSource;
use crate::deltas::{KafkaSample, measure_between};
use crate::error::MetricsError;
use crate::measurement::Measurement;

/// Measures a cluster's load from Kafka itself: no metrics system needed, but no history
/// either, so [`MetricsSource::measure`] watches the cluster for the whole window.
#[derive(Debug, Clone)]
pub struct KafkaSource {
    admin: AdminClient,
    started: Instant,
}

impl KafkaSource {
    /// A source reading through `admin`.
    pub fn new(admin: AdminClient) -> Self {
        KafkaSource {
            admin,
            started: Instant::now(),
        }
    }

    fn kafka(what: impl Into<String>) -> impl FnOnce(kpilot_kafka::AdminError) -> MetricsError {
        let what = what.into();
        move |source| MetricsError::Kafka { what, source }
    }

    /// Reads one sample of the cluster now.
    pub async fn sample(&self) -> Result<KafkaSample, MetricsError> {
        let metadata = self
            .admin
            .metadata()
            .await
            .map_err(Self::kafka("cluster metadata"))?;
        let mut sample = KafkaSample {
            brokers: metadata.brokers.keys().map(|b| b.0).collect(),
            ..KafkaSample::default()
        };
        let mut partitions: Vec<TopicPartition> = Vec::new();
        for (name, topic) in &metadata.topics {
            if topic.internal || name.as_str().starts_with("__") {
                continue;
            }
            for (index, p) in &topic.partitions {
                let tp = TopicPartition::new(name.clone(), *index);
                sample.partitions.insert(
                    tp.clone(),
                    (
                        p.leader.map(|b| b.0),
                        p.replicas.iter().map(|b| b.0).collect(),
                    ),
                );
                partitions.push(tp);
            }
        }
        if !partitions.is_empty() {
            sample.start_offsets = self
                .admin
                .list_offsets(&partitions, OffsetSpec::Earliest)
                .await
                .map_err(Self::kafka("log start offsets"))?;
            sample.end_offsets = self
                .admin
                .list_offsets(&partitions, OffsetSpec::Latest)
                .await
                .map_err(Self::kafka("log-end offsets"))?;
        }
        sample.at_secs = self.started.elapsed().as_secs_f64();
        for &broker in metadata.brokers.keys() {
            match self.admin.describe_log_dirs(broker).await {
                Ok(dirs) => {
                    for dir in dirs {
                        if let Some(e) = &dir.error {
                            sample
                                .unreadable_brokers
                                .insert(broker.0, format!("log directory {}: {e}", dir.path));
                        }
                        for r in dir.replicas.iter().filter(|r| !r.is_future) {
                            *sample
                                .replica_sizes
                                .entry((broker.0, r.topic_partition.clone()))
                                .or_default() += r.size_bytes;
                        }
                    }
                }
                Err(e) => {
                    sample.unreadable_brokers.insert(broker.0, e.to_string());
                }
            }
        }
        match self.admin.list_groups().await {
            Ok(groups) => {
                for g in groups {
                    match self.admin.group_offsets(&g.group_id).await {
                        Ok(o) => {
                            sample.group_offsets.insert(g.group_id, o.offsets);
                        }
                        Err(e) => sample
                            .warnings
                            .push(format!("committed offsets of group {}: {e}", g.group_id)),
                    }
                }
            }
            Err(e) => sample
                .warnings
                .push(format!("listing consumer groups: {e}")),
        }
        Ok(sample)
    }
}

impl MetricsSource for KafkaSource {
    fn describe(&self) -> String {
        let bootstrap: Vec<String> = self
            .admin
            .config()
            .bootstrap
            .iter()
            .map(ToString::to_string)
            .collect();
        format!("kafka {}", bootstrap.join(","))
    }

    /// Samples, waits `window`, samples again: takes at least `window`.
    async fn measure(&self, window: Span) -> Result<Measurement, MetricsError> {
        if window.secs().is_nan() || window.secs() <= 0.0 {
            return Err(MetricsError::InvalidSetting {
                name: "window",
                value: window.to_string(),
                expected: "a positive duration, e.g. 30s",
            });
        }
        let before = self.sample().await?;
        let wait = window.secs() - (self.started.elapsed().as_secs_f64() - before.at_secs);
        if wait > 0.0 {
            tokio::time::sleep(std::time::Duration::from_secs_f64(wait)).await;
        }
        let after = self.sample().await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let m = measure_between(&before, &after, self.describe(), now);
        for w in &m.warnings {
            tracing::warn!(source = %m.source, "{w}");
        }
        Ok(m)
    }
}
