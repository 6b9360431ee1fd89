//! `kpilot-kubetest up|down|status`: a kube-apiserver + etcd on 127.0.0.1 for people, kept
//! running between commands (state in `--state-dir`, normally `<repo>/.kubetest`; see
//! `scripts/kubetest`). Performs I/O (processes, files, HTTP).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kpilot_kubetest::{ControlPlane, DetachedControlPlane, KubetestError, Options};

/// A real Kubernetes API server (kube-apiserver + etcd) on 127.0.0.1, for trying kpilot by
/// hand. Nothing is scheduled or run: create Nodes, Pods, PVs as objects.
#[derive(Debug, Parser)]
#[command(name = "kpilot-kubetest", version)]
struct Cli {
    /// Where the state file, logs, certificates and kubeconfig live.
    /// Example: --state-dir .kubetest
    #[arg(long, env = "KPILOT_KUBETEST_DIR", default_value = ".kubetest")]
    state_dir: PathBuf,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the control plane unless it runs already, and print `export KUBECONFIG=...`.
    /// Example: eval "$(scripts/kubetest up)"
    Up,
    /// Stop the control plane and remove its files (no-op when nothing runs).
    Down {
        /// Keep logs and certificates. Example: down --keep-logs
        #[arg(long)]
        keep_logs: bool,
    },
    /// Say whether it runs (exit code 0) or not (exit code 1).
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kpilot-kubetest: error: starting the async runtime failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(code) => code,
        Err(e) => {
            let mut message = format!("kpilot-kubetest: error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(&format!("\n  caused by: {s}"));
                source = s.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> Result<ExitCode, KubetestError> {
    let state_dir = absolute(&cli.state_dir)?;
    let state_file = state_dir.join("state.json");
    let kubeconfig_link = state_dir.join("kubeconfig");
    match cli.command {
        Command::Up => {
            if let Some(state) = read_state(&state_file)? {
                if state.is_running() {
                    print_up(&state, &kubeconfig_link, cli.json, "already running");
                    return Ok(ExitCode::SUCCESS);
                }
                eprintln!(
                    "kpilot-kubetest: removing a stale control plane ({})",
                    state.id
                );
                state.stop(false)?;
                remove(&state_file)?;
            }
            std::fs::create_dir_all(&state_dir).map_err(file_err("creating", &state_dir))?;
            let options = Options {
                base_dir: Some(state_dir.clone()),
                ..Options::default()
            };
            let cp = ControlPlane::start_with(options).await?;
            let took = cp.startup_duration();
            let state = cp.detach();
            let json = serde_json::to_string_pretty(&state).map_err(|e| KubetestError::State {
                path: state_file.clone(),
                message: e.to_string(),
            })?;
            std::fs::write(&state_file, json).map_err(file_err("writing", &state_file))?;
            std::fs::copy(&state.kubeconfig, &kubeconfig_link)
                .map_err(file_err("writing", &kubeconfig_link))?;
            print_up(
                &state,
                &kubeconfig_link,
                cli.json,
                &format!("started in {:.1} s", took.as_secs_f64()),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Down { keep_logs } => {
            let Some(state) = read_state(&state_file)? else {
                report(cli.json, "stopped", "nothing was running");
                return Ok(ExitCode::SUCCESS);
            };
            state.stop(keep_logs)?;
            remove(&state_file)?;
            remove(&kubeconfig_link)?;
            // Leave no empty directory behind (fails harmlessly when logs were kept).
            let _ = std::fs::remove_dir(&state_dir);
            report(
                cli.json,
                "stopped",
                &format!("stopped {}", state.server_url),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => match read_state(&state_file)? {
            Some(state) if state.is_running() => {
                let ready = readyz(&state).await;
                if cli.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "status": "running",
                            "ready": ready.is_ok(),
                            "server": state.server_url,
                            "kubeconfig": kubeconfig_link,
                            "dir": state.dir,
                        })
                    );
                } else {
                    println!(
                        "running: {} (kubeconfig {})",
                        state.server_url,
                        kubeconfig_link.display()
                    );
                    match &ready {
                        Ok(()) => println!("readyz: ok"),
                        Err(e) => println!("readyz: NOT ready: {e}"),
                    }
                    println!("logs: {}", state.dir.display());
                }
                Ok(if ready.is_ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            Some(_) => {
                report(
                    cli.json,
                    "stale",
                    "not running (stale state; `down` cleans it up)",
                );
                Ok(ExitCode::FAILURE)
            }
            None => {
                report(cli.json, "stopped", "not running");
                Ok(ExitCode::FAILURE)
            }
        },
    }
}

fn print_up(state: &DetachedControlPlane, kubeconfig: &Path, json: bool, note: &str) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "status": "running",
                "server": state.server_url,
                "kubeconfig": kubeconfig,
                "dir": state.dir,
            })
        );
    } else {
        eprintln!(
            "kpilot-kubetest: kube-apiserver at {} ({note})",
            state.server_url
        );
        eprintln!("kpilot-kubetest: kubeconfig {}", kubeconfig.display());
        println!("export KUBECONFIG={}", kubeconfig.display());
    }
}

fn report(json: bool, status: &str, text: &str) {
    if json {
        println!("{}", serde_json::json!({ "status": status }));
    } else {
        println!("{text}");
    }
}

async fn readyz(state: &DetachedControlPlane) -> Result<(), String> {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&state.kubeconfig).map_err(|e| e.to_string())?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let body = client
        .request_text(request)
        .await
        .map_err(|e| e.to_string())?;
    if body.trim() == "ok" {
        Ok(())
    } else {
        Err(body)
    }
}

fn read_state(path: &Path) -> Result<Option<DetachedControlPlane>, KubetestError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| KubetestError::State {
                path: path.to_owned(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KubetestError::File {
            action: "reading",
            path: path.to_owned(),
            source,
        }),
    }
}

fn remove(path: &Path) -> Result<(), KubetestError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(KubetestError::File {
            action: "removing",
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn absolute(path: &Path) -> Result<PathBuf, KubetestError> {
    std::path::absolute(path).map_err(file_err("resolving", path))
}

fn file_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KubetestError {
    let path = path.to_owned();
    move |source| KubetestError::File {
        action,
        path,
        source,
    }
}
