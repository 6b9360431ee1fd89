//! Where things live: the repository, `../shared`, the upstream CRDs and the kube-apiserver +
//! etcd binaries (running `scripts/setup-kube` when they are missing). Performs I/O.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::KubetestError;

/// Environment variable naming a directory that holds `kube-apiserver` and `etcd`; overrides
/// `scripts/setup-kube`. `KUBEBUILDER_ASSETS` (the envtest convention) is honoured too.
pub const ASSETS_ENV: &str = "KPILOT_KUBE_ASSETS";

/// Environment variable naming the `shared` directory (test data beside the repository).
pub const SHARED_DIR_ENV: &str = "KPILOT_SHARED_DIR";

/// The binaries of a control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assets {
    /// The `kube-apiserver` executable.
    pub kube_apiserver: PathBuf,
    /// The `etcd` executable.
    pub etcd: PathBuf,
}

impl Assets {
    /// Finds the binaries: in `$KPILOT_KUBE_ASSETS`, else `$KUBEBUILDER_ASSETS`, else by
    /// running `scripts/setup-kube` (idempotent; seconds when already done, several minutes
    /// on a fresh machine because it builds kube-apiserver).
    pub fn locate_or_install() -> Result<Self, KubetestError> {
        for var in [ASSETS_ENV, "KUBEBUILDER_ASSETS"] {
            if let Some(dir) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                return Self::in_dir(Path::new(&dir));
            }
        }
        let dir = run_setup_script()?;
        Self::in_dir(&dir)
    }

    /// The binaries in `dir`, checked to exist.
    pub fn in_dir(dir: &Path) -> Result<Self, KubetestError> {
        let find = |binary: &'static str| {
            let path = dir.join(binary);
            if is_executable(&path) {
                Ok(path)
            } else {
                Err(KubetestError::MissingBinary {
                    binary,
                    dir: dir.to_owned(),
                })
            }
        };
        Ok(Assets {
            kube_apiserver: find("kube-apiserver")?,
            etcd: find("etcd")?,
        })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `scripts/setup-kube` and returns the directory it prints. Its progress (stderr) goes to
/// our stderr so that a slow first build is visible.
fn run_setup_script() -> Result<PathBuf, KubetestError> {
    let script = repo_root().join("scripts").join("setup-kube");
    tracing::info!(script = %script.display(), "locating kube-apiserver and etcd");
    let output = Command::new(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| KubetestError::RunSetupScript {
            script: script.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(KubetestError::SetupScriptFailed {
            script,
            status: output.status,
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    Ok(PathBuf::from(dir))
}

/// The repository root (the Cargo workspace holding this crate).
pub fn repo_root() -> PathBuf {
    // crates/kpilot-kubetest -> crates -> repository root.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// The `shared` directory: `$KPILOT_SHARED_DIR`, else `../shared` beside the repository.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os(SHARED_DIR_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("..").join("shared"),
    }
}

/// The directory of upstream CRD manifests: `<shared>/testdata/crds`, with one subdirectory
/// per project (`strimzi`, `karpenter`).
pub fn upstream_crds_dir() -> PathBuf {
    shared_dir().join("testdata").join("crds")
}

/// The Strimzi CRDs (`Kafka`, `KafkaNodePool`, `StrimziPodSet`, `KafkaRebalance`).
pub fn strimzi_crds_dir() -> PathBuf {
    upstream_crds_dir().join("strimzi")
}

/// The Karpenter CRDs (`NodePool`, `NodeClaim`).
pub fn karpenter_crds_dir() -> PathBuf {
    upstream_crds_dir().join("karpenter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_the_binaries_names_what_is_missing_and_how_to_fix_it() {
        let dir =
            std::env::temp_dir().join(format!("kpilot-kubetest-assets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let err = Assets::in_dir(&dir).expect_err("nothing there");
        assert!(matches!(
            err,
            KubetestError::MissingBinary {
                binary: "kube-apiserver",
                ..
            }
        ));
        let message = err.to_string();
        assert!(message.contains("scripts/setup-kube"), "{message}");

        // A non-executable file does not count.
        std::fs::write(dir.join("kube-apiserver"), "").expect("write");
        let err = Assets::in_dir(&dir).expect_err("not executable");
        assert!(matches!(
            err,
            KubetestError::MissingBinary {
                binary: "kube-apiserver",
                ..
            }
        ));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn the_shared_crd_directories_sit_beside_the_repository_by_default() {
        if std::env::var_os(SHARED_DIR_ENV).is_none() {
            assert_eq!(shared_dir(), repo_root().join("..").join("shared"));
        }
        assert!(strimzi_crds_dir().ends_with("testdata/crds/strimzi"));
        assert!(karpenter_crds_dir().ends_with("testdata/crds/karpenter"));
    }
}
