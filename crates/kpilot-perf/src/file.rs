//! Workload files: YAML whose values may be lists, expanded into the cross product of runs
//! (the stepped `steps.rates` excepted), each checked into a [`Workload`]. Every error names
//! the file, the line and column, the dotted key and the reason. Pure, except [`load`], which
//! reads the file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kpilot_units::{ByteSize, Throughput};
use marked_yaml::{LoaderOptions, Node as YamlNode, parse_yaml_with_options};
use thiserror::Error;

use crate::workload::{
    Acks, Compression, ConsumerSettings, CreditDepletion, DEFAULT_STOP_RATIO, Problem,
    ProducerSettings, Rate, Step, Workload, parse_duration, parse_millis,
};

/// The most runs one workload file may expand into.
pub const MAX_RUNS: usize = 256;

/// Keys whose value is a list on purpose (not a cross-product dimension).
const LIST_KEYS: &[&str] = &["steps.rates"];

const TOP_KEYS: &[&str] = &[
    "name",
    "topic",
    "topics",
    "partitions",
    "replication_factor",
    "record_size",
    "compressibility",
    "producers",
    "consumer_groups",
    "consumers_per_group",
    "producer",
    "consumer",
    "steps",
    "stop_ratio",
    "credit_depletion",
    "interval",
    "flush_timeout",
];
const PRODUCER_KEYS: &[&str] = &[
    "acks",
    "batch_size",
    "linger",
    "compression",
    "idempotence",
    "properties",
];
const CONSUMER_KEYS: &[&str] = &["properties"];
const STEPS_KEYS: &[&str] = &["rates", "warmup", "duration"];
const DEPLETION_KEYS: &[&str] = &["above", "below", "max_duration"];

/// Why a workload file was rejected.
#[derive(Debug, Error)]
pub enum WorkloadFileError {
    /// The file could not be read.
    #[error("cannot read workload file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML (or uses anchors, aliases or tags, which workloads do not).
    #[error("{}:{line}:{column}: not a valid workload YAML document: {reason}", path.display())]
    ParseYaml {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        reason: String,
    },
    /// A key or value is invalid.
    #[error("{}:{line}:{column}: `{key}`: {problem}", path.display())]
    InvalidEntry {
        /// The file.
        path: PathBuf,
        /// The dotted key (`producer.batch_size`).
        key: String,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        problem: Box<Problem>,
    },
}

