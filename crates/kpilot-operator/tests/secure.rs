//! The operator reaching a real Kafka over SASL_SSL, under ACLs: 3 testbed brokers with TLS,
//! SCRAM users and KRaft's StandardAuthorizer, and the real kube-apiserver. The CA and the
//! password come from Secrets named in `spec.kafka`. A wrong password is an error naming the
//! authentication failure; with too few ACLs the view of the cluster is partial (no partition
//! sizes, topics Metadata leaves out), and the operator refuses to decide on it (a decision
//! could shrink a cluster whose load it cannot see), naming the ACL; with the ACLs of the
//! operator's row in docs/kafka-admin.md it observes and decides. Acting needs more: a
//! StatefulSet roll without Alter on the cluster, and a horizontal add on a StatefulSet
//! without each ACL of the `rebalance` row (AlterConfigs on one topic of two is not enough),
//! stay "not applied", naming the missing ACL, with nothing touched, as does a roll onto local
//! disks with Alter but without AlterConfigs (its rebuilds are throttled); with all of them
//! the add starts.

mod common;

use std::rc::Rc;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kpilot_cluster::TopicName;
use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig, NewTopic};
use kpilot_operator::crd::{KafkaAutopilot, Mode, SaslSpec, SecretKeyRef, TlsSpec};
use kpilot_operator::reconcile::reconcile;
use kpilot_operator::{FixedObserver, KafkaObserver};
use kpilot_testbed::{ClusterConfig, KafkaCluster, SaslMechanism, grant_acl};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn secret(name: &str, key: &str, value: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {key: value},
    }))
    .expect("secret")
}

