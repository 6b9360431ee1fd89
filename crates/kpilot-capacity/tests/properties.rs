//! Property tests of the capacity model and the sizing search.

use kpilot_capacity::{
    Catalog, Fanout, Shape, SizeRequest, Storage, StorageKind, Violation, Workload, evaluate, size,
};
use kpilot_units::{Span, Throughput};
use proptest::prelude::*;

fn catalog() -> Catalog {
    Catalog::builtin().expect("built-in catalog")
}

fn shape(c: &Catalog, instance_index: usize, brokers: u32, gp3_mib: f64, w: &Workload) -> Shape {
    let instance = c
        .instances()
        .nth(instance_index % c.instances().count())
        .expect("index in range")
        .clone();
    let storage = Storage::gp3(c, 1000.0, Throughput::from_mib_per_s(gp3_mib)).expect("gp3");
    Shape::new(instance, brokers, storage, w).expect("valid shape")
}

fn sustained(c: &Catalog, s: &Shape, w: &Workload) -> f64 {
    evaluate(s, w, c).sustained.ingress.bytes_per_s()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn limit_never_decreases_with_more_brokers(
        idx in 0usize..200, n in 3u32..60, extra in 1u32..30, fanout in 0.0f64..8.0,
        rf in 1u16..=3, mib in 125.0f64..1000.0,
    ) {
        let c = catalog();
        let w = Workload::new(rf, 1, fanout, 0.8).unwrap();
        let a = sustained(&c, &shape(&c, idx, n, mib, &w), &w);
        let b = sustained(&c, &shape(&c, idx, n + extra, mib, &w), &w);
        prop_assert!(b >= a * (1.0 - 1e-12), "{a} -> {b}");
    }

    #[test]
    fn limit_never_decreases_with_a_bigger_size(
        family in 0usize..11, n in 3u32..30, fanout in 0.0f64..8.0, mib in 125.0f64..1000.0,
    ) {
        let c = catalog();
        let w = Workload::new(3, 2, fanout, 0.8).unwrap();
        let fam = &c.families[family % c.families.len()];
        let mut prev = 0.0;
        for i in &fam.instances {
            let storage = Storage::gp3(&c, 1000.0, Throughput::from_mib_per_s(mib)).unwrap();
            let s = Shape::new(i.clone(), n, storage, &w).unwrap();
            let l = sustained(&c, &s, &w);
            prop_assert!(l >= prev * (1.0 - 1e-12), "{}: {prev} -> {l}", i.name);
            prev = l;
        }
    }

    #[test]
    fn limit_never_increases_with_more_replicas_or_consumers(
        idx in 0usize..200, n in 3u32..60, fanout in 0.0f64..8.0, more in 0.1f64..4.0,
        mib in 125.0f64..1000.0,
    ) {
        let c = catalog();
        let w1 = Workload::new(1, 1, fanout, 0.8).unwrap();
        let w2 = Workload::new(2, 1, fanout, 0.8).unwrap();
        let w3 = Workload::new(3, 1, fanout, 0.8).unwrap();
        let s = shape(&c, idx, n, mib, &w3);
        let (l1, l2, l3) = (sustained(&c, &s, &w1), sustained(&c, &s, &w2), sustained(&c, &s, &w3));
        prop_assert!(l1 >= l2 && l2 >= l3, "{l1} {l2} {l3}");
        let wc = Workload::new(3, 1, fanout + more, 0.8).unwrap();
        prop_assert!(sustained(&c, &s, &wc) <= l3 * (1.0 + 1e-12));
    }

    #[test]
    fn one_broker_down_never_exceeds_all_up_when_consumers_read(
        idx in 0usize..200, n in 3u32..60, fanout in 1.0f64..8.0, mib in 125.0f64..1000.0,
    ) {
        // Survivors write the same replicas; with at least one consumer group, leadership
        // moving onto fewer brokers can only add network load per broker.
        let c = catalog();
        let w = Workload::new(3, 2, fanout, 0.8).unwrap();
        let s = shape(&c, idx, n, mib, &w);
        let e = evaluate(&s, &w, &c);
        prop_assert!(e.one_broker_down.ingress.bytes_per_s() <= e.sustained.ingress.bytes_per_s() * (1.0 + 1e-12));
        prop_assert!(e.one_broker_down.ingress > Throughput::ZERO);
    }

}

proptest! {
    // Each case runs a whole-catalog search: fewer cases keep the suite fast.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn size_returns_only_shapes_that_satisfy_every_constraint(
        peak in 5.0f64..3000.0, groups in 0u32..6, zones in 1u32..=3, rf in 1u16..=3,
        retention_h in prop::option::of(1.0f64..400.0), spare in any::<bool>(),
        kinds in prop::sample::subsequence(StorageKind::ALL.to_vec(), 1..=4),
    ) {
        let c = catalog();
        let mut req = SizeRequest::new(Throughput::from_mb_per_s(peak));
        req.fanout = Fanout::ConsumerGroups(groups);
        req.zones = zones;
        req.replication_factor = rf;
        req.min_insync_replicas = Workload::default_min_isr(rf);
        req.retention = retention_h.map(Span::from_hours);
        req.broker_loss_spare = spare;
        req.storage_kinds = kinds.clone();
        req.top = 50;
        req.rejected = 50;
        let report = size(&c, &req).unwrap();
        for cand in &report.candidates {
            let e = &cand.evaluation;
            prop_assert!(e.recommended >= req.peak_ingress);
            prop_assert!(!spare || e.one_broker_down.ingress >= req.peak_ingress);
            prop_assert_eq!(cand.shape.brokers % zones, 0);
            prop_assert!(cand.shape.brokers >= u32::from(rf));
            prop_assert!(cand.shape.brokers <= req.max_brokers);
            prop_assert!(kinds.contains(&cand.shape.storage.kind));
            if let Some(needed) = cand.storage_needed_gb {
                prop_assert!(cand.shape.storage.size_gb >= needed - 1e-6);
            }
        }
        // Ranked by cost.
        for pair in report.candidates.windows(2) {
            prop_assert!(pair[0].evaluation.monthly_cost.total <= pair[1].evaluation.monthly_cost.total);
        }
        // Every rejected cheaper shape is cheaper and really fails what it says it fails.
        if let Some(best) = report.candidates.first() {
            for r in &report.rejected_cheaper {
                prop_assert!(r.monthly_cost < best.evaluation.monthly_cost.total);
                prop_assert!(!r.violations.is_empty());
                let w = Workload::new(rf, req.min_insync_replicas, req.consumer_fanout(), 0.8).unwrap();
                let e = evaluate(&r.shape, &w, &c);
                for v in &r.violations {
                    match v {
                        Violation::Throughput { .. } => prop_assert!(e.recommended < req.peak_ingress),
                        Violation::BrokerLoss { .. } => prop_assert!(e.one_broker_down.ingress < req.peak_ingress),
                        Violation::StorageCapacity { needed_gb, available_gb } => prop_assert!(needed_gb > available_gb),
                    }
                }
            }
        }
    }
}
