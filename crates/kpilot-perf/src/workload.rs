//! What one load test run does ([`Workload`]): topics, record shape, producers and consumer
//! groups, client settings, the stepped rates and the optional credit-depletion phase; with
//! the checks every workload must pass, whether it came from flags or a file. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use kpilot_units::{ParseError, Span, Throughput};
use serde::{Serialize, Serializer};
use thiserror::Error;

/// Default stop rule: stop stepping once a step sent less than this fraction of what it asked.
pub const DEFAULT_STOP_RATIO: f64 = 0.995;

/// Smallest record that carries the 16-byte timestamp consumers need for end-to-end latency.
pub const STAMP_LEN: usize = 16;

/// Largest record size accepted (librdkafka's default `message.max.bytes` is 1 MB).
pub const MAX_RECORD_SIZE: u64 = 64 * 1024 * 1024;

/// The longest any single phase may last; runs must be bounded.
pub const MAX_PHASE: Duration = Duration::from_secs(24 * 3600);

/// The most clients of one kind a run starts (producers; consumers over all groups): each
/// is a librdkafka client with its own threads and a connection to every broker.
pub const MAX_CLIENTS: u32 = 256;

/// The most partitions a run creates over all its topics: a typo'd `--partitions 100000000`
/// must not load a cluster's controller with a hundred million partitions.
pub const MAX_PARTITIONS: u64 = 100_000;

/// Why a workload setting is invalid. Each variant says what to do instead.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Problem {
    /// A key that the workload format does not have.
    #[error("unknown key{}; valid keys here: {valid}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownKey {
        /// The keys that are valid at this place, comma-separated.
        valid: String,
        /// The valid key closest to the one written, if any is close.
        suggestion: Option<String>,
    },
    /// A required key is absent.
    #[error("missing: {hint}")]
    Missing {
        /// What to write.
        hint: &'static str,
    },
    /// A list with no values.
    #[error("empty list: give at least one value, or remove the key to use the default")]
    EmptyList,
    /// A quantity with a missing, unknown or ambiguous unit, or an unreadable number.
    #[error("{0}")]
    Quantity(#[from] ParseError),
    /// The YAML node has the wrong shape (a list where a mapping belongs...).
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What belongs here.
        expected: &'static str,
        /// What was written.
        found: &'static str,
    },
    /// A value that is not one of the accepted words or numbers.
    #[error("'{value}' is not valid: expected {expected}")]
    InvalidValue {
        /// The value as written.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// A value outside its allowed range.
    #[error("{value} is out of range: {range}")]
    OutOfRange {
        /// The value as written or computed.
        value: String,
        /// The allowed range.
        range: String,
    },
    /// Two settings that contradict each other.
    #[error("{0}")]
    Conflict(String),
    /// The lists of a workload file multiply into too many runs.
    #[error("the lists in this file combine into {runs} runs; at most {max} are allowed")]
    TooManyRuns {
        /// Number of runs the cross product would give.
        runs: u128,
        /// The limit.
        max: usize,
    },
}

/// A workload setting that failed validation, named by its workload-file key (for example
/// `producer.batch_size`); flags map to the same keys.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("workload setting `{key}`: {problem}")]
pub struct InvalidSetting {
    /// The dotted key of the setting.
    pub key: String,
    /// What is wrong.
    pub problem: Box<Problem>,
}

impl InvalidSetting {
    fn new(key: &str, problem: Problem) -> Self {
        Self {
            key: key.to_string(),
            problem: Box::new(problem),
        }
    }
}

/// How fast producers send: a data rate, a message rate, or as fast as the cluster takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Unthrottled: send whenever the client accepts another record.
    Max,
    /// Records per second.
    Messages(f64),
    /// Bytes per second of record payload.
    Bytes(Throughput),
}

impl Rate {
    /// Records per second for records of `record_size` bytes (`None` for [`Rate::Max`]).
    pub fn messages_per_s(self, record_size: u64) -> Option<f64> {
        match self {
            Rate::Max => None,
            Rate::Messages(m) => Some(m),
            Rate::Bytes(t) => Some(t.bytes_per_s() / record_size.max(1) as f64),
        }
    }