/// Reconciles the autopilot `name` until its status satisfies `done` (ACLs reach each broker
/// through the metadata log a moment after they were granted), for at most 30 s; returns the
/// autopilot.
async fn reconcile_until(
    client: &kube::Client,
    ctx: &kpilot_operator::Context,
    (ns, name): (&str, &str),
    what: &str,
    done: impl Fn(&KafkaAutopilot) -> bool,
) -> KafkaAutopilot {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ap = get_autopilot(client, ns, name).await;
        let _ = reconcile(&ap, ctx).await;
        let ap = get_autopilot(client, ns, name).await;
        if done(&ap) {
            return ap;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within 30 s; status: {:#?}",
            ap.status
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn the_operator_over_sasl_ssl_never_decides_on_a_partial_view_nor_acts_without_its_acls() {
    let cluster = KafkaCluster::start(ClusterConfig {
        secure: true,
        authorizer: true,
        ..ClusterConfig::default()
    })
    .expect("start 3 brokers with TLS, SASL and the StandardAuthorizer");
    let security = cluster.security().expect("secure listener").clone();
    let user = security
        .user(SaslMechanism::ScramSha512)
        .expect("a SCRAM-SHA-512 user")
        .clone();
    let principal = format!("User:{}", user.username);
    let root_bootstrap = cluster.bootstrap();
    let grant = |operations: &[&str], resource: &[&str]| {
        grant_acl(&root_bootstrap, &principal, operations, resource)
            .unwrap_or_else(|e| panic!("{e}"));
    };
    let ca = std::fs::read_to_string(&security.ca_cert_pem).expect("CA certificate");

    on_local(async {
        // The super user (PLAINTEXT) creates a topic with data in it.
        let root = AdminClient::connect(ClientConfig::new(
            BrokerAddress::parse_list(&root_bootstrap).expect("bootstrap"),
        ))
        .await
        .expect("connect as the super user");
        let orders = TopicName::new("orders").expect("topic");
        root.create_topics(&[NewTopic::new(orders.clone(), 3, 3)])
            .await
            .expect("create orders");
        root.wait_for_topic(&orders).await.expect("orders ready");
        let payments = TopicName::new("payments").expect("topic");
        root.create_topics(&[NewTopic::new(payments.clone(), 3, 3)])
            .await
            .expect("create payments");
        root.wait_for_topic(&payments)
            .await
            .expect("payments ready");
        root.close();

        let cp = control_plane().await;
        let ns = cp.create_unique_namespace("secure").await.expect("ns");
        let client = cp.client().await.expect("client");
        create_strimzi(&client, &ns, "m7g.large").await;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        secrets
            .create(&PostParams::default(), &secret("kafka-ca", "ca.crt", &ca))
            .await
            .expect("CA Secret");
        secrets
            .create(
                &PostParams::default(),
                &secret("kpilot", "password", "not-the-password"),
            )
            .await
            .expect("password Secret");
        let mut spec = spec_strimzi(Mode::Recommend, None);
        spec.kafka.bootstrap = cluster.secure_bootstrap().expect("secure bootstrap");
        spec.kafka.tls = Some(TlsSpec {
            ca_secret: Some(SecretKeyRef {
                name: "kafka-ca".into(),
                key: "ca.crt".into(),
            }),
            verify_hostname: true,
        });
        spec.kafka.sasl = Some(SaslSpec {
            mechanism: "SCRAM-SHA-512".into(),
            username: user.username.clone(),
            password_secret: SecretKeyRef {
                name: "kpilot".into(),
                key: "password".into(),
            },
        });
        create_autopilot(&client, &ns, "secure", spec).await;
        let ctx = context(client.clone(), Rc::new(KafkaObserver::new()));

        // 1. A wrong password: the authentication failure, and the password is never shown.
        let ap = get_autopilot(&client, &ns, "secure").await;
        reconcile(&ap, &ctx).await.expect_err("wrong password");
        let ap = get_autopilot(&client, &ns, "secure").await;
        let error = last_error(&ap);
        eprintln!("wrong password: {error}");
        assert_eq!(condition(&ap, "Ready").reason, "KafkaUnreachable");
        assert!(
            error.contains(&format!(
                "SCRAM-SHA-512 authentication as `{}`",
                user.username
            )) && error.contains("invalid credentials"),
            "{error}"
        );
        assert!(!error.contains("not-the-password"), "{error}");

        // 2. The right password, no ACL at all: no partition sizes, no topic.
        secrets
            .patch(
                "kpilot",
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"password": user.password}})),
            )
            .await
            .expect("fix the password");
        let ap = reconcile_until(&client, &ctx, (&ns, "secure"), "authenticated", |ap| {
            !last_error(ap).contains("invalid credentials")
        })
        .await;
        let error = last_error(&ap);
        eprintln!("no ACLs: {error}");
        assert_eq!(condition(&ap, "Ready").reason, "KafkaPartlyVisible");
        for needed in [
            "only partly visible, so no decision is made",
            "log dirs of 3 brokers (broker 1, broker 2, broker 3)",
            "needs the Describe ACL on the cluster",
        ] {
            assert!(error.contains(needed), "{needed:?} not in {error}");
        }
        assert!(
            ap.status
                .as_ref()
                .and_then(|s| s.last_decision.as_ref())
                .is_none()
        );

        // 3. Describe on the cluster: the log dirs show `orders`, which Metadata leaves out.
        grant(&["Describe"], &["--cluster"]);
        let ap = reconcile_until(&client, &ctx, (&ns, "secure"), "log dirs readable", |ap| {
            !last_error(ap).contains("log dirs of broker")
        })
        .await;
        let error = last_error(&ap);
        eprintln!("Describe on the cluster only: {error}");
        assert_eq!(condition(&ap, "Ready").reason, "KafkaPartlyVisible");
        assert!(
            error.contains("not visible in Metadata")
                && error.contains("orders")
                && error.contains("DESCRIBE on every topic"),
            "{error}"
        );

        // 4. The operator's row: observed, and decided on.
        grant(&["DescribeConfigs"], &["--cluster"]);
        grant(&["Describe", "DescribeConfigs"], &["--topic", "*"]);
        grant(&["Describe"], &["--group", "*"]);
        let ap = reconcile_until(&client, &ctx, (&ns, "secure"), "observed", |ap| {
            last_error(ap).is_empty()
        })
        .await;
        let status = ap.status.clone().expect("status");
        assert!(condition(&ap, "Ready").status == "True", "{status:#?}");
        let load = status.load.expect("load");
        assert_eq!(load.source, "kafka");
        assert_eq!(load.replication_factor, 3);
        eprintln!(
            "with the operator's ACLs: {}",
            condition(&ap, "Ready").message
        );
        // The Kafka-only ingress needs a second observation; then a decision is made.
        let ap = reconcile_until(&client, &ctx, (&ns, "secure"), "a decision", |ap| {
            ap.status
                .as_ref()
                .is_some_and(|s| s.last_decision.is_some())
        })
        .await;
        assert!(last_error(&ap).is_empty(), "{}", last_error(&ap));

        // 5. Acting: a StatefulSet autopilot in apply mode whose decision (injected: 70 MB/s
        // on 3 x m7g.large, one size allowed) adds a 4th broker. Each write the rebalance
        // will make is probed before anything is touched: with only the operator's read row,
        // and then with each missing ACL granted in turn, the decision is not applied and
        // names the ACL; the StatefulSet keeps 3 replicas and no operation starts.
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        sets.create(&PostParams::default(), &statefulset("m7g.large"))
            .await
            .expect("StatefulSet");
        let mut acting = ap.spec.clone();
        acting.mode = Mode::Apply;
        acting.target = statefulset_target("kafka");
        acting.constraints.sizes = vec!["large".into()];
        acting.constraints.zones = 1;
        acting.constraints.max_brokers = 4;
        acting.constraints.allow_vertical = false;
        acting.constraints.allow_horizontal = true;
        create_autopilot(&client, &ns, "acting", acting).await;
        // The decision is injected; the permission probe goes to the real, secured Kafka.
        let ctx = context(
            client.clone(),
            Rc::new(FixedObserver::new(facts(70.0, 0)).probing_kafka()),
        );
        let replicas = || async {
            sets.get("kafka")
                .await
                .expect("StatefulSet")
                .spec
                .and_then(|s| s.replicas)
        };
        // A vertical roll (a second StatefulSet, xlarge allowed too, so 70 MB/s moves
        // 3 x m7g.large to xlarge) elects leaders: with the read row only it is not applied,
        // naming Alter, and the template keeps its type.
        let mut other = statefulset("m7g.large");
        other.metadata.name = Some("kafka-b".into());
        sets.create(&PostParams::default(), &other)
            .await
            .expect("second StatefulSet");
        let mut rolling = ap.spec.clone();
        rolling.mode = Mode::Apply;
        rolling.target = statefulset_target("kafka-b");
        rolling.constraints.sizes = vec!["large".into(), "xlarge".into()];
        rolling.constraints.zones = 1;
        create_autopilot(&client, &ns, "rolling", rolling).await;
        let ap = reconcile_until(&client, &ctx, (&ns, "rolling"), "a refused roll", |ap| {
            disposition(ap).contains("may not elect preferred leaders")
        })
        .await;
        let said = disposition(&ap);
        eprintln!("rolling: {said}");
        assert!(
            said.starts_with("not applied: ")
                && said.contains("needs the Alter ACL on the cluster"),
            "{said}"
        );
        assert!(ap.status.and_then(|s| s.operation).is_none());
        assert_eq!(
            template_type(&sets, "kafka-b").await.as_deref(),
            Some("m7g.large"),
            "the template is not patched"
        );

        for (write, acl, then_grant) in [
            (
                "may not reassign partitions",
                "needs the Alter ACL on the cluster",
                (&["Alter"][..], &["--cluster"][..]),
            ),
            (
                "may not set the brokers' throttle rates",
                "needs the AlterConfigs ACL on the cluster",
                (&["AlterConfigs"][..], &["--cluster"][..]),
            ),
            (
                "may not set the topics' throttled replicas",
                "for topic ",
                (&["AlterConfigs"][..], &["--topic", "orders"][..]),
            ),
            // With AlterConfigs on `orders` only: the rebalance may move `payments` too, and the
            // probe asks for every topic.
            (
                "may not set the topics' throttled replicas",
                "for topic payments failed",
                (&["AlterConfigs"][..], &["--topic", "*"][..]),
            ),
        ] {
            let ap = reconcile_until(&client, &ctx, (&ns, "acting"), write, |ap| {
                disposition(ap).contains(write) && disposition(ap).contains(acl)
            })
            .await;
            let said = disposition(&ap);
            eprintln!("acting: {said}");
            assert!(
                said.starts_with("not applied: ")
                    && said.contains(acl)
                    && said.contains("this principal needs the"),
                "{said}"
            );
            let status = ap.status.clone().expect("status");
            assert!(status.operation.is_none(), "{status:#?}");
            assert_eq!(replicas().await, Some(3), "nothing is touched");
            if write == "may not set the brokers' throttle rates" {
                // Alter is granted now, which a roll on network volumes needs. A roll onto
                // local disks throttles every rebuild too: without AlterConfigs it is not
                // applied either, rather than halted at its first rebuild.
                // (Boxed: inline, its future overflows the test thread's stack.)
                Box::pin(local_roll_is_refused(&client, &ns, &ap.spec, &sets)).await;
            }
            grant(then_grant.0, then_grant.1);
        }
        // With every write allowed the add starts: the replicas go to 4.
        let ap = reconcile_until(&client, &ctx, (&ns, "acting"), "applied", |ap| {
            disposition(ap) == "applied"
        })
        .await;
        let operation = ap
            .status
            .and_then(|s| s.operation)
            .expect("the add started");
        assert_eq!(operation.kind, "horizontal-add");
        assert_eq!(replicas().await, Some(4));
    });
}

