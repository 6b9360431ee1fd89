//! The operator's Prometheus metrics (counters, gauges and one duration histogram, rendered
//! in the text exposition format) and the tiny HTTP/1.1 server for `/metrics` and
//! `/healthz`. The registry is pure; [`serve`] performs network I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0];

/// Metric help texts and types, by name.
const FAMILIES: [(&str, &str, &str); 7] = [
    (
        "kpilot_reconciles_total",
        "counter",
        "Reconciles of KafkaAutopilot objects, by result.",
    ),
    (
        "kpilot_decisions_total",
        "counter",
        "Policy decisions, by action (keep, change) and disposition.",
    ),
    (
        "kpilot_operations_total",
        "counter",
        "Operations (rolls, broker additions and removals), by kind and event (started, completed, halted).",
    ),
    (
        "kpilot_errors_total",
        "counter",
        "Reconcile errors, by step.",
    ),
    (
        "kpilot_reconcile_duration_seconds",
        "histogram",
        "Duration of one reconcile.",
    ),
    (
        "kpilot_leader",
        "gauge",
        "1 when this process holds the leader Lease.",
    ),
    (
        "kpilot_operation_in_progress",
        "gauge",
        "1 when an operation is running on some autopilot.",
    ),
];

#[derive(Debug, Default)]
struct Inner {
    /// `name{labels}` -> value.
    series: BTreeMap<String, f64>,
    durations: Vec<u64>,
    duration_sum: f64,
    duration_count: u64,
}

/// Renders another controller's metrics in the Prometheus text format.
pub type ExtraSource = Arc<dyn Fn() -> String + Send + Sync>;

/// The registry. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
    healthy: Arc<AtomicBool>,
    extra: Arc<Mutex<Vec<ExtraSource>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("inner", &self.inner)
            .field("healthy", &self.healthy)
            .finish_non_exhaustive()
    }
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let labels: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{name}{{{}}}", labels.join(","))
}

impl Metrics {
    /// An empty registry, healthy.
    pub fn new() -> Self {
        let m = Metrics::default();
        m.healthy.store(true, Ordering::Relaxed);
        m
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds 1 to a counter.
    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        *self.lock().series.entry(key(name, labels)).or_insert(0.0) += 1.0;
    }

    /// Sets a gauge.
    pub fn set(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.lock().series.insert(key(name, labels), value);
    }

    /// The value of a series, if recorded.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.lock().series.get(&key(name, labels)).copied()
    }

    /// Records one reconcile duration.
    pub fn observe_duration(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let mut inner = self.lock();
        if inner.durations.is_empty() {
            inner.durations = vec![0; BUCKETS.len()];
        }
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                inner.durations[i] += 1;
            }
        }
        inner.duration_sum += secs;
        inner.duration_count += 1;
    }

    /// Marks the process healthy or not (`/healthz` answers 503 when not).
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Whether `/healthz` answers 200.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        for (name, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if kind == "histogram" {
                let counts = if inner.durations.is_empty() {
                    vec![0; BUCKETS.len()]
                } else {
                    inner.durations.clone()
                };
                for (le, count) in BUCKETS.iter().zip(counts) {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {count}");
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
                    inner.duration_count, inner.duration_sum, inner.duration_count
                );
                continue;
            }
            for (series, value) in &inner.series {
                let base = series.split('{').next().unwrap_or(series);
                if base == name {
                    let _ = writeln!(out, "{series} {value}");
                }
            }
        }
        drop(inner);
        let extra = self.extra.lock().map(|e| e.clone()).unwrap_or_default();
        for source in extra {
            out.push_str(&source());
        }
        out
    }

    /// Appends another controller's metrics (e.g. the PVC releaser's) to every scrape.
    pub fn add_source(&self, source: ExtraSource) {
        if let Ok(mut extra) = self.extra.lock() {
            extra.push(source);
        }
    }
}

/// Serves `GET /metrics` and `GET /healthz` on `listener` until `shutdown` resolves. One
/// request per connection, bounded reads (8 KiB, 5 s).
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut len = 0;
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while len < buf.len() {
                    match stream.read(&mut buf[len..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => len += n,
                    }
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let request = String::from_utf8_lossy(&buf[..len]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, content_type, body) = match path {
                "/metrics" => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    metrics.render(),
                ),
                "/healthz" | "/readyz" if metrics.is_healthy() => {
                    ("200 OK", "text/plain", "ok\n".to_owned())
                }
                "/healthz" | "/readyz" => (
                    "503 Service Unavailable",
                    "text/plain",
                    "unhealthy\n".to_owned(),
                ),
                _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Binds the metrics address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::new();
        m.inc("kpilot_decisions_total", &[("action", "keep")]);
        m.inc("kpilot_decisions_total", &[("action", "keep")]);
        m.observe_duration(Duration::from_millis(30));
        let text = m.render();
        assert!(
            text.contains("kpilot_decisions_total{action=\"keep\"} 2"),
            "{text}"
        );
        assert!(text.contains("kpilot_reconcile_duration_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("kpilot_reconcile_duration_seconds_count 1"));
    }

    #[tokio::test]
    async fn serves_metrics_and_health_on_loopback() {
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let m = Metrics::new();
        m.inc("kpilot_reconciles_total", &[("result", "ok")]);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, m.clone(), async {
            let _ = rx.await;
        }));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).await.expect("read");
            out
        };
        let metrics = get("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
        assert!(metrics.contains("kpilot_reconciles_total{result=\"ok\"} 1"));
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200 OK"));
        m.set_healthy(false);
        assert!(get("/healthz").await.starts_with("HTTP/1.1 503"));
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
        let _ = tx.send(());
        server.await.expect("server stops");
    }
}
