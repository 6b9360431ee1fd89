//! [`ControlPlane`]: a real etcd + kube-apiserver on 127.0.0.1 for one test (or one test
//! binary), with generated certificates, an admin and a restricted identity, RBAC on, and a
//! kubeconfig file. Performs I/O (processes, files, HTTP).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::assets::Assets;
use crate::crds;
use crate::error::KubetestError;
use crate::kubeconfig::{self, Identity};
use crate::pki::Pki;
use crate::process::{self, ServerProcess, Watchdog};

/// Environment variable: `1` keeps the directory (logs, certificates, kubeconfig) after `Drop`.
pub const KEEP_ENV: &str = "KPILOT_KUBETEST_KEEP";

/// How many times a start is retried with fresh ports when one was taken in between.
const PORT_ATTEMPTS: u32 = 3;

/// How long etcd may take to report healthy.
const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of a control plane; [`Options::default`] suits tests.
#[derive(Debug, Clone)]
pub struct Options {
    /// Parent of the control plane's own directory. Default: the system temp directory.
    pub base_dir: Option<PathBuf>,
    /// Keep the directory after `Drop`. Default: `KPILOT_KUBETEST_KEEP=1`. It is also kept
    /// when `Drop` runs during a panic (a failing test).
    pub keep: bool,
    /// How long kube-apiserver may take to report `/readyz` ok. Default 120 s.
    pub ready_timeout: Duration,
    /// Put etcd's data on `/dev/shm` (tmpfs: no disk syncs, faster) when it exists.
    /// Default: true.
    pub etcd_on_tmpfs: bool,
    /// Extra kube-apiserver flags, e.g. `--feature-gates=...`.
    pub extra_apiserver_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            base_dir: None,
            keep: std::env::var(KEEP_ENV).is_ok_and(|v| v == "1"),
            ready_timeout: Duration::from_secs(120),
            etcd_on_tmpfs: true,
            extra_apiserver_args: Vec::new(),
        }
    }
}

/// A running etcd + kube-apiserver. Stopped (and its directory removed, unless kept) on
/// `Drop`; a watchdog process does the same if the test process dies without `Drop`.
///
/// What runs is only the API server: no scheduler, no kube-controller-manager (so no
/// StatefulSet, namespace-deletion or garbage-collection controllers), no kubelet. Tests create
/// Nodes, Pods, PVs and PVCs as objects and play those controllers' part themselves. The
/// `ServiceAccount` admission plugin is off (there is no controller to create `default`
/// service accounts), everything else is the API server's default.
#[derive(Debug)]
pub struct ControlPlane {
    id: String,
    dir: PathBuf,
    etcd_data: PathBuf,
    server_url: String,
    etcd_url: String,
    kubeconfig: PathBuf,
    // `Drop` stops the API server before etcd explicitly (field order does not matter).
    apiserver: ServerProcess,
    etcd: ServerProcess,
    watchdog: Option<Watchdog>,
    keep: bool,
    detached: bool,
    startup: Duration,
}

/// Where a detached control plane (`scripts/kubetest up`) runs; see
/// [`ControlPlane::detach`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DetachedControlPlane {
    /// Unique id; appears on both processes' command lines.
    pub id: String,
    /// The control plane's directory (logs, certificates, kubeconfig).
    pub dir: PathBuf,
    /// etcd's data directory.
    pub etcd_data: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub server_url: String,
    /// The kubeconfig file.
    pub kubeconfig: PathBuf,
    /// kube-apiserver's process id.
    pub apiserver_pid: u32,
    /// etcd's process id.
    pub etcd_pid: u32,
}

impl DetachedControlPlane {
    /// Whether both processes are still running.
    pub fn is_running(&self) -> bool {
        process::is_ours(self.apiserver_pid, &self.id) && process::is_ours(self.etcd_pid, &self.id)
    }

