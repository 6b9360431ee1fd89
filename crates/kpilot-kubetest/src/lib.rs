//! A real Kubernetes control plane (kube-apiserver + etcd) on 127.0.0.1 for integration tests
//! and for people (`scripts/kubetest up|down|status`). Performs I/O (processes, files, HTTP).
//!
//! The binaries come from `scripts/setup-kube` (etcd from Debian's `etcd-server`,
//! kube-apiserver built with Go from the pinned `k8s.io/kubernetes` module, cached under
//! `~/.cache/kpilot/kube/<version>/`); [`ControlPlane::start`] runs it when they are missing.
//! See `docs/kubetest.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kpilot_kubetest::KubetestError> {
//! use kpilot_kubetest::{ControlPlane, Identity};
//! let cp = ControlPlane::start().await?;          // ~3-6 s when the binaries are cached
//! cp.install_upstream_crds().await?;               // Strimzi + Karpenter, waits Established
//! let ns = cp.create_unique_namespace("roll").await?;
//! let admin: kube::Client = cp.client().await?;    // system:masters
//! let nobody = cp.client_as(Identity::Restricted).await?; // RBAC: no bindings
//! # let _ = (ns, admin, nobody);
//! # Ok(()) }
//! ```
//!
//! Only the API server runs: no scheduler, controller-manager or kubelet. Tests create Nodes,
//! Pods, PVs and PVCs as objects and play those components' part. `Drop` stops both processes
//! and removes the directory (kept when panicking or with `KPILOT_KUBETEST_KEEP=1`); a
//! watchdog process does the same if the test process dies without `Drop`.

mod assets;
mod control_plane;
mod crds;
mod error;
mod kubeconfig;
mod pki;
mod process;

pub use assets::{
    ASSETS_ENV, Assets, SHARED_DIR_ENV, karpenter_crds_dir, repo_root, shared_dir,
    strimzi_crds_dir, upstream_crds_dir,
};
pub use control_plane::{ControlPlane, DetachedControlPlane, KEEP_ENV, Options};
pub use crds::{FIELD_MANAGER, install_crds, load_crds, parse_crd_file};
pub use error::KubetestError;
pub use kubeconfig::{ADMIN_USER, CLUSTER_NAME, Identity, RESTRICTED_USER};

/// Re-exported so that tests use the same versions as this crate.
pub use k8s_openapi;
/// Re-exported so that tests use the same versions as this crate.
pub use kube;
