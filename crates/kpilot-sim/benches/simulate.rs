//! Benchmark of the simulator: 30 days at one-minute steps, the predictive policy alone and
//! the full comparison (policy, static peak shape, reactive baseline). Target: under 1 s.

#![allow(missing_docs)] // criterion_group! and criterion_main! generate undocumented items.

use criterion::{Criterion, criterion_group, criterion_main};
use kpilot_capacity::Catalog;
use kpilot_policy::{ReactiveSettings, Settings};
use kpilot_sim::{
    Controller, DEFAULT_HISTORY, SimConfig, builtin, compare, run, static_peak_shape,
};

fn bench(c: &mut Criterion) {
    let catalog = Catalog::builtin().expect("built-in catalog");
    let scenario = builtin("weekly", Some(30), DEFAULT_HISTORY).expect("scenario");
    let settings = Settings::default();
    let reactive = ReactiveSettings::default();
    let config = SimConfig {
        catalog: &catalog,
        setup: &scenario.setup,
        settings: &settings,
        reactive: &reactive,
        explain: None,
    };
    let (shape, _) =
        static_peak_shape(&scenario.demand, &catalog, &scenario.setup, 0.8).expect("static shape");
    let mut group = c.benchmark_group("simulate_30_days");
    group.sample_size(10);
    group.bench_function("policy", |b| {
        b.iter(|| run(&scenario.demand, &config, Controller::Predictive, &shape).expect("run"))
    });
    group.bench_function("reactive", |b| {
        b.iter(|| run(&scenario.demand, &config, Controller::Reactive, &shape).expect("run"))
    });
    group.bench_function("compare_all_three", |b| {
        b.iter(|| {
            compare(
                &scenario.demand,
                &catalog,
                &scenario.setup,
                &settings,
                &reactive,
            )
            .expect("compare")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