    /// Stops both processes (API server first; SIGTERM, then SIGKILL after 10 s), removes
    /// etcd's data, and removes the directory (logs, certificates) unless `keep`.
    pub fn stop(&self, keep: bool) -> Result<(), KubetestError> {
        process::stop_foreign(self.apiserver_pid, &self.id);
        process::stop_foreign(self.etcd_pid, &self.id);
        let dirs = if keep {
            vec![&self.etcd_data]
        } else {
            vec![&self.etcd_data, &self.dir]
        };
        for dir in dirs {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(KubetestError::file("removing", dir))?;
            }
        }
        Ok(())
    }
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);
static SHARED: tokio::sync::OnceCell<ControlPlane> = tokio::sync::OnceCell::const_new();

impl ControlPlane {
    /// Starts a control plane with [`Options::default`]; see [`ControlPlane::start_with`].
    pub async fn start() -> Result<Self, KubetestError> {
        Self::start_with(Options::default()).await
    }

    /// One control plane for the whole test binary, started by the first caller and shared by
    /// every test after it (each test builds its own clients, and should work in its own
    /// namespace, see [`ControlPlane::create_unique_namespace`]). It is never dropped: the
    /// watchdog stops it and removes its directory when the test binary exits (set
    /// `KPILOT_KUBETEST_KEEP=1` to keep the logs).
    pub async fn shared() -> Result<&'static Self, KubetestError> {
        SHARED.get_or_try_init(Self::start).await
    }

    /// Starts etcd and kube-apiserver on free ports of 127.0.0.1 and waits until `/readyz` is
    /// ok. Locates the binaries first ([`Assets::locate_or_install`]: may run
    /// `scripts/setup-kube`, which blocks this thread for minutes on a fresh machine).
    pub async fn start_with(options: Options) -> Result<Self, KubetestError> {
        let started = Instant::now();
        let assets = Assets::locate_or_install()?;
        let id = unique_id();
        let base = options.base_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = base.join(&id);
        let shm = Path::new("/dev/shm");
        let etcd_data = if options.etcd_on_tmpfs && shm.is_dir() {
            shm.join(format!("{id}-etcd"))
        } else {
            dir.join("etcd-data")
        };
        let pki_dir = dir.join("pki");
        std::fs::create_dir_all(&pki_dir).map_err(KubetestError::file("creating", &pki_dir))?;
        let watchdog = Watchdog::spawn(&dir, &etcd_data, &id, options.keep)?;

        let pki = Pki::generate()?;
        let files = write_pki(&pki_dir, &pki)?;

        let mut attempt = 1;
        loop {
            match start_processes(&assets, &options, &id, &dir, &etcd_data, &files, &pki).await {
                Ok(running) => {
                    let startup = started.elapsed();
                    tracing::info!(
                        server = %running.server_url,
                        dir = %dir.display(),
                        startup_ms = startup.as_millis() as u64,
                        "kube control plane ready"
                    );
                    return Ok(ControlPlane {
                        id,
                        dir,
                        etcd_data,
                        server_url: running.server_url,
                        etcd_url: running.etcd_url,
                        kubeconfig: running.kubeconfig,
                        apiserver: running.apiserver,
                        etcd: running.etcd,
                        watchdog: Some(watchdog),
                        keep: options.keep,
                        detached: false,
                        startup,
                    });
                }
                Err(e) if attempt < PORT_ATTEMPTS && is_port_clash(&e) => {
                    tracing::warn!("a port was taken during startup; retrying with fresh ports");
                    attempt += 1;
                    let _ = std::fs::remove_dir_all(&etcd_data);
                }
                Err(e) => {
                    // Keep the logs for the error message's reader; the watchdog removes them
                    // unless `keep`, so disarm it and say where they are.
                    watchdog.disarm();
                    let _ = std::fs::remove_dir_all(&etcd_data);
                    tracing::error!(dir = %dir.display(), "kube control plane failed to start; logs kept");
                    return Err(e);
                }
            }
        }
    }

    /// The API server's URL, `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// etcd's client URL, `http://127.0.0.1:PORT` (for tests that inspect storage).
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The kubeconfig file: contexts `kpilot-admin` (current) and `kpilot-restricted`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The control plane's directory (logs `etcd.log` / `kube-apiserver.log`, `pki/`,
    /// `kubeconfig`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of kube-apiserver's log.
    pub fn apiserver_log(&self) -> &Path {
        &self.apiserver.log
    }

    /// How long [`ControlPlane::start`] took (binaries located, processes started, ready).
    pub fn startup_duration(&self) -> Duration {
        self.startup
    }

    /// A client acting as the admin (`system:masters`).
    pub async fn client(&self) -> Result<kube::Client, KubetestError> {
        self.client_as(Identity::Admin).await
    }

    /// A client acting as `identity`.
    pub async fn client_as(&self, identity: Identity) -> Result<kube::Client, KubetestError> {
        let config = self.config(identity).await?;
        self.build(config)
    }

    /// A client that authenticates as the admin and impersonates `user` in `groups` (the
    /// API server adds `system:authenticated`). RBAC decides as for that user: the way to test
    /// a least-privilege Role without creating credentials.
    pub async fn impersonating_client(
        &self,
        user: &str,
        groups: &[&str],
    ) -> Result<kube::Client, KubetestError> {
        let mut config = self.config(Identity::Admin).await?;
        config.auth_info.impersonate = Some(user.to_owned());
        config.auth_info.impersonate_groups =
            (!groups.is_empty()).then(|| groups.iter().map(|g| (*g).to_owned()).collect());
        self.build(config)
    }

    /// A client that impersonates the service account `namespace/name` (user
    /// `system:serviceaccount:<namespace>:<name>` in its groups). The service account object
    /// need not exist; its role bindings are what count.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client, KubetestError> {
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let ns_group = format!("system:serviceaccounts:{namespace}");
        self.impersonating_client(&user, &["system:serviceaccounts", &ns_group])
            .await
    }

    async fn config(&self, identity: Identity) -> Result<kube::Config, KubetestError> {
        load_config(&self.kubeconfig, identity).await
    }

    fn build(&self, config: kube::Config) -> Result<kube::Client, KubetestError> {
        kube::Client::try_from(config).map_err(|source| KubetestError::BuildClient {
            server: self.server_url.clone(),
            source: Box::new(source),
        })
    }

    /// Applies every CRD manifest in `dir` and waits until each is Established; returns their
    /// names. See [`crds::install_crds`].
    pub async fn install_crds(&self, dir: &Path) -> Result<Vec<String>, KubetestError> {
        crds::install_crds(&self.client().await?, dir).await
    }

    /// Installs the six upstream CRDs (Strimzi `Kafka`, `KafkaNodePool`, `StrimziPodSet`,
    /// `KafkaRebalance`; Karpenter `NodePool`, `NodeClaim`) from the shared test data.
    pub async fn install_upstream_crds(&self) -> Result<Vec<String>, KubetestError> {
        let mut names = self
            .install_crds(&crate::assets::strimzi_crds_dir())
            .await?;
        names.extend(
            self.install_crds(&crate::assets::karpenter_crds_dir())
                .await?,
        );
        Ok(names)
    }

    /// Creates namespace `name` (as admin). Note: with no namespace controller running, a
    /// deleted namespace stays `Terminating` forever; use fresh names instead of deleting.
    pub async fn create_namespace(&self, name: &str) -> Result<Namespace, KubetestError> {
        let api: Api<Namespace> = Api::all(self.client().await?);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .map_err(|source| KubetestError::Api {
                action: "creating namespace",
                object: name.to_owned(),
                source: Box::new(source),
            })
    }

    /// Creates a namespace named `<prefix>-<n>` that no other test of this process uses
    /// (for tests sharing one control plane), and returns its name.
    pub async fn create_unique_namespace(&self, prefix: &str) -> Result<String, KubetestError> {
        let name = format!("{prefix}-{}", SEQUENCE.fetch_add(1, Ordering::Relaxed));
        self.create_namespace(&name).await?;
        Ok(name)
    }

    /// Leaves both processes running after this value is gone (for `scripts/kubetest up`) and
    /// returns what is needed to find and stop them later.
    pub fn detach(mut self) -> DetachedControlPlane {
        self.apiserver.detach();
        self.etcd.detach();
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
        self.detached = true;
        DetachedControlPlane {
            id: self.id.clone(),
            dir: self.dir.clone(),
            etcd_data: self.etcd_data.clone(),
            server_url: self.server_url.clone(),
            kubeconfig: self.kubeconfig.clone(),
            apiserver_pid: self.apiserver.pid,
            etcd_pid: self.etcd.pid,
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        self.apiserver.stop();
        self.etcd.stop();
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
        let _ = std::fs::remove_dir_all(&self.etcd_data);
        if self.keep || std::thread::panicking() {
            eprintln!(
                "kpilot-kubetest: control plane logs kept in {}",
                self.dir.display()
            );
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "removing the control plane directory failed: {e}");
        }
    }
}