    /// Payload bytes per second for records of `record_size` bytes (`None` for [`Rate::Max`]).
    pub fn bytes_per_s(self, record_size: u64) -> Option<f64> {
        self.messages_per_s(record_size)
            .map(|m| m * record_size as f64)
    }
}

impl FromStr for Rate {
    type Err = ParseError;

    /// `max` (or `unlimited`), `5000msg/s` (or `5000/s`), or a data rate such as `50MB/s`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.eq_ignore_ascii_case("max") || s.eq_ignore_ascii_case("unlimited") {
            return Ok(Rate::Max);
        }
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let per_msg = compact
            .strip_suffix("msg/s")
            .or_else(|| compact.strip_suffix("msgs/s"))
            .or_else(|| compact.strip_suffix("rec/s"))
            .or_else(|| {
                compact.strip_suffix("/s").filter(|n| {
                    n.chars()
                        .all(|c| c.is_ascii_digit() || c == '.' || c == '_')
                })
            });
        if let Some(number) = per_msg {
            let cleaned: String = number.chars().filter(|&c| c != '_').collect();
            return match cleaned.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(Rate::Messages(v)),
                Ok(_) => Err(ParseError::OutOfRange {
                    what: "rate",
                    input: input.to_string(),
                }),
                Err(_) => Err(ParseError::InvalidNumber {
                    what: "rate",
                    input: input.to_string(),
                    number: number.to_string(),
                    example: "5000msg/s",
                }),
            };
        }
        // A data rate: its errors list every form a rate takes, not only the data units.
        s.parse::<Throughput>()
            .map(Rate::Bytes)
            .map_err(|e| match e {
                ParseError::Empty { .. } => ParseError::Empty {
                    what: "rate",
                    example: RATE_EXAMPLES,
                },
                ParseError::InvalidNumber { input, number, .. } => ParseError::InvalidNumber {
                    what: "rate",
                    input,
                    number,
                    example: RATE_EXAMPLES,
                },
                ParseError::MissingUnit { input, .. } => ParseError::MissingUnit {
                    what: "rate",
                    input,
                    units: RATE_UNITS,
                    example: RATE_EXAMPLES,
                },
                ParseError::UnknownUnit { input, unit, .. } => ParseError::UnknownUnit {
                    what: "rate",
                    input,
                    unit,
                    units: RATE_UNITS,
                },
                other => other,
            })
    }
}

/// Every form a [`Rate`] is written in, as its errors list them: the data units of
/// [`Throughput::UNITS`], then records and `max`.
const RATE_UNITS: &str = "B/s, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s, Mbit/s, Gbit/s (Mbps, Gbps) for data, msg/s (or /s) for records, or max for no limit";

/// One example of each form of a [`Rate`].
const RATE_EXAMPLES: &str = "5MB/s, 2000msg/s or max";

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::Messages(m) => write!(f, "{m}msg/s"),
            Rate::Bytes(t) => {
                let mb = t.mb_per_s();
                write!(f, "{}MB/s", trim_float(mb))
            }
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `acks`: how many replicas must have a record before the broker acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    /// `acks=all`: every in-sync replica (at least `min.insync.replicas`).
    All,
    /// `acks=1`: the leader only.
    Leader,
    /// `acks=0`: no acknowledgement (latency is then only the local send).
    None,
}

impl Acks {
    /// The client property value.
    pub fn property(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        }
    }
}

impl FromStr for Acks {
    type Err = Problem;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" | "-1" => Ok(Acks::All),
            "1" | "leader" => Ok(Acks::Leader),
            "0" | "none" => Ok(Acks::None),
            _ => Err(Problem::InvalidValue {
                value: s.to_string(),
                expected: "all (or -1), 1 (leader) or 0 (none)".into(),
            }),
        }
    }
}

/// `compression.type` of the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip (zlib).
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The client property value.
    pub fn property(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl FromStr for Compression {
    type Err = Problem;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(Problem::InvalidValue {
                value: s.to_string(),
                expected: "none, gzip, snappy, lz4 or zstd".into(),
            }),
        }
    }
}

