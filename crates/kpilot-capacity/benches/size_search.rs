//! Benchmark: `size` over the whole built-in catalog — every family and size, every broker
//! count from the replication factor up to 60 (one zone, so every count is tried), every
//! storage option (gp3 and io2 throughput levels, st1 sizes, local NVMe) — for a few workloads.
//! Run with `cargo bench -p kpilot-capacity --bench size_search`; results in
//! docs/benchmarks/size.md.

#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kpilot_capacity::{Catalog, Fanout, SizeRequest, size};
use kpilot_units::{Span, Throughput};

fn request(peak_mb: f64, groups: u32, retention_h: f64) -> SizeRequest {
    let mut req = SizeRequest::new(Throughput::from_mb_per_s(peak_mb));
    req.fanout = Fanout::ConsumerGroups(groups);
    req.retention = Some(Span::from_hours(retention_h));
    req.zones = 1;
    req.max_brokers = 60;
    req
}

fn bench(c: &mut Criterion) {
    let catalog = Catalog::builtin().expect("built-in catalog");
    let workloads = [
        ("200MB/s, 2 groups, 24h", request(200.0, 2, 24.0)),
        ("1.5GB/s, 4 groups, 7d", request(1500.0, 4, 168.0)),
        (
            "20GB/s (nothing fits), 2 groups, 24h",
            request(20_000.0, 2, 24.0),
        ),
    ];
    for (name, req) in &workloads {
        let shapes = size(&catalog, req).expect("size").shapes_evaluated;
        eprintln!("{name}: {shapes} shapes evaluated per search");
        c.bench_function(&format!("size whole catalog: {name}"), |b| {
            b.iter(|| size(black_box(&catalog), black_box(req)).expect("size"))
        });
    }
    c.bench_function("load and validate the built-in catalog", |b| {
        b.iter(|| Catalog::builtin().expect("catalog"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