/// `kpilot-kubetest-<pid>-<seq>-<time>`: unique per process, start and moment.
fn unique_id() -> String {
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("kpilot-kubetest-{}-{seq}-{nanos:x}", std::process::id())
}

/// The files written from a [`Pki`].
struct PkiFiles {
    ca: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    sa_key: PathBuf,
    sa_public: PathBuf,
    tokens: PathBuf,
}

fn write_pki(dir: &Path, pki: &Pki) -> Result<PkiFiles, KubetestError> {
    use std::os::unix::fs::OpenOptionsExt;
    let write = |name: &str, text: &str| -> Result<PathBuf, KubetestError> {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(KubetestError::file("creating", &path))?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .map_err(KubetestError::file("writing", &path))?;
        Ok(path)
    };
    Ok(PkiFiles {
        ca: write("ca.crt", &pki.ca_cert_pem)?,
        serving_cert: write("apiserver.crt", &pki.serving_cert_pem)?,
        serving_key: write("apiserver.key", &pki.serving_key_pem)?,
        sa_key: write("sa.key", &pki.sa_key_pem)?,
        sa_public: write("sa.pub", &pki.sa_public_pem)?,
        tokens: write(
            "tokens.csv",
            &kubeconfig::token_file(&pki.admin_token, &pki.restricted_token),
        )?,
    })
}