/// A StatefulSet autopilot on local NVMe whose decision (injected: 100 MB/s on 3 x
/// im4gn.large) rolls to im4gn.xlarge stays "not applied", naming AlterConfigs, with its
/// template untouched and no operation started.
async fn local_roll_is_refused(
    client: &kube::Client,
    ns: &str,
    base: &kpilot_operator::crd::KafkaAutopilotSpec,
    sets: &Api<StatefulSet>,
) {
    let mut set = statefulset("im4gn.large");
    set.metadata.name = Some("kafka-local".into());
    sets.create(&PostParams::default(), &set)
        .await
        .expect("local-disk StatefulSet");
    let mut spec = base.clone();
    spec.mode = Mode::Apply;
    spec.target = statefulset_target("kafka-local");
    on_local_nvme(&mut spec);
    spec.constraints.zones = 1;
    spec.constraints.allow_vertical = true;
    spec.constraints.allow_horizontal = false;
    create_autopilot(client, ns, "local", spec).await;
    let ctx = context(
        client.clone(),
        Rc::new(FixedObserver::new(facts_storing(100.0, 0.11)).probing_kafka()),
    );
    let write = "may not set the brokers' throttle rates";
    let ap = reconcile_until(
        client,
        &ctx,
        (ns, "local"),
        "a refused local-disk roll",
        |ap| disposition(ap).contains(write),
    )
    .await;
    let said = disposition(&ap);
    eprintln!("local: {said}");
    assert!(
        said.starts_with("not applied: ")
            && said.contains("needs the AlterConfigs ACL on the cluster"),
        "{said}"
    );
    assert!(ap.status.and_then(|s| s.operation).is_none());
    assert_eq!(
        template_type(sets, "kafka-local").await.as_deref(),
        Some("im4gn.large"),
        "the template is not patched"
    );
}