impl WorkloadFileError {
    /// The dotted key of an [`WorkloadFileError::InvalidEntry`].
    pub fn key(&self) -> Option<&str> {
        match self {
            WorkloadFileError::InvalidEntry { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The problem of an [`WorkloadFileError::InvalidEntry`].
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            WorkloadFileError::InvalidEntry { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// Reads and expands a workload file. Performs I/O (reads `path`).
pub fn load(path: &Path) -> Result<Vec<Workload>, WorkloadFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| WorkloadFileError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and expands the text of a workload file; `path` is only used in messages and for the
/// default name (the file stem).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Workload>, WorkloadFileError> {
    let ctx = Ctx {
        path: path.to_owned(),
    };
    let root = load_yaml(&ctx, text)?;
    let runs = count_runs(&ctx, &root, "")?;
    if runs > MAX_RUNS as u128 {
        return Err(ctx.invalid(
            "",
            root.at(),
            Problem::TooManyRuns {
                runs,
                max: MAX_RUNS,
            },
        ));
    }
    let variants = expand(&root, "")?;
    let default_name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "workload".into());
    variants
        .into_iter()
        .map(|(tree, labels)| {
            let mut positions = HashMap::new();
            let mut w = read_workload(&ctx, &tree, &default_name, &mut positions)?;
            w.labels = labels;
            w.validate().map_err(|e| {
                let at = best_position(&positions, &e.key).unwrap_or(tree.at());
                ctx.invalid(&e.key, at, *e.problem)
            })?;
            Ok(w)
        })
        .collect()
}

/// A 1-based position in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Pos {
    line: usize,
    column: usize,
}

/// The YAML tree, reduced to what workloads use.
#[derive(Debug, Clone)]
enum Node {
    Scalar { text: String, at: Pos },
    Map { entries: Vec<Entry>, at: Pos },
    List { items: Vec<Node>, at: Pos },
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    key_at: Pos,
    value: Node,
}

impl Node {
    fn at(&self) -> Pos {
        match self {
            Node::Scalar { at, .. } | Node::Map { at, .. } | Node::List { at, .. } => *at,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Node::Scalar { .. } => "a single value",
            Node::Map { .. } => "a mapping",
            Node::List { .. } => "a list",
        }
    }
}

struct Ctx {
    path: PathBuf,
}

impl Ctx {
    fn invalid(&self, key: &str, at: Pos, problem: Problem) -> WorkloadFileError {
        WorkloadFileError::InvalidEntry {
            path: self.path.clone(),
            key: if key.is_empty() {
                "(top level)".into()
            } else {
                key.to_string()
            },
            line: at.line,
            column: at.column,
            problem: Box::new(problem),
        }
    }
}

fn pos_of(span: &marked_yaml::Span) -> Pos {
    span.start()
        .map(|m| Pos {
            line: m.line(),
            column: m.column(),
        })
        .unwrap_or_default()
}

fn load_yaml(ctx: &Ctx, text: &str) -> Result<Node, WorkloadFileError> {
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(WorkloadFileError::ParseYaml {
            path: ctx.path.clone(),
            line: 1,
            column: 1,
            reason: "the file is empty: a workload needs at least `steps: {rates: [...]}`".into(),
        });
    }
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let node = parse_yaml_with_options(0, text, options).map_err(|e| yaml_error(ctx, e))?;
    Ok(convert(&node))
}

fn yaml_error(ctx: &Ctx, e: marked_yaml::LoadError) -> WorkloadFileError {
    use marked_yaml::LoadError as L;
    let (marker, reason) = match &e {
        L::TopLevelMustBeMapping(m) => (
            Some(*m),
            "the top level must be a mapping of keys (name:, steps:, ...)".to_string(),
        ),
        L::TopLevelMustBeSequence(m) => (Some(*m), "unexpected top-level list".to_string()),
        L::UnexpectedAnchor(m) => (
            Some(*m),
            "anchors and aliases (&x, *x) are not supported in workload files".to_string(),
        ),
        L::MappingKeyMustBeScalar(m) => (Some(*m), "keys must be plain words".to_string()),
        L::UnexpectedTag(m) => (
            Some(*m),
            "YAML tags (!x) are not supported in workload files".to_string(),
        ),
        L::ScanError(m, scan) => (Some(*m), scan.info().to_string()),
        L::DuplicateKey(inner) => {
            let first = inner.prev_key.span().start().map(|m| m.line()).unwrap_or(0);
            return WorkloadFileError::InvalidEntry {
                path: ctx.path.clone(),
                key: inner.key.as_str().to_string(),
                line: inner.key.span().start().map(|m| m.line()).unwrap_or(0),
                column: inner.key.span().start().map(|m| m.column()).unwrap_or(0),
                problem: Box::new(Problem::Conflict(format!(
                    "duplicate key (first given on line {first})"
                ))),
            };
        }
    };
    let (line, column) = marker.map(|m| (m.line(), m.column())).unwrap_or((0, 0));
    WorkloadFileError::ParseYaml {
        path: ctx.path.clone(),
        line,
        column,
        reason,
    }
}

fn convert(node: &YamlNode) -> Node {
    match node {
        YamlNode::Scalar(s) => Node::Scalar {
            text: s.as_str().to_string(),
            at: pos_of(s.span()),
        },
        YamlNode::Sequence(seq) => Node::List {
            items: seq.iter().map(convert).collect(),
            at: pos_of(seq.span()),
        },
        YamlNode::Mapping(map) => Node::Map {
            entries: map
                .iter()
                .map(|(k, v)| Entry {
                    key: k.as_str().to_string(),
                    key_at: pos_of(k.span()),
                    value: convert(v),
                })
                .collect(),
            at: pos_of(map.span()),
        },
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// How many runs the tree expands into (checked before expanding, so a huge product fails
/// fast). Also rejects empty lists and lists of lists.
fn count_runs(ctx: &Ctx, node: &Node, path: &str) -> Result<u128, WorkloadFileError> {
    match node {
        Node::Scalar { .. } => Ok(1),
        Node::Map { entries, .. } => {
            let mut n: u128 = 1;
            for e in entries {
                n = n.saturating_mul(count_runs(ctx, &e.value, &join(path, &e.key))?);
            }
            Ok(n)
        }
        Node::List { items, at } => {
            if items.is_empty() {
                return Err(ctx.invalid(path, *at, Problem::EmptyList));
            }
            if LIST_KEYS.contains(&path) {
                for item in items {
                    if !matches!(item, Node::Scalar { .. }) {
                        return Err(ctx.invalid(
                            path,
                            item.at(),
                            Problem::WrongType {
                                expected: "a list of single values",
                                found: item.kind(),
                            },
                        ));
                    }
                }
                return Ok(1);
            }
            let mut n: u128 = 0;
            for item in items {
                if let Node::List { at, .. } = item {
                    return Err(ctx.invalid(
                        path,
                        *at,
                        Problem::WrongType {
                            expected: "a list of values (one per run)",
                            found: "a list inside a list",
                        },
                    ));
                }
                n = n.saturating_add(count_runs(ctx, item, path)?);
            }
            Ok(n)
        }
    }
}

type Labels = Vec<(String, String)>;
type Variant = (Node, Labels);

/// The cross product: every combination of one value per list.
fn expand(node: &Node, path: &str) -> Result<Vec<Variant>, WorkloadFileError> {
    match node {
        Node::Scalar { .. } => Ok(vec![(node.clone(), Vec::new())]),
        Node::List { .. } if LIST_KEYS.contains(&path) => Ok(vec![(node.clone(), Vec::new())]),
        Node::List { items, .. } => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                for (tree, mut labels) in expand(item, path)? {
                    if items.len() > 1 {
                        let value = match item {
                            Node::Scalar { text, .. } => text.clone(),
                            _ => format!("#{}", i + 1),
                        };
                        labels.insert(0, (path.to_string(), value));
                    }
                    out.push((tree, labels));
                }
            }
            Ok(out)
        }
        Node::Map { entries, at } => {
            let mut acc: Vec<(Vec<Entry>, Labels)> = vec![(Vec::new(), Vec::new())];
            for e in entries {
                let options = expand(&e.value, &join(path, &e.key))?;
                let mut next = Vec::with_capacity(acc.len() * options.len());
                for (prefix, labels) in &acc {
                    for (value, more) in &options {
                        let mut entries = prefix.clone();
                        entries.push(Entry {
                            key: e.key.clone(),
                            key_at: e.key_at,
                            value: value.clone(),
                        });
                        let mut l = labels.clone();
                        l.extend(more.iter().cloned());
                        next.push((entries, l));
                    }
                }
                acc = next;
            }
            Ok(acc
                .into_iter()
                .map(|(entries, labels)| (Node::Map { entries, at: *at }, labels))
                .collect())
        }
    }
}

/// Reads one mapping: rejects unknown keys, records where each key is.
struct MapReader<'a> {
    ctx: &'a Ctx,
    path: String,
    entries: &'a [Entry],
}