/// Producer client settings. `None` leaves librdkafka's default.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProducerSettings {
    /// `acks`.
    pub acks: Acks,
    /// `batch.size` in bytes.
    pub batch_size: Option<u64>,
    /// `linger.ms` in milliseconds.
    pub linger_ms: Option<f64>,
    /// `compression.type`.
    pub compression: Compression,
    /// `enable.idempotence`.
    pub idempotence: Option<bool>,
    /// Any other librdkafka producer property, passed as is.
    pub properties: BTreeMap<String, String>,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        Self {
            acks: Acks::All,
            batch_size: None,
            linger_ms: None,
            compression: Compression::None,
            idempotence: None,
            properties: BTreeMap::new(),
        }
    }
}

impl ProducerSettings {
    /// Every client property these settings imply (without `bootstrap.servers`), the dedicated
    /// settings first, then `properties`.
    pub fn client_properties(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("acks".to_string(), self.acks.property().to_string()),
            (
                "compression.type".to_string(),
                self.compression.property().to_string(),
            ),
        ];
        if let Some(b) = self.batch_size {
            out.push(("batch.size".into(), b.to_string()));
        }
        if let Some(l) = self.linger_ms {
            out.push(("linger.ms".into(), trim_float(l)));
        }
        if let Some(i) = self.idempotence {
            out.push(("enable.idempotence".into(), i.to_string()));
        }
        out.extend(self.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

/// Consumer client settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConsumerSettings {
    /// Any librdkafka consumer property, passed as is.
    pub properties: BTreeMap<String, String>,
}

/// One step of the stepped test: a target rate held for `warmup` (not measured) then
/// `duration` (measured).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Step {
    /// The requested rate.
    pub rate: Rate,
    /// Time at this rate before measuring.
    #[serde(serialize_with = "secs")]
    pub warmup: Duration,
    /// Measured time at this rate.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
}

/// The optional credit-depletion phase: produce unthrottled until the acknowledged throughput
/// has risen above `above` and then fallen below `below` (burst credits spent), at most
/// `max_duration`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CreditDepletion {
    /// Throughput that shows the cluster is bursting.
    pub above: Throughput,
    /// Throughput that shows the credits are gone.
    pub below: Throughput,
    /// Upper bound on the phase.
    #[serde(serialize_with = "secs")]
    pub max_duration: Duration,
}

/// One fully specified load test run (a workload file expands into one or more).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    /// Name shown in reports.
    pub name: String,
    /// The list values that distinguish this run from the file's other runs (`key=value`).
    pub labels: Vec<(String, String)>,
    /// Topic name, or prefix when `topics` > 1 (`NAME-0`, `NAME-1`, ...).
    pub topic: String,
    /// Number of topics.
    pub topics: u32,
    /// Partitions per topic (when the run creates it).
    pub partitions: i32,
    /// Replication factor (when the run creates the topic).
    pub replication_factor: i32,
    /// Bytes of payload per record.
    pub record_size: u64,
    /// Fraction (0 to 1) of each payload that compresses away; 0 is random bytes.
    pub compressibility: f64,
    /// Producer threads, each with its own client, sharing the rate equally.
    pub producers: u32,
    /// Consumer groups reading every topic.
    pub consumer_groups: u32,
    /// Consumers (threads, each its own client) per group.
    pub consumers_per_group: u32,
    /// Producer client settings.
    pub producer: ProducerSettings,
    /// Consumer client settings.
    pub consumer: ConsumerSettings,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Stop stepping when a step sent less than this fraction of the records it asked for.
    pub stop_ratio: f64,
    /// Optional credit-depletion phase before the first step.
    pub credit_depletion: Option<CreditDepletion>,
    /// Length of a reporting window (a live line and a JSON window each).
    #[serde(serialize_with = "secs")]
    pub interval: Duration,
    /// How long to wait at the end for records still in flight.
    #[serde(serialize_with = "secs")]
    pub flush_timeout: Duration,
}

