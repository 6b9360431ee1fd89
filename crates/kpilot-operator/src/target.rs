//! What the operator reads from and writes to the brokers' Kubernetes objects: the instance
//! type a pod template asks for (node affinity on `node.kubernetes.io/instance-type`), the
//! resources an instance type gets, and the patches for a Strimzi `KafkaNodePool`, a
//! StatefulSet's pod template and a Karpenter `NodePool`. Pure: JSON in, JSON out.

use kpilot_capacity::Instance;
use serde_json::{Value, json};

/// The well-known node label of the instance type.
pub const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";
/// Annotation the operator puts on the pod template (and so on every pod) it sized.
pub const INSTANCE_TYPE_ANNOTATION: &str = "kpilot.io/instance-type";
/// Strimzi's annotation that pauses its reconciliation of a `Kafka`.
pub const STRIMZI_PAUSE_ANNOTATION: &str = "strimzi.io/pause-reconciliation";

/// The instance type required by a pod `affinity` (the first `In` expression on the
/// instance-type label with one value).
pub fn instance_type_in_affinity(affinity: &Value) -> Option<String> {
    let terms = affinity
        .pointer("/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?
        .as_array()?;
    terms.iter().find_map(|term| {
        term.get("matchExpressions")?
            .as_array()?
            .iter()
            .find(|e| {
                e.get("key").and_then(Value::as_str) == Some(INSTANCE_TYPE_LABEL)
                    && e.get("operator").and_then(Value::as_str) == Some("In")
            })?
            .get("values")?
            .as_array()?
            .first()?
            .as_str()
            .map(str::to_owned)
    })
}

/// `affinity` with its instance-type requirement set to `instance` in every node selector
/// term (added when missing), every other requirement kept.
pub fn with_instance_type(affinity: &Value, instance: &str) -> Value {
    let mut affinity = if affinity.is_object() {
        affinity.clone()
    } else {
        json!({})
    };
    let expr = json!({"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": [instance]});
    let required = &mut affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let terms = &mut required["nodeSelectorTerms"];
    if terms.as_array().is_none_or(|t| t.is_empty()) {
        *terms = json!([{"matchExpressions": []}]);
    }
    if let Some(terms) = terms.as_array_mut() {
        for term in terms {
            if !term["matchExpressions"].is_array() {
                term["matchExpressions"] = json!([]);
            }
            if let Some(exprs) = term["matchExpressions"].as_array_mut() {
                exprs.retain(|e| e.get("key").and_then(Value::as_str) != Some(INSTANCE_TYPE_LABEL));
                exprs.push(expr.clone());
            }
        }
    }
    affinity
}

/// Requests and limits for a broker on `instance`: all but half a vCPU (system daemons) as the
/// CPU request, no CPU limit (no throttling), and 80% of the memory as request and limit
/// (Strimzi sizes the JVM heap from the limit; the rest is page cache on the node).
pub fn resources_for(instance: &Instance) -> Value {
    let cpu_milli = (instance.vcpu * 1000).saturating_sub(500).max(250);
    let memory_mib = (instance.memory_gib * 1024.0 * 0.8).floor().max(256.0) as u64;
    json!({
        "requests": {"cpu": format!("{cpu_milli}m"), "memory": format!("{memory_mib}Mi")},
        "limits": {"memory": format!("{memory_mib}Mi")}
    })
}

/// JSON merge patch of a Strimzi `KafkaNodePool` (`pool` is the object as read) moving its
/// brokers to `instance`: resources, the node affinity of its pod template, and the
/// `kpilot.io/instance-type` annotation. Strimzi then rolls the pods.
pub fn node_pool_patch(pool: &Value, instance: &Instance) -> Value {
    let name = instance.name.to_string();
    let affinity = pool
        .pointer("/spec/template/pod/affinity")
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "metadata": {"annotations": {INSTANCE_TYPE_ANNOTATION: name}},
        "spec": {
            "resources": resources_for(instance),
            "template": {"pod": {
                "metadata": {"annotations": {INSTANCE_TYPE_ANNOTATION: name}},
                "affinity": with_instance_type(&affinity, &name)
            }}
        }
    })
}

