//! Finding the pinned Kafka jars (running `scripts/setup-kafka` when they are missing), the
//! broker classpath and the `java` executable. Performs I/O (file system, child processes).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::error::TestbedError;

/// `testbed/pom.xml`: the single place the Kafka version is pinned.
const POM: &str = include_str!("../../../testbed/pom.xml");

/// The repository root (where `scripts/setup-kafka` lives), as seen when this crate was built.
const REPO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Name of the file `scripts/setup-kafka` writes (a copy of `pom.xml`) once the jars are complete.
const MARKER: &str = ".setup-complete";

/// The pinned Apache Kafka version (the `kafka.version` property of `testbed/pom.xml`).
pub fn kafka_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        pom_property(POM, "kafka.version").expect("testbed/pom.xml defines <kafka.version>")
    })
}

/// The text of `<name>...</name>` in a pom.
fn pom_property(pom: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = pom.find(&open)? + open.len();
    let end = start + pom[start..].find('<')?;
    Some(pom[start..end].trim().to_owned())
}

/// The repository root this crate was built from.
pub fn repo_dir() -> PathBuf {
    fs::canonicalize(REPO_DIR).unwrap_or_else(|_| PathBuf::from(REPO_DIR))
}

/// `${KPILOT_CACHE_DIR:-$HOME/.cache/kpilot}/kafka-<version>`.
fn kafka_cache_dir() -> Result<PathBuf, TestbedError> {
    let root = match std::env::var_os("KPILOT_CACHE_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".cache").join("kpilot"),
            None => {
                return Err(TestbedError::SetupKafka {
                    version: kafka_version().to_owned(),
                    script: setup_script(),
                    detail:
                        "neither KPILOT_CACHE_DIR nor HOME is set, so there is no cache directory"
                            .to_owned(),
                });
            }
        },
    };
    Ok(root.join(format!("kafka-{}", kafka_version())))
}

fn setup_script() -> PathBuf {
    repo_dir().join("scripts").join("setup-kafka")
}

/// True when the marker exists and records the `pom.xml` this crate was built with.
fn setup_complete(cache: &Path) -> bool {
    fs::read_to_string(cache.join(MARKER)).is_ok_and(|marker| marker == POM)
}