impl Workload {
    /// A workload with the defaults and these steps: topic `kpilot-perf`, 1 topic of 6
    /// partitions with replication factor 3, 1 KiB random records, 1 producer, no consumers,
    /// acks=all, 5 s windows, 30 s flush timeout.
    pub fn with_steps(steps: Vec<Step>) -> Self {
        Self {
            name: "kpilot-perf".into(),
            labels: Vec::new(),
            topic: "kpilot-perf".into(),
            topics: 1,
            partitions: 6,
            replication_factor: 3,
            record_size: 1024,
            compressibility: 0.0,
            producers: 1,
            consumer_groups: 0,
            consumers_per_group: 1,
            producer: ProducerSettings::default(),
            consumer: ConsumerSettings::default(),
            steps,
            stop_ratio: DEFAULT_STOP_RATIO,
            credit_depletion: None,
            interval: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(30),
        }
    }

    /// The topic names this run produces to and consumes from.
    pub fn topic_names(&self) -> Vec<String> {
        if self.topics <= 1 {
            vec![self.topic.clone()]
        } else {
            (0..self.topics)
                .map(|i| format!("{}-{i}", self.topic))
                .collect()
        }
    }

    /// Upper bound of the run's length: depletion, every step, and the final flush.
    pub fn max_duration(&self) -> Duration {
        let steps: Duration = self.steps.iter().map(|s| s.warmup + s.duration).sum();
        let depletion = self
            .credit_depletion
            .map(|d| d.max_duration)
            .unwrap_or_default();
        steps + depletion + self.flush_timeout
    }

