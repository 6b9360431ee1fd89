//! The kubeconfig text of a test control plane: one cluster, an admin and a restricted user,
//! one context each (the admin's is current). No I/O (the caller writes the file).

use std::path::Path;

/// Who a client acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// User `kpilot-admin` in group `system:masters`: every request is allowed.
    Admin,
    /// User `kpilot-restricted` in group `kpilot-restricted`, with no role bindings: only what
    /// `system:authenticated` may do (discovery, self reviews). Bind roles to the user
    /// [`RESTRICTED_USER`] to test least-privilege RBAC.
    Restricted,
}

/// Name of the admin user.
pub const ADMIN_USER: &str = "kpilot-admin";
/// Name of the restricted user (also the name of its only extra group).
pub const RESTRICTED_USER: &str = "kpilot-restricted";
/// Name of the cluster in the kubeconfig.
pub const CLUSTER_NAME: &str = "kpilot-kubetest";

impl Identity {
    /// The kubeconfig context (and user entry) of this identity.
    pub fn context(self) -> &'static str {
        match self {
            Identity::Admin => ADMIN_USER,
            Identity::Restricted => RESTRICTED_USER,
        }
    }
}

/// The lines of the static token file (`--token-auth-file`): `token,user,uid,"groups"`.
pub(crate) fn token_file(admin_token: &str, restricted_token: &str) -> String {
    format!(
        "{admin_token},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n\
         {restricted_token},{RESTRICTED_USER},{RESTRICTED_USER},\"{RESTRICTED_USER}\"\n"
    )
}

/// The kubeconfig YAML for `server` (an `https://127.0.0.1:PORT` URL), trusting `ca_file`.
pub(crate) fn render(
    server: &str,
    ca_file: &Path,
    admin_token: &str,
    restricted_token: &str,
) -> String {
    // JSON strings are valid YAML double-quoted scalars.
    let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let ca = q(&ca_file.to_string_lossy());
    let server = q(server);
    let mut out = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         current-context: {admin}\n\
         clusters:\n\
         - name: {CLUSTER_NAME}\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority: {ca}\n\
         users:\n",
        admin = Identity::Admin.context(),
    );
    for (identity, token) in [
        (Identity::Admin, admin_token),
        (Identity::Restricted, restricted_token),
    ] {
        out.push_str(&format!(
            "- name: {}\n  user:\n    token: {}\n",
            identity.context(),
            q(token)
        ));
    }
    out.push_str("contexts:\n");
    for identity in [Identity::Admin, Identity::Restricted] {
        out.push_str(&format!(
            "- name: {ctx}\n  context:\n    cluster: {CLUSTER_NAME}\n    user: {ctx}\n    \
             namespace: default\n",
            ctx = identity.context()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses_and_names_both_identities() {
        let text = render(
            "https://127.0.0.1:6443",
            Path::new("/tmp/x/ca.crt"),
            "aaa",
            "bbb",
        );
        let parsed = kube::config::Kubeconfig::from_yaml(&text).expect("valid kubeconfig");
        assert_eq!(parsed.current_context.as_deref(), Some(ADMIN_USER));
        let cluster = parsed.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some("/tmp/x/ca.crt")
        );
        let names: Vec<_> = parsed.auth_infos.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, [ADMIN_USER, RESTRICTED_USER]);
        let contexts: Vec<_> = parsed.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(contexts, [ADMIN_USER, RESTRICTED_USER]);
    }

    #[test]
    fn only_the_admin_is_a_master() {
        let file = token_file("t1", "t2");
        let lines: Vec<_> = file.lines().collect();
        assert_eq!(lines[0], "t1,kpilot-admin,kpilot-admin,\"system:masters\"");
        assert_eq!(
            lines[1],
            "t2,kpilot-restricted,kpilot-restricted,\"kpilot-restricted\""
        );
    }
}
