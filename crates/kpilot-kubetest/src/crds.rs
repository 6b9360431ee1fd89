//! Installing CustomResourceDefinitions from YAML manifests into an API server (server-side
//! apply) and waiting until each is Established. Performs I/O (files, API requests).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};

use crate::error::KubetestError;

/// Field manager of our server-side applies.
pub const FIELD_MANAGER: &str = "kpilot-kubetest";

/// How long a CRD may take to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads every CRD in the `*.yaml` / `*.yml` files of `dir` (not recursive, sorted by file
/// name; multi-document files allowed; documents of other kinds are an error). Fails if the
/// directory holds no CRD.
pub fn load_crds(dir: &Path) -> Result<Vec<CustomResourceDefinition>, KubetestError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(KubetestError::file("listing", dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml") && p.is_file())
        .collect();
    files.sort();
    let mut crds = Vec::new();
    for path in files {
        crds.extend(parse_crd_file(&path)?);
    }
    if crds.is_empty() {
        return Err(KubetestError::NoCrds {
            dir: dir.to_owned(),
        });
    }
    Ok(crds)
}

/// Parses the CRDs in one YAML file.
pub fn parse_crd_file(path: &Path) -> Result<Vec<CustomResourceDefinition>, KubetestError> {
    let text = std::fs::read_to_string(path).map_err(KubetestError::file("reading", path))?;
    parse_crds(&text).map_err(|message| KubetestError::ParseCrd {
        path: path.to_owned(),
        message,
    })
}

/// Parses CRDs from YAML text (one or more documents).
fn parse_crds(text: &str) -> Result<Vec<CustomResourceDefinition>, String> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    docs.into_iter()
        .filter(|doc| !doc.is_null())
        .map(|doc| {
            let kind = doc
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or("<none>")
                .to_owned();
            if kind != "CustomResourceDefinition" {
                return Err(format!(
                    "a document of kind {kind}, expected CustomResourceDefinition"
                ));
            }
            serde_json::from_value(doc).map_err(|e| e.to_string())
        })
        .collect()
}

/// Applies every CRD of `dir` (see [`load_crds`]) with server-side apply, then waits until each
/// is Established (30 s at most each). Returns the CRD names. Idempotent.
pub async fn install_crds(client: &kube::Client, dir: &Path) -> Result<Vec<String>, KubetestError> {
    let crds = load_crds(dir)?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::with_capacity(crds.len());
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .map_err(|source| KubetestError::Api {
                action: "applying CRD",
                object: name.clone(),
                source: Box::new(source),
            })?;
        names.push(name);
    }
    for name in &names {
        wait_established(&api, name).await?;
    }
    tracing::info!(dir = %dir.display(), crds = ?names, "CRDs installed and Established");
    Ok(names)
}

async fn wait_established(
    api: &Api<CustomResourceDefinition>,
    name: &str,
) -> Result<(), KubetestError> {
    let start = Instant::now();
    loop {
        let crd = api.get(name).await.map_err(|source| KubetestError::Api {
            action: "reading CRD",
            object: name.to_owned(),
            source: Box::new(source),
        })?;
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
        {
            return Ok(());
        }
        if start.elapsed() > ESTABLISH_TIMEOUT {
            let conditions = conditions
                .iter()
                .map(|c| {
                    format!(
                        "{}={} ({})",
                        c.type_,
                        c.status,
                        c.message.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(KubetestError::CrdNotEstablished {
                name: name.to_owned(),
                waited: start.elapsed(),
                conditions,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multi_document_yaml_and_rejects_other_kinds() {
        let yaml = "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
                    metadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  \
                    names:\n    kind: Widget\n    plural: widgets\n  scope: Namespaced\n  \
                    versions: []\n---\n";
        let crds = parse_crds(yaml).expect("parses");
        assert_eq!(crds.len(), 1);
        assert_eq!(
            crds[0].metadata.name.as_deref(),
            Some("widgets.example.com")
        );
        let err = parse_crds("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
            .expect_err("not a CRD");
        assert!(err.contains("ConfigMap"), "{err}");
    }

    #[test]
    fn reads_every_upstream_crd() {
        let strimzi = load_crds(&crate::assets::strimzi_crds_dir()).expect("strimzi CRDs");
        let names: Vec<_> = strimzi
            .iter()
            .filter_map(|c| c.metadata.name.as_deref())
            .collect();
        assert_eq!(
            names,
            [
                "kafkas.kafka.strimzi.io",
                "strimzipodsets.core.strimzi.io",
                "kafkanodepools.kafka.strimzi.io",
                "kafkarebalances.kafka.strimzi.io"
            ]
        );
        let karpenter = load_crds(&crate::assets::karpenter_crds_dir()).expect("karpenter CRDs");
        let names: Vec<_> = karpenter
            .iter()
            .filter_map(|c| c.metadata.name.as_deref())
            .collect();
        assert_eq!(names, ["nodeclaims.karpenter.sh", "nodepools.karpenter.sh"]);
    }

    #[test]
    fn an_empty_directory_is_an_error() {
        let dir =
            std::env::temp_dir().join(format!("kpilot-kubetest-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let err = load_crds(&dir).expect_err("no CRDs");
        assert!(matches!(err, KubetestError::NoCrds { .. }), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