    /// Checks every setting and the relations between them. The error names the setting by
    /// its workload-file key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let err = |key: &str, p: Problem| Err(InvalidSetting::new(key, p));
        let range = |key: &str, value: String, range: &str| {
            err(
                key,
                Problem::OutOfRange {
                    value,
                    range: range.to_string(),
                },
            )
        };
        if self.topic.trim().is_empty() {
            return err(
                "topic",
                Problem::Missing {
                    hint: "a topic name such as kpilot-perf",
                },
            );
        }
        if let Some(bad) = self
            .topic
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return err(
                "topic",
                Problem::InvalidValue {
                    value: self.topic.clone(),
                    expected: format!(
                        "a Kafka topic name (letters, digits, '.', '_', '-'; not '{bad}')"
                    ),
                },
            );
        }
        if self.topics == 0 {
            return range("topics", "0".into(), "at least 1");
        }
        if self.partitions < 1 {
            return range("partitions", self.partitions.to_string(), "at least 1");
        }
        let partitions = u64::from(self.topics) * self.partitions as u64;
        if partitions > MAX_PARTITIONS {
            return range(
                "partitions",
                format!(
                    "{} x {} topics = {partitions} partitions",
                    self.partitions, self.topics
                ),
                &format!("at most {MAX_PARTITIONS} partitions over all topics"),
            );
        }
        if self.replication_factor < 1 {
            return range(
                "replication_factor",
                self.replication_factor.to_string(),
                "at least 1",
            );
        }
        if self.record_size == 0 || self.record_size > MAX_RECORD_SIZE {
            return range(
                "record_size",
                format!("{} bytes", self.record_size),
                "1 B to 64 MiB",
            );
        }
        if !(0.0..=1.0).contains(&self.compressibility) {
            return range(
                "compressibility",
                self.compressibility.to_string(),
                "0 (random) to 1 (all zeros)",
            );
        }
        if !(1..=MAX_CLIENTS).contains(&self.producers) {
            return range(
                "producers",
                self.producers.to_string(),
                "1 to 256 (each is a client with its own threads and connections)",
            );
        }
        if self.consumers_per_group == 0 {
            return range("consumers_per_group", "0".into(), "at least 1");
        }
        let consumers = u64::from(self.consumer_groups) * u64::from(self.consumers_per_group);
        if consumers > u64::from(MAX_CLIENTS) {
            return range(
                "consumers_per_group",
                format!(
                    "{} x {} groups = {consumers} consumers",
                    self.consumers_per_group, self.consumer_groups
                ),
                "at most 256 consumers over all groups (each is a client with its own threads and connections)",
            );
        }
        if self.steps.is_empty() {
            return err("steps.rates", Problem::EmptyList);
        }
        for (i, step) in self.steps.iter().enumerate() {
            match step.rate {
                Rate::Max => {}
                Rate::Messages(m) if m > 0.0 && m.is_finite() => {}
                Rate::Bytes(t) if t.bytes_per_s() > 0.0 => {}
                other => {
                    return range(
                        "steps.rates",
                        format!("{other} (step {})", i + 1),
                        "above zero, or max",
                    );
                }
            }
            if step.duration.is_zero() {
                return range("steps.duration", "0s".into(), "above zero");
            }
            if step.duration > MAX_PHASE || step.warmup > MAX_PHASE {
                return range(
                    "steps.duration",
                    format!("{:?}", step.duration),
                    "at most 24h",
                );
            }
        }
        if !(self.stop_ratio > 0.0 && self.stop_ratio <= 1.0) {
            return range(
                "stop_ratio",
                self.stop_ratio.to_string(),
                "above 0 and at most 1",
            );
        }
        if let Some(d) = &self.credit_depletion {
            if d.below.bytes_per_s() <= 0.0 {
                return range("credit_depletion.below", d.below.to_string(), "above zero");
            }
            if d.above <= d.below {
                return err(
                    "credit_depletion.below",
                    Problem::Conflict(format!(
                        "below ({}) must be less than above ({}): the phase waits for the throughput to rise above one, then fall below the other",
                        d.below, d.above
                    )),
                );
            }
            if d.max_duration.is_zero() || d.max_duration > MAX_PHASE {
                return range(
                    "credit_depletion.max_duration",
                    format!("{:?}", d.max_duration),
                    "above zero and at most 24h",
                );
            }
        }
        if self.interval < Duration::from_millis(100) || self.interval > Duration::from_secs(3600) {
            return range("interval", format!("{:?}", self.interval), "100ms to 1h");
        }
        if self.flush_timeout > Duration::from_secs(3600) {
            return range(
                "flush_timeout",
                format!("{:?}", self.flush_timeout),
                "at most 1h",
            );
        }
        if let Some(l) = self.producer.linger_ms
            && !(0.0..=900_000.0).contains(&l)
        {
            return range(
                "producer.linger",
                format!("{l}ms"),
                "0 to 900000ms (librdkafka's limit)",
            );
        }
        if let Some(b) = self.producer.batch_size
            && (b == 0 || b > i32::MAX as u64)
        {
            return range("producer.batch_size", format!("{b} bytes"), "1 B to 2 GiB");
        }
        check_properties(
            "producer.properties",
            &self.producer.properties,
            PRODUCER_DEDICATED,
        )?;
        check_properties("consumer.properties", &self.consumer.properties, &[])?;
        Ok(())
    }
}

/// Client properties that have their own workload key (and which key that is).
const PRODUCER_DEDICATED: &[(&str, &str)] = &[
    ("acks", "producer.acks"),
    ("request.required.acks", "producer.acks"),
    ("batch.size", "producer.batch_size"),
    ("linger.ms", "producer.linger"),
    ("queue.buffering.max.ms", "producer.linger"),
    ("compression.type", "producer.compression"),
    ("compression.codec", "producer.compression"),
    ("enable.idempotence", "producer.idempotence"),
];

/// Properties kpilot sets itself.
const RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "set the cluster with --bootstrap"),
    ("metadata.broker.list", "set the cluster with --bootstrap"),
    (
        "group.id",
        "kpilot names the groups itself (kpilot-perf-<run>-g<N>)",
    ),
];

fn check_properties(
    key: &str,
    props: &BTreeMap<String, String>,
    dedicated: &[(&str, &str)],
) -> Result<(), InvalidSetting> {
    for name in props.keys() {
        let full = format!("{key}.{name}");
        if name.trim().is_empty() || name.contains(char::is_whitespace) {
            return Err(InvalidSetting::new(
                &full,
                Problem::InvalidValue {
                    value: name.clone(),
                    expected: "a client property name such as socket.send.buffer.bytes".into(),
                },
            ));
        }
        if let Some((_, why)) = RESERVED.iter().find(|(p, _)| p == name) {
            return Err(InvalidSetting::new(
                &full,
                Problem::Conflict(format!("`{name}` cannot be set here: {why}")),
            ));
        }
        if let Some((_, own)) = dedicated.iter().find(|(p, _)| p == name) {
            return Err(InvalidSetting::new(
                &full,
                Problem::Conflict(format!("`{name}` has its own setting: use `{own}` instead")),
            ));
        }
    }
    Ok(())
}