/// The directory holding every jar of the pinned Kafka version (broker, tools, logging
/// backend, JMX exporter agent).
///
/// Runs `scripts/setup-kafka` first when the jars are missing or were fetched for another
/// `testbed/pom.xml`, so a plain `cargo test` works on a fresh machine (the first run
/// downloads about 50 MB from Maven Central).
pub fn kafka_libs_dir() -> Result<PathBuf, TestbedError> {
    static SETUP: Mutex<()> = Mutex::new(());
    let cache = kafka_cache_dir()?;
    let libs = cache.join("libs");
    if setup_complete(&cache) {
        return Ok(libs);
    }
    // One thread at a time in this process; scripts/setup-kafka uses flock across processes.
    let _guard = SETUP
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if setup_complete(&cache) {
        return Ok(libs);
    }
    let script = setup_script();
    let version = kafka_version().to_owned();
    eprintln!(
        "kpilot-testbed: Kafka {version} jars missing in {}; running {} (first run downloads ~50 MB from Maven Central)",
        libs.display(),
        script.display()
    );
    let output = Command::new("bash")
        .arg(&script)
        .env("KPILOT_CACHE_DIR", cache.parent().unwrap_or(&cache))
        .output()
        .map_err(|e| TestbedError::SetupKafka {
            version: version.clone(),
            script: script.clone(),
            detail: format!("could not run bash: {e}"),
        })?;
    if !output.status.success() || !setup_complete(&cache) {
        return Err(TestbedError::SetupKafka {
            version,
            script,
            detail: format!(
                "{}\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(libs)
}

/// Every jar in `libs` except the JMX exporter agent, sorted, joined with `:`.
pub(crate) fn classpath(libs: &Path) -> Result<String, TestbedError> {
    let mut jars = Vec::new();
    for entry in fs::read_dir(libs).map_err(TestbedError::read(libs))? {
        let path = entry.map_err(TestbedError::read(libs))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".jar") && !name.starts_with("jmx_prometheus_javaagent") {
            jars.push(path);
        }
    }
    jars.sort();
    let kafka_jar = format!("kafka_2.13-{}.jar", kafka_version());
    if !jars.iter().any(|j| j.ends_with(&kafka_jar)) {
        return Err(TestbedError::FindKafkaJar {
            dir: libs.to_owned(),
            wanted: kafka_jar,
        });
    }
    Ok(jars
        .iter()
        .map(|j| j.to_string_lossy())
        .collect::<Vec<_>>()
        .join(":"))
}

/// The Prometheus JMX exporter java agent jar (for `-javaagent:`), fetched by the setup.
pub fn jmx_exporter_agent_jar() -> Result<PathBuf, TestbedError> {
    let libs = kafka_libs_dir()?;
    let entries = fs::read_dir(&libs).map_err(TestbedError::read(&libs))?;
    for entry in entries {
        let path = entry.map_err(TestbedError::read(&libs))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("jmx_prometheus_javaagent") && name.ends_with(".jar") {
            return Ok(path);
        }
    }
    Err(TestbedError::FindKafkaJar {
        dir: libs,
        wanted: "jmx_prometheus_javaagent-*.jar".into(),
    })
}

/// Where the brokers' class-data-sharing archive for this JDK and classpath lives:
/// `<cache>/kafka-<version>/cds/broker-<key>.jsa`, the key a hash of the `java` executable
/// and of every jar (path, size, mtime), so a new JDK or re-fetched jars get a new archive.
pub(crate) fn cds_archive_path(java: &Path, classpath: &str) -> Result<PathBuf, TestbedError> {
    let resolved = which(java).and_then(|p| fs::canonicalize(p).ok());
    let mut key = Fnv1a::default();
    if let Some(resolved) = &resolved {
        key.write(resolved.to_string_lossy().as_bytes());
        if let Ok(meta) = fs::metadata(resolved) {
            key.write(&meta.len().to_le_bytes());
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            key.write(&mtime.unwrap_or_default().as_secs().to_le_bytes());
        }
    }
    // The JVM rejects an archive whose jars changed (size or mtime), e.g. after a re-fetch.
    for jar in classpath.split(':') {
        key.write(jar.as_bytes());
        if let Ok(meta) = fs::metadata(jar) {
            key.write(&meta.len().to_le_bytes());
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            key.write(&mtime.unwrap_or_default().as_secs().to_le_bytes());
        }
    }
    Ok(kafka_cache_dir()?
        .join("cds")
        .join(format!("broker-{:016x}.jsa", key.0)))
}

/// `program` itself if it has a path, else the first match on PATH.
fn which(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// 64-bit FNV-1a, for cache keys (not security).
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The `java` executable: `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` from PATH.
pub fn java_executable() -> PathBuf {
    if let Some(home) = std::env::var_os("JAVA_HOME").filter(|v| !v.is_empty()) {
        let java = PathBuf::from(home).join("bin").join("java");
        if java.is_file() {
            return java;
        }
    }
    PathBuf::from("java")
}

/// The log4j2 configuration for the Java tools run through `java_command`: warnings only, on
/// stderr, so the tools' own output on stdout stays clean.
pub(crate) const TOOLS_LOG4J2: &str = "\
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
";

/// The log4j2 configuration of the brokers: INFO to stdout (redirected to the node's log file).
/// `shutdownHook = disable`: log4j's own JVM shutdown hook stops logging while Kafka's runs
/// its controlled shutdown, so that shutdown's lines were sometimes lost (a test looking for
/// "Transition from STARTED to SHUTTING_DOWN" failed about once in five runs on a busy CPU).
/// The console appender flushes every line, so nothing is left to flush at exit.
pub(crate) const BROKER_LOG4J2: &str = "\
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_comes_from_the_pom() {
        let v = kafka_version();
        assert!(
            v.starts_with("4."),
            "pinned Kafka {v} should be a 4.x (KRaft-only) release"
        );
        assert!(
            v.split('.').all(|part| part.parse::<u32>().is_ok()),
            "{v} is a release version"
        );
    }

    #[test]
    fn fnv1a_matches_reference_values() {
        let hash = |s: &str| {
            let mut h = Fnv1a::default();
            h.write(s.as_bytes());
            h.0
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn pom_property_reads_the_text() {
        let pom = "<p><kafka.version> 9.9.9 </kafka.version><x.y>1</x.y></p>";
        assert_eq!(pom_property(pom, "kafka.version").as_deref(), Some("9.9.9"));
        assert_eq!(pom_property(pom, "x.y").as_deref(), Some("1"));
        assert_eq!(pom_property(pom, "missing"), None);
    }
}