impl<'a> MapReader<'a> {
    fn new(
        ctx: &'a Ctx,
        node: &'a Node,
        path: &str,
        allowed: &[&str],
        positions: &mut HashMap<String, Pos>,
    ) -> Result<Self, WorkloadFileError> {
        let Node::Map { entries, .. } = node else {
            return Err(ctx.invalid(
                path,
                node.at(),
                Problem::WrongType {
                    expected: "a mapping of keys",
                    found: node.kind(),
                },
            ));
        };
        for e in entries {
            let key = join(path, &e.key);
            positions.insert(key.clone(), e.key_at);
            if !allowed.is_empty() && !allowed.contains(&e.key.as_str()) {
                return Err(ctx.invalid(
                    &key,
                    e.key_at,
                    Problem::UnknownKey {
                        valid: allowed.join(", "),
                        suggestion: closest(&e.key, allowed),
                    },
                ));
            }
        }
        Ok(Self {
            ctx,
            path: path.to_string(),
            entries,
        })
    }

    fn get(&self, key: &str) -> Option<&'a Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    fn key(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The scalar text of `key`, if present.
    fn text(&self, key: &str) -> Result<Option<(&'a str, Pos)>, WorkloadFileError> {
        match self.get(key) {
            None => Ok(None),
            Some(Entry {
                value: Node::Scalar { text, at },
                ..
            }) => Ok(Some((text.as_str(), *at))),
            Some(e) => Err(self.ctx.invalid(
                &self.key(key),
                e.value.at(),
                Problem::WrongType {
                    expected: "a single value",
                    found: e.value.kind(),
                },
            )),
        }
    }