struct Running {
    server_url: String,
    etcd_url: String,
    kubeconfig: PathBuf,
    apiserver: ServerProcess,
    etcd: ServerProcess,
}

async fn start_processes(
    assets: &Assets,
    options: &Options,
    id: &str,
    dir: &Path,
    etcd_data: &Path,
    files: &PkiFiles,
    pki: &Pki,
) -> Result<Running, KubetestError> {
    let ports = process::free_ports(3)?;
    let (etcd_port, peer_port, api_port) = (ports[0], ports[1], ports[2]);
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let etcd_args = vec![
        // The name carries the id so that the watchdog and `down` can recognise the process.
        format!("--name={id}"),
        format!("--data-dir={}", etcd_data.display()),
        format!("--listen-client-urls={etcd_url}"),
        format!("--advertise-client-urls={etcd_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster={id}={peer_url}"),
        "--initial-cluster-state=new".to_owned(),
        // A single member on loopback: elect itself in ~0.1 s instead of ~0.6 s.
        "--heartbeat-interval=20".to_owned(),
        "--election-timeout=200".to_owned(),
        "--logger=zap".to_owned(),
        "--log-outputs=stderr".to_owned(),
        "--log-level=warn".to_owned(),
    ];
    let mut etcd = ServerProcess::spawn("etcd", &assets.etcd, &etcd_args, dir)?;
    wait_etcd(&mut etcd, etcd_port).await?;

    let server_url = format!("https://127.0.0.1:{api_port}");
    let kubeconfig_path = dir.join("kubeconfig");
    let text = kubeconfig::render(
        &server_url,
        &files.ca,
        &pki.admin_token,
        &pki.restricted_token,
    );
    std::fs::write(&kubeconfig_path, text)
        .map_err(KubetestError::file("writing", &kubeconfig_path))?;

    let mut api_args = vec![
        format!("--etcd-servers={etcd_url}"),
        "--bind-address=127.0.0.1".to_owned(),
        "--advertise-address=127.0.0.1".to_owned(),
        format!("--secure-port={api_port}"),
        format!("--cert-dir={}", dir.join("pki").display()),
        format!("--tls-cert-file={}", files.serving_cert.display()),
        format!("--tls-private-key-file={}", files.serving_key.display()),
        format!("--token-auth-file={}", files.tokens.display()),
        "--authorization-mode=RBAC".to_owned(),
        format!("--service-account-issuer={server_url}"),
        format!("--service-account-key-file={}", files.sa_public.display()),
        format!(
            "--service-account-signing-key-file={}",
            files.sa_key.display()
        ),
        // Only an allocation range for Service objects' cluster IPs; nothing listens there.
        "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
        "--allow-privileged=true".to_owned(),
        "--disable-admission-plugins=ServiceAccount".to_owned(),
        "--profiling=false".to_owned(),
        // The `kubernetes` Service's endpoints would be 127.0.0.1, which Endpoints validation
        // refuses (a log line every 10 s); no test needs them.
        "--endpoint-reconciler-type=none".to_owned(),
    ];
    api_args.extend(options.extra_apiserver_args.iter().cloned());
    let mut apiserver =
        ServerProcess::spawn("kube-apiserver", &assets.kube_apiserver, &api_args, dir)?;
    wait_apiserver(&mut apiserver, &kubeconfig_path, options.ready_timeout).await?;
    Ok(Running {
        server_url,
        etcd_url,
        kubeconfig: kubeconfig_path,
        apiserver,
        etcd,
    })
}