/// The instance type a `KafkaNodePool` asks for: its pod affinity, else its annotation.
pub fn node_pool_instance_type(pool: &Value) -> Option<String> {
    pool.pointer("/spec/template/pod/affinity")
        .and_then(instance_type_in_affinity)
        .or_else(|| {
            pool.pointer("/metadata/annotations")
                .and_then(|a| a.get(INSTANCE_TYPE_ANNOTATION))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
}

/// The instance type a pod spec (or pod template spec) asks for: its affinity, else its
/// `nodeSelector`.
pub fn pod_spec_instance_type(spec: &Value) -> Option<String> {
    spec.get("affinity")
        .and_then(instance_type_in_affinity)
        .or_else(|| {
            spec.pointer("/nodeSelector")
                .and_then(|s| s.get(INSTANCE_TYPE_LABEL))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
}

/// Strategic merge patch of a StatefulSet (`sts` as read) moving its pod template to
/// `instance`: the affinity, the resources of the container named `kafka` (else the first
/// container), and the `kpilot.io/instance-type` annotation. With `updateStrategy: OnDelete`
/// nothing restarts until the operator deletes a pod.
pub fn stateful_set_patch(sts: &Value, instance: &Instance) -> Value {
    let name = instance.name.to_string();
    let spec = sts
        .pointer("/spec/template/spec")
        .cloned()
        .unwrap_or(json!({}));
    let affinity = spec.get("affinity").cloned().unwrap_or(Value::Null);
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let container = containers
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some("kafka"))
        .or_else(|| containers.first())
        .and_then(|c| c.get("name").and_then(Value::as_str))
        .unwrap_or("kafka")
        .to_owned();
    json!({
        "spec": {"template": {
            "metadata": {"annotations": {INSTANCE_TYPE_ANNOTATION: name}},
            "spec": {
                "affinity": with_instance_type(&affinity, &name),
                "containers": [{"name": container, "resources": resources_for(instance)}]
            }
        }}
    })
}

/// JSON merge patch of a Karpenter `NodePool` (`pool` as read) whose instance-type
/// requirement becomes `types` (e.g. the old and new type during a roll, the new one after),
/// every other requirement kept.
pub fn karpenter_patch(pool: &Value, types: &[String]) -> Value {
    let mut requirements: Vec<Value> = pool
        .pointer("/spec/template/spec/requirements")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    requirements.retain(|r| r.get("key").and_then(Value::as_str) != Some(INSTANCE_TYPE_LABEL));
    requirements.push(json!({"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": types}));
    json!({"spec": {"template": {"spec": {"requirements": requirements}}}})
}

/// The instance types a Karpenter `NodePool` allows (its `In` requirement on the label).
pub fn karpenter_instance_types(pool: &Value) -> Vec<String> {
    pool.pointer("/spec/template/spec/requirements")
        .and_then(Value::as_array)
        .and_then(|rs| {
            rs.iter().find(|r| {
                r.get("key").and_then(Value::as_str) == Some(INSTANCE_TYPE_LABEL)
                    && r.get("operator").and_then(Value::as_str) == Some("In")
            })
        })
        .and_then(|r| r.get("values"))
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_capacity::Catalog;

    fn instance(name: &str) -> Instance {
        Catalog::builtin()
            .expect("catalog")
            .instance(&name.parse().expect("type"))
            .expect("known")
            .clone()
    }

    #[test]
    fn affinity_keeps_other_requirements_and_replaces_the_type() {
        let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]},
            {"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": ["m7g.large"]}
        ]}]}}});
        assert_eq!(
            instance_type_in_affinity(&affinity).as_deref(),
            Some("m7g.large")
        );
        let next = with_instance_type(&affinity, "m7g.xlarge");
        assert_eq!(
            instance_type_in_affinity(&next).as_deref(),
            Some("m7g.xlarge")
        );
        let exprs = next
            .pointer("/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchExpressions")
            .and_then(Value::as_array)
            .expect("exprs");
        assert_eq!(exprs.len(), 2);
        assert_eq!(exprs[0]["key"], "topology.kubernetes.io/zone");
        // From nothing.
        assert_eq!(
            instance_type_in_affinity(&with_instance_type(&Value::Null, "r7g.large")).as_deref(),
            Some("r7g.large")
        );
    }

    #[test]
    fn resources_follow_the_instance() {
        let r = resources_for(&instance("m7g.xlarge"));
        assert_eq!(r["requests"]["cpu"], "3500m");
        assert_eq!(r["requests"]["memory"], "13107Mi");
        assert_eq!(r["limits"]["memory"], "13107Mi");
    }

    #[test]
    fn karpenter_requirement_is_replaced() {
        let pool = json!({"spec": {"template": {"spec": {"requirements": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]},
            {"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": ["m7g.large"]}
        ]}}}});
        let patch = karpenter_patch(&pool, &["m7g.large".into(), "m7g.xlarge".into()]);
        let reqs = patch["spec"]["template"]["spec"]["requirements"]
            .as_array()
            .expect("list");
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0]["key"], "kubernetes.io/arch");
        assert_eq!(
            karpenter_instance_types(&patch),
            vec!["m7g.large", "m7g.xlarge"]
        );
    }
}
