//! The error type of this crate: one variant per failed action, naming the file, process or
//! object involved. No I/O.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while installing, starting, using or stopping a test control
/// plane.
#[derive(Debug, thiserror::Error)]
pub enum KubetestError {
    /// `scripts/setup-kube` (which installs etcd and builds kube-apiserver) could not be run.
    #[error("running {script} failed: {source}; run it by hand to see why")]
    RunSetupScript {
        /// The script that was run.
        script: PathBuf,
        /// Why it could not be started or waited for.
        #[source]
        source: std::io::Error,
    },
    /// `scripts/setup-kube` ran but failed (its stderr was passed through).
    #[error(
        "{script} failed ({status}); see its output above, or run it by hand \
         (it needs Go >= 1.26, the Go module proxy, and apt-get or an installed etcd)"
    )]
    SetupScriptFailed {
        /// The script that was run.
        script: PathBuf,
        /// How it exited.
        status: std::process::ExitStatus,
    },
    /// A binary the control plane needs is missing from the assets directory.
    #[error(
        "{binary} not found or not executable in {dir}; run scripts/setup-kube, or point \
         KPILOT_KUBE_ASSETS at a directory holding kube-apiserver and etcd"
    )]
    MissingBinary {
        /// The binary's file name (`kube-apiserver` or `etcd`).
        binary: &'static str,
        /// The directory searched.
        dir: PathBuf,
    },
    /// A file or directory of the control plane could not be created, written or read.
    #[error("{action} {path} failed: {source}")]
    File {
        /// What was being done (`creating`, `writing`, `reading`, `removing`...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No free TCP port could be reserved on 127.0.0.1.
    #[error("reserving a free port on 127.0.0.1 failed: {0}")]
    ReservePort(#[source] std::io::Error),
    /// Certificates or keys could not be generated.
    #[error("generating the {what} failed: {source}")]
    GeneratePki {
        /// Which certificate or key.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// Random bytes for an access token could not be drawn from the system.
    #[error("drawing random bytes for an access token failed")]
    Random,
    /// A process (etcd, kube-apiserver, the watchdog) could not be started.
    #[error("starting {process} ({binary}) failed: {source}")]
    SpawnProcess {
        /// Which process.
        process: &'static str,
        /// The executable.
        binary: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A process exited while we waited for it to become ready.
    #[error("{process} exited during startup ({status}); last lines of {log}:\n{tail}")]
    ProcessExited {
        /// Which process.
        process: &'static str,
        /// How it exited.
        status: String,
        /// Its log file (kept).
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// A process did not become ready in time.
    #[error("{process} was not ready after {waited:?} (last check: {last}); see {log}")]
    NotReady {
        /// Which process.
        process: &'static str,
        /// How long we waited.
        waited: Duration,
        /// The outcome of the last readiness check.
        last: String,
        /// Its log file (kept).
        log: PathBuf,
    },
    /// The generated kubeconfig could not be turned into a client configuration.
    #[error("loading the kubeconfig {path} (context {context}) failed: {source}")]
    LoadKubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// The context that was requested.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<kube::config::KubeconfigError>,
    },
    /// A `kube::Client` could not be built from a configuration.
    #[error("building a Kubernetes client for {server} failed: {source}")]
    BuildClient {
        /// The API server URL.
        server: String,
        /// The underlying error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A CRD manifest could not be parsed.
    #[error("parsing CRD manifest {path} failed: {message}")]
    ParseCrd {
        /// The YAML file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A CRD directory holds no CRD manifest at all (probably a wrong path).
    #[error(
        "no CustomResourceDefinition found in {dir} (*.yaml / *.yml); is KPILOT_SHARED_DIR \
         (or ../shared beside the repository) right?"
    )]
    NoCrds {
        /// The directory searched.
        dir: PathBuf,
    },
    /// An API request failed.
    #[error("{action} {object} failed: {source}")]
    Api {
        /// What was being done (`applying CRD`, `creating namespace`...).
        action: &'static str,
        /// The object's name.
        object: String,
        /// The underlying error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A CRD was applied but did not become Established in time.
    #[error("CRD {name} was not Established after {waited:?} (conditions: {conditions})")]
    CrdNotEstablished {
        /// The CRD's name (`kafkanodepools.kafka.strimzi.io`).
        name: String,
        /// How long we waited.
        waited: Duration,
        /// Its last observed conditions.
        conditions: String,
    },
    /// The state file of a shell-started control plane (`scripts/kubetest`) is unusable.
    #[error("the kubetest state file {path} is unusable: {message}; remove it if nothing runs")]
    State {
        /// The state file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

impl KubetestError {
    /// Shorthand for [`KubetestError::File`].
    pub(crate) fn file(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| KubetestError::File {
            action,
            path,
            source,
        }
    }
}
