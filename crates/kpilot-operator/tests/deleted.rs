//! An autopilot deleted in the middle of a rebalance, on the real kube-apiserver and a real
//! 3-broker testbed. The executor's port writes the journal into the autopilot's status before
//! every request; once the autopilot is gone that write fails. New moves and new throttles are
//! then refused (the executor stops), but reads, cancelling reassignments and removing the
//! throttle configs still reach Kafka, so the executor's cleanup leaves no throttle behind.
//! (Before, every request failed alike and the cleanup left the throttles in place.)

mod common;

use common::*;
use kpilot_cluster::{BrokerId, TopicPartition};
use kpilot_kafka::{AdminClient, ConfigOp, ConfigResource, ConfigSource};
use kpilot_operator::crd::{KafkaAutopilot, Mode};
use kpilot_operator::fleet::StatusJournal;
use kpilot_operator::horizontal::JournaledPort;
use kpilot_reassign::ReassignPort;
use kpilot_reassign::journal::Journal;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};

const THROTTLE: &str = "leader.replication.throttled.replicas";

#[test]
fn a_deleted_autopilot_still_lets_the_cleanup_through() {
    let cluster = kpilot_testbed::KafkaCluster::start(kpilot_testbed::ClusterConfig::default())
        .expect("start a Kafka testbed (scripts/setup-kafka must work)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cp = control_plane().await;
        let ns = cp.create_unique_namespace("deleted").await.expect("ns");
        let client = cp.client().await.expect("client");
        create_autopilot(&client, &ns, "gone", spec_strimzi(Mode::Apply, None)).await;
        let api: Api<KafkaAutopilot> = Api::namespaced(client.clone(), &ns);
        // A horizontal operation in progress, as the operator records it before it starts.
        let running = serde_json::json!({"status": {"operation": {
            "kind": kpilot_operator::horizontal::OP_ADD,
            "fromInstanceType": "m7g.large",
            "toInstanceType": "m7g.large",
            "phase": "Running",
            "startedAt": "2026-11-23T00:00:00Z",
        }}});
        api.patch_status("gone", &PatchParams::default(), &Patch::Merge(&running))
            .await
            .expect("an operation in status");

        let (admin, topic) = admin_with_topic(&cluster.bootstrap(), "moving", 1, 2).await;
        let resource = ConfigResource::Topic(topic.clone());

        let store: StatusJournal<Journal> = StatusJournal::new(api.clone(), "gone", None);
        let port = JournaledPort::new(&admin, &store);
        // While the autopilot exists: the journal is written, then the throttle is set.
        store.set_message("throttling".to_owned());
        port.configure(&resource, &[ConfigOp::set(THROTTLE, "*")])
            .await
            .expect("throttle set while the autopilot exists");
        let ap = get_autopilot(&client, &ns, "gone").await;
        let message = ap.status.and_then(|s| s.operation).and_then(|o| o.message);
        assert_eq!(
            message.as_deref(),
            Some("throttling"),
            "journal written first"
        );
        throttle_becomes(&admin, &resource, Some("*")).await;

        // The autopilot is deleted (the journal has a change to write).
        api.delete("gone", &DeleteParams::default())
            .await
            .expect("delete");
        store.set_message("moving on".to_owned());

        // New moves and new throttles are refused...
        let tp = TopicPartition::new(topic.clone(), 0);
        let err = port
            .reassign(&[(tp.clone(), Some(vec![BrokerId(1), BrokerId(3)]))])
            .await
            .expect_err("no new move without a journal");
        assert!(err.to_string().contains("KafkaAutopilot status"), "{err}");
        port.configure(&resource, &[ConfigOp::set(THROTTLE, "0:1")])
            .await
            .expect_err("no new throttle without a journal");
        throttle_becomes(&admin, &resource, Some("*")).await;

        // ...reads and the cleanup go through.
        let live = port.live_brokers().await.expect("reads go on");
        assert_eq!(live.len(), 3);
        assert!(port.ongoing().await.expect("reads go on").is_empty());
        port.configure(&resource, &[ConfigOp::Delete(THROTTLE.to_owned())])
            .await
            .expect("removing the throttle goes through");
        throttle_becomes(&admin, &resource, None).await;
        admin.close();
    });
}

/// Asserts that the topic's leader throttle override becomes `expected` (see [`settled`]).
async fn throttle_becomes(admin: &AdminClient, resource: &ConfigResource, expected: Option<&str>) {
    let now = settled(|| throttle(admin, resource), |v| v.as_deref() == expected).await;
    assert_eq!(now.as_deref(), expected, "{THROTTLE} on {resource}");
}

/// The topic's leader throttle override, if any.
async fn throttle(admin: &AdminClient, resource: &ConfigResource) -> Option<String> {
    let mut configs = admin
        .describe_configs(std::slice::from_ref(resource), Some(&[THROTTLE]))
        .await
        .expect("describe configs");
    configs
        .remove(resource)
        .and_then(|mut entries| entries.remove(THROTTLE))
        .filter(|e| e.source == ConfigSource::DynamicTopicConfig)
        .and_then(|e| e.value)
}
