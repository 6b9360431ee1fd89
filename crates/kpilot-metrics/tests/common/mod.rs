//! What the metrics tests share: a bounded producer of a known rate (loopback only) and the
//! 10% check of a measured rate against it.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use kpilot_cluster::{TopicName, TopicPartition};
use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig};
use kpilot_metrics::Reading;

/// One record: 100 kB.
pub const RECORD: usize = 100_000;
/// One produce call per tick, rotating over the partitions.
pub const TICK: Duration = Duration::from_millis(100);

/// A load: `records_per_tick` records every [`TICK`] for `seconds`, their sizes taken in turn
/// from `sizes` (record `j` of tick `i` is `sizes[(i x records_per_tick + j) % len]`).
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub partitions: i32,
    pub records_per_tick: usize,
    pub seconds: u64,
    pub sizes: &'static [usize],
}

impl Load {
    /// The rate asked for, bytes per second (over whole cycles of `sizes`).
    pub fn rate(&self) -> f64 {
        let mean = self.sizes.iter().sum::<usize>() as f64 / self.sizes.len() as f64;
        mean * self.records_per_tick as f64 / TICK.as_secs_f64()
    }

    /// Produces on an absolute schedule (tick i at start + i x TICK), rotating over the
    /// partitions. Bounded in ticks and time. Returns (bytes acknowledged, elapsed).
    pub async fn produce(self, admin: AdminClient, topic: TopicName) -> (u64, Duration) {
        let payloads: Vec<Bytes> = self
            .sizes
            .iter()
            .map(|n| Bytes::from(vec![0x5a_u8; *n]))
            .collect();
        let duration = Duration::from_secs(self.seconds);
        let ticks = (duration.as_millis() / TICK.as_millis()) as u32;
        let start = tokio::time::Instant::now();
        let mut sent = 0u64;
        for i in 0..ticks {
            let records: Vec<(Option<Bytes>, Option<Bytes>)> = (0..self.records_per_tick)
                .map(|j| {
                    let k = (i as usize * self.records_per_tick + j) % payloads.len();
                    (None, Some(payloads[k].clone()))
                })
                .collect();
            tokio::time::sleep_until(start + TICK * i).await;
            let tp = TopicPartition::new(topic.clone(), (i as i32) % self.partitions);
            admin.produce(&tp, &records).await.expect("produce");
            sent += records
                .iter()
                .map(|r| r.1.as_ref().map_or(0, Bytes::len))
                .sum::<usize>() as u64;
            assert!(
                start.elapsed() < duration + Duration::from_secs(15),
                "the producer fell far behind its schedule"
            );
        }
        (sent, start.elapsed())
    }
}

/// Asserts that `measured` has a value within 10% of `expected` (bytes per second); returns it.
pub fn within(measured: &Reading, expected: f64, what: &str) -> f64 {
    let value = measured
        .value()
        .unwrap_or_else(|| panic!("{what}: no value: {measured:?}"))
        .bytes_per_s();
    let error = (value - expected).abs() / expected;
    eprintln!(
        "{what}: measured {:.3} MB/s, produced {:.3} MB/s, error {:.1}%",
        value / 1e6,
        expected / 1e6,
        error * 100.0
    );
    assert!(
        error <= 0.10,
        "{what}: {value} B/s is not within 10% of {expected} B/s"
    );
    value
}

/// A 2-thread runtime and an admin client of `cluster`.
pub fn connect(cluster: &kpilot_testbed::KafkaCluster) -> (tokio::runtime::Runtime, AdminClient) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let bootstrap = BrokerAddress::parse_list(&cluster.bootstrap()).expect("bootstrap");
    let admin = rt
        .block_on(AdminClient::connect(ClientConfig::new(bootstrap)))
        .expect("connect");
    (rt, admin)
}