    fn parse<T>(
        &self,
        key: &str,
        f: impl Fn(&str) -> Result<T, Problem>,
    ) -> Result<Option<T>, WorkloadFileError> {
        match self.text(key)? {
            None => Ok(None),
            Some((text, at)) => f(text)
                .map(Some)
                .map_err(|p| self.ctx.invalid(&self.key(key), at, p)),
        }
    }

    fn map(
        &self,
        key: &str,
        allowed: &[&str],
        positions: &mut HashMap<String, Pos>,
    ) -> Result<Option<MapReader<'a>>, WorkloadFileError> {
        match self.get(key) {
            None => Ok(None),
            Some(e) => {
                MapReader::new(self.ctx, &e.value, &self.key(key), allowed, positions).map(Some)
            }
        }
    }

    fn properties(
        &self,
        positions: &mut HashMap<String, Pos>,
    ) -> Result<BTreeMap<String, String>, WorkloadFileError> {
        let Some(reader) = self.map("properties", &[], positions)? else {
            return Ok(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        for e in reader.entries {
            let (text, _) = reader
                .text(&e.key)?
                .expect("the key exists: it comes from the entries");
            out.insert(e.key.clone(), text.to_string());
        }
        Ok(out)
    }
}

fn integer<T: std::str::FromStr>(min: i64, max: i64) -> impl Fn(&str) -> Result<T, Problem> {
    move |s: &str| {
        let v: i64 = s.trim().parse().map_err(|_| Problem::InvalidValue {
            value: s.to_string(),
            expected: "a whole number".into(),
        })?;
        if v < min || v > max {
            return Err(Problem::OutOfRange {
                value: v.to_string(),
                range: format!("{min} to {max}"),
            });
        }
        s.trim().parse::<T>().map_err(|_| Problem::OutOfRange {
            value: v.to_string(),
            range: format!("{min} to {max}"),
        })
    }
}

fn fraction(s: &str) -> Result<f64, Problem> {
    let v: f64 = s.trim().parse().map_err(|_| Problem::InvalidValue {
        value: s.to_string(),
        expected: "a number between 0 and 1".into(),
    })?;
    if !(0.0..=1.0).contains(&v) {
        return Err(Problem::OutOfRange {
            value: s.to_string(),
            range: "0 to 1".into(),
        });
    }
    Ok(v)
}

fn boolean(s: &str) -> Result<bool, Problem> {
    match s.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(Problem::InvalidValue {
            value: other.to_string(),
            expected: "true or false".into(),
        }),
    }
}

fn bytes(s: &str) -> Result<u64, Problem> {
    let size: ByteSize = s.parse()?;
    let b = size.bytes();
    if b.fract() != 0.0 || b > u64::MAX as f64 {
        return Err(Problem::OutOfRange {
            value: s.to_string(),
            range: "a whole number of bytes".into(),
        });
    }
    Ok(b as u64)
}

fn duration(s: &str) -> Result<Duration, Problem> {
    Ok(parse_duration(s)?)
}

