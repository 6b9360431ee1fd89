//! The operator while a broker is down, observing a real Kafka itself (`KafkaObserver`, no
//! injected facts): 3 testbed brokers (RF 3, `min.insync.replicas` 2), the real
//! kube-apiserver, and a StatefulSet autopilot in apply mode on 3 x m7g.xlarge with large
//! allowed, and a quiet day of history. The cluster is idle, so the policy wants 3 x
//! m7g.large: a vertical roll, which takes a broker out. With broker 3 killed (`kill -9`: no controlled shutdown), every
//! reconcile either refuses to decide (broker 3 is still registered but its log dirs cannot
//! be read) or decides and does not apply ("the cluster is not healthy"): a roll would take a
//! second broker down. The template keeps its type and no operation starts. With broker 3
//! back and caught up, the same decision is applied, so the refusal was the broker's outage.

mod common;

use std::rc::Rc;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use kpilot_operator::KafkaObserver;
use kpilot_operator::crd::Mode;
use kpilot_operator::reconcile::reconcile;
use kube::api::{Api, Patch, PatchParams, PostParams};

#[test]
fn with_a_broker_down_the_operator_decides_but_never_rolls() {
    let mut cluster = three_brokers_min_isr_2();
    let bootstrap = cluster.bootstrap();
    on_local(async {
        let (admin, _) = admin_with_topic(&bootstrap, "orders", 6, 3).await;
        admin.close();

        let cp = control_plane().await;
        let ns = cp.create_unique_namespace("broker-down").await.expect("ns");
        let client = cp.client().await.expect("client");
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        sets.create(&PostParams::default(), &statefulset("m7g.xlarge"))
            .await
            .expect("StatefulSet");
        let mut spec = spec_strimzi(Mode::Apply, None);
        spec.target = statefulset_target("kafka");
        spec.kafka.bootstrap = bootstrap.clone();
        spec.constraints.sizes = vec!["large".into(), "xlarge".into()];
        spec.constraints.zones = 1;
        create_autopilot(&client, &ns, "autopilot", spec).await;
        // A quiet day of history: the policy scales down only once it has seen one.
        Api::<kpilot_operator::KafkaAutopilot>::namespaced(client.clone(), &ns)
            .patch_status(
                "autopilot",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {"history": quiet_day(0.0)}})),
            )
            .await
            .expect("a quiet day of history");
        let ctx = context(client.clone(), Rc::new(KafkaObserver::new()));

        // 1. Broker 3 killed before the operator ever looks: reconcile every second until a
        //    decision is refused for the cluster's health, for at most 60 s. Nothing may be
        //    applied on the way.
        cluster.kill_broker(3).expect("kill broker 3");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut outcomes: Vec<String> = Vec::new();
        let refused = loop {
            let ap = get_autopilot(&client, &ns, "autopilot").await;
            // A reconcile that started a roll would run it inline (and wait for pods no one
            // replaces): bounded, so such a bug fails below instead of hanging.
            let result = tokio::time::timeout(Duration::from_secs(30), reconcile(&ap, &ctx))
                .await
                .map_err(|_| "a reconcile ran for 30 s".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()));
            let ap = get_autopilot(&client, &ns, "autopilot").await;
            let said = disposition(&ap);
            let outcome = match &result {
                Err(e) => format!("error: {e}"),
                Ok(_) if !last_error(&ap).is_empty() => format!("error: {}", last_error(&ap)),
                Ok(_) if said.is_empty() => "no decision yet".to_owned(),
                Ok(_) => said.clone(),
            };
            if outcomes.last() != Some(&outcome) {
                eprintln!("broker 3 down: {outcome}");
                outcomes.push(outcome);
            }
            assert_ne!(said, "applied", "applied with broker 3 down: {outcomes:#?}");
            let status = ap.status.clone().unwrap_or_default();
            assert!(status.operation.is_none(), "{status:#?}");
            assert_eq!(
                template_type(&sets, "kafka").await.as_deref(),
                Some("m7g.xlarge"),
                "the template is not patched"
            );
            if said.starts_with("not applied: the cluster is not healthy") {
                break ap;
            }
            assert!(
                Instant::now() < deadline,
                "no refusal for health within 60 s: {outcomes:#?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let decision = refused
            .status
            .as_ref()
            .and_then(|s| s.last_decision.clone())
            .expect("decision");
        assert_eq!(decision.action, "change");
        assert!(
            decision.summary.contains("m7g.large"),
            "the idle cluster is to move to large: {}",
            decision.summary
        );
        assert!(
            decision.disposition.contains("under-replicated"),
            "{}",
            decision.disposition
        );

        // 2. Broker 3 back: once it has caught up, the same decision is applied. The roll
        //    then runs inside the reconcile, waiting for pods this test does not play (see
        //    statefulset.rs for a whole roll): the reconcile is cut off once it has started.
        cluster.start_broker(3).expect("restart broker 3");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let ap = get_autopilot(&client, &ns, "autopilot").await;
            let _ = tokio::time::timeout(Duration::from_secs(10), reconcile(&ap, &ctx)).await;
            let ap = get_autopilot(&client, &ns, "autopilot").await;
            let said = disposition(&ap);
            if said == "applied" {
                let status = ap.status.expect("status");
                let operation = status.operation.expect("a roll started");
                eprintln!("broker 3 back: applied, {}", operation.kind);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not applied within 90 s of broker 3's restart: {said} {}",
                last_error(&ap)
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(
            template_type(&sets, "kafka").await.as_deref(),
            Some("m7g.large"),
            "the roll patched the template"
        );
    });
}