fn is_port_clash(error: &KubetestError) -> bool {
    match error {
        KubetestError::ProcessExited { tail, .. } => tail.contains("address already in use"),
        _ => false,
    }
}

/// Polls etcd's `/health` until it says `true`.
async fn wait_etcd(etcd: &mut ServerProcess, port: u16) -> Result<(), KubetestError> {
    let start = Instant::now();
    let mut last: String;
    loop {
        if let Some(status) = etcd.exited() {
            return Err(etcd.exited_error(status));
        }
        match etcd_health(port).await {
            Ok(body) if body.contains(r#""health":"true""#) => return Ok(()),
            Ok(body) => last = body,
            Err(e) => last = e.to_string(),
        }
        if start.elapsed() > ETCD_READY_TIMEOUT {
            return Err(KubetestError::NotReady {
                process: "etcd",
                waited: start.elapsed(),
                last,
                log: etcd.log.clone(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One plain HTTP/1.0 `GET /health` to etcd on 127.0.0.1.
async fn etcd_health(port: u16) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut response))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 2 s"))??;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// Polls kube-apiserver's `/readyz` (as the admin) until it answers `ok`.
async fn wait_apiserver(
    apiserver: &mut ServerProcess,
    kubeconfig_path: &Path,
    timeout: Duration,
) -> Result<(), KubetestError> {
    let start = Instant::now();
    let config = load_config(kubeconfig_path, Identity::Admin).await?;
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|source| KubetestError::BuildClient {
        server,
        source: Box::new(source),
    })?;
    let mut last: String;
    loop {
        if let Some(status) = apiserver.exited() {
            return Err(apiserver.exited_error(status));
        }
        let request = http::Request::get("/readyz").body(Vec::new());
        match request {
            Ok(request) => match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        if start.elapsed() > timeout {
            return Err(KubetestError::NotReady {
                process: "kube-apiserver",
                waited: start.elapsed(),
                last,
                log: apiserver.log.clone(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The client configuration of `identity` from our kubeconfig file.
pub(crate) async fn load_config(
    path: &Path,
    identity: Identity,
) -> Result<kube::Config, KubetestError> {
    let context = identity.context().to_owned();
    let err = |source| KubetestError::LoadKubeconfig {
        path: path.to_owned(),
        context: context.clone(),
        source: Box::new(source),
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(err)?;
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(err)
}