fn read_workload(
    ctx: &Ctx,
    root: &Node,
    default_name: &str,
    positions: &mut HashMap<String, Pos>,
) -> Result<Workload, WorkloadFileError> {
    let top = MapReader::new(ctx, root, "", TOP_KEYS, positions)?;
    let steps_reader = top.map("steps", STEPS_KEYS, positions)?.ok_or_else(|| {
        ctx.invalid(
            "steps",
            root.at(),
            Problem::Missing {
                hint: "steps: {rates: [10MB/s, 20MB/s], warmup: 10s, duration: 60s}",
            },
        )
    })?;
    let rates_entry = steps_reader.get("rates").ok_or_else(|| {
        ctx.invalid(
            "steps.rates",
            positions.get("steps").copied().unwrap_or_default(),
            Problem::Missing {
                hint: "rates: [10MB/s, 20MB/s] (or max)",
            },
        )
    })?;
    let rate_nodes: Vec<&Node> = match &rates_entry.value {
        Node::List { items, .. } => items.iter().collect(),
        scalar @ Node::Scalar { .. } => vec![scalar],
        other => {
            return Err(ctx.invalid(
                "steps.rates",
                other.at(),
                Problem::WrongType {
                    expected: "a list of rates",
                    found: other.kind(),
                },
            ));
        }
    };
    let warmup = steps_reader
        .parse("warmup", duration)?
        .unwrap_or(Duration::from_secs(10));
    let step_duration = steps_reader
        .parse("duration", duration)?
        .unwrap_or(Duration::from_secs(60));
    let mut steps = Vec::with_capacity(rate_nodes.len());
    for node in rate_nodes {
        let Node::Scalar { text, at } = node else {
            return Err(ctx.invalid(
                "steps.rates",
                node.at(),
                Problem::WrongType {
                    expected: "a rate",
                    found: node.kind(),
                },
            ));
        };
        let rate: Rate = text
            .parse()
            .map_err(|e| ctx.invalid("steps.rates", *at, Problem::Quantity(e)))?;
        steps.push(Step {
            rate,
            warmup,
            duration: step_duration,
        });
    }
    let mut w = Workload::with_steps(steps);
    w.name = top
        .parse("name", |s| Ok(s.to_string()))?
        .unwrap_or_else(|| default_name.to_string());
    if let Some(t) = top.parse("topic", |s| Ok(s.to_string()))? {
        w.topic = t;
    }
    if let Some(v) = top.parse("topics", integer(1, 10_000))? {
        w.topics = v;
    }
    if let Some(v) = top.parse("partitions", integer(1, 100_000))? {
        w.partitions = v;
    }
    if let Some(v) = top.parse("replication_factor", integer(1, 32_767))? {
        w.replication_factor = v;
    }
    if let Some(v) = top.parse("record_size", bytes)? {
        w.record_size = v;
    }
    if let Some(v) = top.parse("compressibility", fraction)? {
        w.compressibility = v;
    }
    if let Some(v) = top.parse("producers", integer(1, 1024))? {
        w.producers = v;
    }
    if let Some(v) = top.parse("consumer_groups", integer(0, 1024))? {
        w.consumer_groups = v;
    }
    if let Some(v) = top.parse("consumers_per_group", integer(1, 1024))? {
        w.consumers_per_group = v;
    }
    w.stop_ratio = top
        .parse("stop_ratio", |s| {
            let v: f64 = s.trim().parse().map_err(|_| Problem::InvalidValue {
                value: s.into(),
                expected: "a number such as 0.995".into(),
            })?;
            Ok(v)
        })?
        .unwrap_or(DEFAULT_STOP_RATIO);
    if let Some(v) = top.parse("interval", duration)? {
        w.interval = v;
    }
    if let Some(v) = top.parse("flush_timeout", duration)? {
        w.flush_timeout = v;
    }
    if let Some(p) = top.map("producer", PRODUCER_KEYS, positions)? {
        let mut s = ProducerSettings::default();
        if let Some(a) = p.parse("acks", |v| v.parse::<Acks>())? {
            s.acks = a;
        }
        s.batch_size = p.parse("batch_size", bytes)?;
        s.linger_ms = p.parse("linger", |v| Ok(parse_millis(v)?))?;
        if let Some(c) = p.parse("compression", |v| v.parse::<Compression>())? {
            s.compression = c;
        }
        s.idempotence = p.parse("idempotence", boolean)?;
        s.properties = p.properties(positions)?;
        w.producer = s;
    }
    if let Some(c) = top.map("consumer", CONSUMER_KEYS, positions)? {
        w.consumer = ConsumerSettings {
            properties: c.properties(positions)?,
        };
    }
    if let Some(d) = top.map("credit_depletion", DEPLETION_KEYS, positions)? {
        let missing = |key: &str, hint| {
            ctx.invalid(
                &format!("credit_depletion.{key}"),
                positions_at(positions, "credit_depletion"),
                Problem::Missing { hint },
            )
        };
        let throughput = |v: &str| Ok(v.parse::<Throughput>()?);
        w.credit_depletion = Some(CreditDepletion {
            above: d.parse("above", throughput)?.ok_or_else(|| {
                missing(
                    "above",
                    "the throughput that shows the burst, e.g. above: 200MB/s",
                )
            })?,
            below: d.parse("below", throughput)?.ok_or_else(|| {
                missing(
                    "below",
                    "the throughput after the burst, e.g. below: 80MB/s",
                )
            })?,
            max_duration: d
                .parse("max_duration", duration)?
                .ok_or_else(|| missing("max_duration", "an upper bound, e.g. max_duration: 30m"))?,
        });
    }
    Ok(w)
}