/// Parses a duration that may be written in milliseconds: `5ms`, `0.5ms`, `0`, or anything
/// [`Span`] reads (`1s`, `2m`).
pub fn parse_millis(input: &str) -> Result<f64, ParseError> {
    let s = input.trim();
    if s == "0" {
        return Ok(0.0);
    }
    if let Some(number) = s.strip_suffix("ms") {
        let n = number.trim();
        return match n.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            Ok(v) if v < 0.0 => Err(ParseError::Negative {
                what: "duration",
                input: input.to_string(),
            }),
            _ => Err(ParseError::InvalidNumber {
                what: "duration",
                input: input.to_string(),
                number: n.to_string(),
                example: "5ms",
            }),
        };
    }
    s.parse::<Span>().map(|span| span.secs() * 1000.0)
}

/// Parses a duration for steps and windows: `30s`, `5m`, `1h`, `500ms`.
pub fn parse_duration(input: &str) -> Result<Duration, ParseError> {
    let ms = parse_millis(input)?;
    if ms > MAX_PHASE.as_secs_f64() * 1000.0 * 365.0 {
        return Err(ParseError::OutOfRange {
            what: "duration",
            input: input.to_string(),
        });
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

/// `12.0` -> `12`, `0.25` -> `0.25`.
pub(crate) fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Workload {
        Workload::with_steps(vec![Step {
            rate: Rate::Messages(1000.0),
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
        }])
    }

    #[test]
    fn rates_parse_in_three_forms() {
        assert_eq!("max".parse::<Rate>().unwrap(), Rate::Max);
        assert_eq!("5000msg/s".parse::<Rate>().unwrap(), Rate::Messages(5000.0));
        assert_eq!("2_500/s".parse::<Rate>().unwrap(), Rate::Messages(2500.0));
        assert_eq!(
            "50MB/s".parse::<Rate>().unwrap(),
            Rate::Bytes(Throughput::from_mb_per_s(50.0))
        );
        let err = "50MB".parse::<Rate>().unwrap_err();
        assert!(err.to_string().contains("unknown unit 'MB'"), "{err}");
        assert!("fast".parse::<Rate>().is_err());
    }

    /// `--rate 5MB` listed only the data units, not msg/s or max.
    #[test]
    fn rate_errors_list_every_form_of_a_rate() {
        let err = |s: &str| s.parse::<Rate>().unwrap_err().to_string();
        assert_eq!(
            err("5MB"),
            "rate '5MB' has an unknown unit 'MB': use one of B/s, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s, Mbit/s, Gbit/s (Mbps, Gbps) for data, msg/s (or /s) for records, or max for no limit"
        );
        assert_eq!(
            err("5"),
            "rate '5' has no unit: write it with one of B/s, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s, Mbit/s, Gbit/s (Mbps, Gbps) for data, msg/s (or /s) for records, or max for no limit (example: 5MB/s, 2000msg/s or max)"
        );
        assert_eq!(
            err("fast"),
            "invalid rate 'fast': it does not start with a number (example: 5MB/s, 2000msg/s or max)"
        );
        assert_eq!(err(""), "empty rate: expected 5MB/s, 2000msg/s or max");
        // The data units are the throughput's own.
        assert!(RATE_UNITS.starts_with(Throughput::UNITS));
    }

    #[test]
    fn a_data_rate_becomes_records_per_second() {
        let r = Rate::Bytes(Throughput::from_mb_per_s(1.0));
        assert_eq!(r.messages_per_s(1000), Some(1000.0));
        assert_eq!(Rate::Max.messages_per_s(1000), None);
        assert_eq!(Rate::Messages(10.0).bytes_per_s(100), Some(1000.0));
    }

    #[test]
    fn rates_print_in_the_form_they_parse() {
        for s in ["max", "5000msg/s", "12.5MB/s"] {
            assert_eq!(s.parse::<Rate>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn millis_accept_ms_seconds_and_zero() {
        assert_eq!(parse_millis("5ms").unwrap(), 5.0);
        assert_eq!(parse_millis("0").unwrap(), 0.0);
        assert_eq!(parse_millis("1.5s").unwrap(), 1500.0);
        assert!(parse_millis("5").is_err());
        assert!(parse_millis("5 parsecs").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn the_default_workload_is_valid_and_bounded() {
        let w = base();
        w.validate().unwrap();
        assert_eq!(w.max_duration(), Duration::from_secs(36));
        assert_eq!(w.topic_names(), vec!["kpilot-perf".to_string()]);
    }

    #[test]
    fn validation_names_the_setting() {
        let mut w = base();
        w.producers = 0;
        assert_eq!(w.validate().unwrap_err().key, "producers");
        w.producers = MAX_CLIENTS + 1;
        assert_eq!(w.validate().unwrap_err().key, "producers");
        w.producers = MAX_CLIENTS;
        w.consumer_groups = 2;
        w.consumers_per_group = MAX_CLIENTS / 2;
        assert!(w.validate().is_ok());
        w.consumers_per_group += 1;
        let e = w.validate().unwrap_err();
        assert_eq!(e.key, "consumers_per_group");
        assert!(
            e.to_string().contains("129 x 2 groups = 258 consumers"),
            "{e}"
        );

        let mut w = base();
        w.credit_depletion = Some(CreditDepletion {
            above: Throughput::from_mb_per_s(10.0),
            below: Throughput::from_mb_per_s(20.0),
            max_duration: Duration::from_secs(60),
        });
        let e = w.validate().unwrap_err();
        assert_eq!(e.key, "credit_depletion.below");
        assert!(matches!(*e.problem, Problem::Conflict(_)));

        let mut w = base();
        w.producer.properties.insert("linger.ms".into(), "5".into());
        let e = w.validate().unwrap_err();
        assert_eq!(e.key, "producer.properties.linger.ms");
        assert!(e.to_string().contains("producer.linger"), "{e}");

        let mut w = base();
        w.consumer.properties.insert("group.id".into(), "x".into());
        assert!(w.validate().is_err());

        let mut w = base();
        w.steps[0].rate = Rate::Messages(0.0);
        assert_eq!(w.validate().unwrap_err().key, "steps.rates");

        let mut w = base();
        w.topic = "bad topic".into();
        assert_eq!(w.validate().unwrap_err().key, "topic");

        let mut w = base();
        w.topics = 1000;
        w.partitions = 100;
        assert!(w.validate().is_ok());
        w.partitions = 101;
        let e = w.validate().unwrap_err();
        assert_eq!(e.key, "partitions");
        assert!(
            e.to_string()
                .contains("101 x 1000 topics = 101000 partitions"),
            "{e}"
        );
        w.topics = u32::MAX;
        w.partitions = i32::MAX;
        assert_eq!(w.validate().unwrap_err().key, "partitions");
    }

    #[test]
    fn several_topics_get_numbered_names() {
        let mut w = base();
        w.topics = 3;
        assert_eq!(
            w.topic_names(),
            vec!["kpilot-perf-0", "kpilot-perf-1", "kpilot-perf-2"]
        );
    }

    #[test]
    fn producer_properties_list_dedicated_settings_first() {
        let mut p = ProducerSettings {
            batch_size: Some(262_144),
            linger_ms: Some(5.0),
            ..Default::default()
        };
        p.properties
            .insert("socket.nagle.disable".into(), "true".into());
        let props = p.client_properties();
        assert_eq!(props[0], ("acks".into(), "all".into()));
        assert!(props.contains(&("batch.size".into(), "262144".into())));
        assert!(props.contains(&("linger.ms".into(), "5".into())));
        assert_eq!(props.last().unwrap().0, "socket.nagle.disable");
    }
}