fn positions_at(positions: &HashMap<String, Pos>, key: &str) -> Pos {
    positions.get(key).copied().unwrap_or_default()
}

/// The position of `key`, or of its closest recorded parent.
fn best_position(positions: &HashMap<String, Pos>, key: &str) -> Option<Pos> {
    let mut k = key;
    loop {
        if let Some(p) = positions.get(k) {
            return Some(*p);
        }
        k = &k[..k.rfind('.')?];
    }
}

/// The allowed key within edit distance 2 of `word`, if any.
fn closest(word: &str, allowed: &[&str]) -> Option<String> {
    allowed
        .iter()
        .map(|a| (edit_distance(word, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Vec<Workload>, WorkloadFileError> {
        parse(Path::new("test.yaml"), text)
    }

    fn rejected(text: &str) -> (String, usize, Problem, String) {
        let err = parse_str(text).unwrap_err();
        let message = err.to_string();
        match err {
            WorkloadFileError::InvalidEntry {
                key, line, problem, ..
            } => (key, line, *problem, message),
            other => panic!("expected an invalid entry, got {other}"),
        }
    }

    #[test]
    fn a_minimal_file_takes_the_defaults() {
        let runs = parse_str("steps:\n  rates: [1000msg/s, 2MB/s]\n  duration: 5s\n").unwrap();
        assert_eq!(runs.len(), 1);
        let w = &runs[0];
        assert_eq!(w.name, "test");
        assert_eq!(w.steps.len(), 2);
        assert_eq!(w.steps[0].rate, Rate::Messages(1000.0));
        assert_eq!(w.steps[1].duration, Duration::from_secs(5));
        assert_eq!(w.steps[1].warmup, Duration::from_secs(10));
        assert_eq!(w.record_size, 1024);
        assert!(w.labels.is_empty());
    }

    #[test]
    fn every_key_is_read() {
        let text = r#"
name: guide
topic: bench
topics: 2
partitions: 12
replication_factor: 3
record_size: 512B
compressibility: 0.5
producers: 6
consumer_groups: 2
consumers_per_group: 6
producer:
  acks: all
  batch_size: 256KiB
  linger: 5ms
  compression: lz4
  idempotence: true
  properties:
    socket.nagle.disable: "true"
consumer:
  properties:
    fetch.min.bytes: 1
steps:
  rates: [20MB/s, 40MB/s, max]
  warmup: 30s
  duration: 5m
stop_ratio: 0.99
credit_depletion:
  above: 200MB/s
  below: 80MB/s
  max_duration: 30m
interval: 10s
flush_timeout: 1m
"#;
        let w = &parse_str(text).unwrap()[0];
        assert_eq!(w.name, "guide");
        assert_eq!(w.topic_names(), vec!["bench-0", "bench-1"]);
        assert_eq!((w.partitions, w.replication_factor), (12, 3));
        assert_eq!(w.record_size, 512);
        assert_eq!(
            (w.producers, w.consumer_groups, w.consumers_per_group),
            (6, 2, 6)
        );
        assert_eq!(w.producer.batch_size, Some(262_144));
        assert_eq!(w.producer.linger_ms, Some(5.0));
        assert_eq!(w.producer.compression, Compression::Lz4);
        assert_eq!(w.producer.idempotence, Some(true));
        assert_eq!(w.producer.properties["socket.nagle.disable"], "true");
        assert_eq!(w.consumer.properties["fetch.min.bytes"], "1");
        assert_eq!(w.steps[2].rate, Rate::Max);
        assert_eq!(w.steps[0].duration, Duration::from_secs(300));
        assert_eq!(w.stop_ratio, 0.99);
        let d = w.credit_depletion.unwrap();
        assert_eq!(d.above.mb_per_s(), 200.0);
        assert_eq!(d.max_duration, Duration::from_secs(1800));
        assert_eq!(w.interval, Duration::from_secs(10));
    }

    #[test]
    fn lists_expand_into_the_cross_product() {
        let text = "record_size: [100B, 1KiB]\nproducer:\n  compression: [none, lz4, zstd]\nsteps:\n  rates: [1MB/s, 2MB/s]\n  duration: 1s\n";
        let runs = parse_str(text).unwrap();
        assert_eq!(runs.len(), 6);
        assert_eq!(runs[0].record_size, 100);
        assert_eq!(runs[0].producer.compression, Compression::None);
        assert_eq!(runs[5].record_size, 1024);
        assert_eq!(runs[5].producer.compression, Compression::Zstd);
        assert_eq!(
            runs[4].labels,
            vec![
                ("record_size".to_string(), "1KiB".to_string()),
                ("producer.compression".to_string(), "lz4".to_string())
            ]
        );
        // The stepped list stays a list in every run.
        assert!(runs.iter().all(|r| r.steps.len() == 2));
    }

    #[test]
    fn property_values_may_be_lists_too() {
        let text = "producer:\n  properties:\n    socket.send.buffer.bytes: [65536, 1048576]\nsteps: {rates: [max], duration: 1s}\n";
        let runs = parse_str(text).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(
            runs[1].producer.properties["socket.send.buffer.bytes"],
            "1048576"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_file_line_and_suggestion() {
        let (key, line, problem, message) =
            rejected("steps:\n  rates: [1MB/s]\nproducer:\n  lingr: 5ms\n");
        assert_eq!(key, "producer.lingr");
        assert_eq!(line, 4);
        assert!(
            matches!(problem, Problem::UnknownKey { suggestion: Some(ref s), .. } if s == "linger")
        );
        assert!(
            message.starts_with(
                "test.yaml:4:3: `producer.lingr`: unknown key (did you mean `linger`?)"
            ),
            "{message}"
        );
    }

    #[test]
    fn bad_units_are_rejected_with_the_reason() {
        let (key, line, problem, message) =
            rejected("record_size: 100\nsteps:\n  rates: [1MB/s]\n");
        assert_eq!((key.as_str(), line), ("record_size", 1));
        assert!(matches!(problem, Problem::Quantity(_)));
        assert!(message.contains("has no unit"), "{message}");

        let (key, line, _, message) = rejected("steps:\n  rates: [1MB/s, 5Mbps/s]\n");
        assert_eq!((key.as_str(), line), ("steps.rates", 2));
        assert!(message.contains("5Mbps/s"), "{message}");

        let (key, _, _, message) = rejected("steps:\n  rates: [1MB/s]\n  duration: 5 parsecs\n");
        assert_eq!(key, "steps.duration");
        assert!(message.contains("unknown unit 'parsecs'"), "{message}");
    }

    #[test]
    fn empty_lists_are_rejected() {
        let (key, line, problem, _) = rejected("producers: []\nsteps:\n  rates: [1MB/s]\n");
        assert_eq!(
            (key.as_str(), line, problem),
            ("producers", 1, Problem::EmptyList)
        );
        let (key, line, problem, _) = rejected("steps:\n  rates: []\n");
        assert_eq!(
            (key.as_str(), line, problem),
            ("steps.rates", 2, Problem::EmptyList)
        );
    }

    #[test]
    fn shapes_and_ranges_are_checked() {
        let (key, _, problem, _) = rejected("producer: [a]\nsteps: {rates: [1MB/s]}\n");
        assert_eq!(key, "producer");
        assert!(matches!(problem, Problem::WrongType { .. }));
        let (key, _, _, _) = rejected("producers: [[1, 2]]\nsteps: {rates: [1MB/s]}\n");
        assert_eq!(key, "producers");
        let (key, _, problem, _) = rejected("compressibility: 1.5\nsteps: {rates: [1MB/s]}\n");
        assert_eq!(key, "compressibility");
        assert!(matches!(problem, Problem::OutOfRange { .. }));
        let (key, _, problem, _) = rejected("producer: {acks: 2}\nsteps: {rates: [1MB/s]}\n");
        assert_eq!(key, "producer.acks");
        assert!(matches!(problem, Problem::InvalidValue { .. }));
        let (key, _, problem, _) = rejected("name: x\n");
        assert_eq!(key, "steps");
        assert!(matches!(problem, Problem::Missing { .. }));
        let (key, _, problem, _) =
            rejected("credit_depletion: {above: 100MB/s}\nsteps: {rates: [1MB/s]}\n");
        assert_eq!(key, "credit_depletion.below");
        assert!(matches!(problem, Problem::Missing { .. }));
    }

    #[test]
    fn cross_field_errors_point_at_the_key() {
        let (key, line, problem, _) = rejected(
            "steps: {rates: [1MB/s]}\ncredit_depletion:\n  above: 10MB/s\n  below: 20MB/s\n  max_duration: 1m\n",
        );
        assert_eq!((key.as_str(), line), ("credit_depletion.below", 4));
        assert!(matches!(problem, Problem::Conflict(_)));
        let (key, line, _, _) =
            rejected("steps: {rates: [1MB/s]}\nproducer:\n  properties:\n    acks: \"1\"\n");
        assert_eq!((key.as_str(), line), ("producer.properties.acks", 4));
    }

    #[test]
    fn too_many_combinations_are_refused_before_expanding() {
        let text = "partitions: [1,2,3,4,5,6,7,8]\nproducers: [1,2,3,4,5,6,7,8]\nconsumer_groups: [0,1,2,3,4,5,6,7]\nsteps: {rates: [1MB/s]}\n";
        let (_, _, problem, _) = rejected(text);
        assert_eq!(
            problem,
            Problem::TooManyRuns {
                runs: 512,
                max: MAX_RUNS
            }
        );
    }

    #[test]
    fn malformed_yaml_and_duplicates_are_reported() {
        let err = parse_str("steps: {rates: [1MB/s]\n").unwrap_err();
        assert!(matches!(err, WorkloadFileError::ParseYaml { .. }), "{err}");
        let err = parse_str("").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = parse_str("- a\n- b\n").unwrap_err();
        assert!(
            err.to_string().contains("top level must be a mapping"),
            "{err}"
        );
        let err = parse_str("steps: {rates: [1MB/s]}\nproducers: 1\nproducers: 2\n").unwrap_err();
        assert!(err.to_string().contains("duplicate key"), "{err}");
        let err = parse_str("a: &x 1\nb: *x\n").unwrap_err();
        assert!(err.to_string().contains("anchors"), "{err}");
        let err = parse_str("steps: !tag {rates: [1MB/s]}\n").unwrap_err();
        assert!(err.to_string().contains("tags"), "{err}");
    }

    #[test]
    fn edit_distance_finds_typos() {
        assert_eq!(edit_distance("lingr", "linger"), 1);
        assert_eq!(
            closest("partitons", TOP_KEYS).as_deref(),
            Some("partitions")
        );
        assert_eq!(closest("zzz", TOP_KEYS), None);
    }
}
