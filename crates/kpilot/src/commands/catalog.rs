//! `kpilot catalog`: lists the instance types and storage options of the catalog the other
//! commands use, or prints the built-in catalog file to start a custom one. No I/O beyond
//! printing (and reading a `--catalog` file).

use clap::Args as ClapArgs;
use kpilot_capacity::BUILTIN_CATALOG;
use serde::Serialize;

use super::common::{CatalogArgs, mbps, name_list};
use crate::output::{Table, print_json, print_text, usage};

/// List the instance catalog (types, bandwidth, burst, local disks, prices).
///
/// Network figures are converted from Gbit/s with the catalog's factor (x128, as the AWS
/// sizing guide does); EBS figures are MB/s. Use --export to print the built-in catalog as a
/// TOML file to edit (another region, other prices, measured NVMe throughput), then pass it to
/// any command with --catalog FILE.
///
/// Example: kpilot catalog --family m7g,im4gn
#[derive(Debug, ClapArgs)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Only these families, comma separated.
    #[arg(long, value_delimiter = ',', value_name = "FAMILY,...")]
    pub family: Vec<String>,

    /// Print the built-in catalog file (TOML) and exit.
    #[arg(long, conflicts_with_all = ["family", "json"])]
    pub export: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub catalog: CatalogArgs,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    instance: String,
    vcpu: u32,
    memory_gib: f64,
    network_mb_per_s: f64,
    network_burst_mb_per_s: Option<f64>,
    ebs_mb_per_s: f64,
    ebs_burst_mb_per_s: Option<f64>,
    nvme_gb: Option<f64>,
    nvme_write_mb_per_s: Option<f64>,
    nvme_write_is_default: bool,
    usd_per_hour: f64,
}

/// Runs `kpilot catalog`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.export {
        return print_text(BUILTIN_CATALOG);
    }
    let catalog = args.catalog.load()?;
    let families = name_list("--family", "family", &args.family)?;
    for f in &families {
        catalog.family(f).map_err(usage)?;
    }
    let rows: Vec<Row> = catalog
        .instances()
        .filter(|i| {
            families.is_empty()
                || families
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(i.name.family()))
        })
        .map(|i| Row {
            instance: i.name.to_string(),
            vcpu: i.vcpu,
            memory_gib: i.memory_gib,
            network_mb_per_s: i.network.mb_per_s(),
            network_burst_mb_per_s: i.network_burst.map(|t| t.mb_per_s()),
            ebs_mb_per_s: i.ebs.mb_per_s(),
            ebs_burst_mb_per_s: i.ebs_burst.map(|t| t.mb_per_s()),
            nvme_gb: i.nvme_gb,
            nvme_write_mb_per_s: i.nvme_write.map(|t| t.mb_per_s()),
            nvme_write_is_default: i.nvme_write_is_default,
            usd_per_hour: i.usd_per_hour,
        })
        .collect();
    if args.json {
        return print_json(&rows);
    }
    let opt = |v: Option<f64>| v.map(mbps).unwrap_or_else(|| "-".to_string());
    let mut t = Table::new([
        "instance",
        "vCPU",
        "GiB",
        "net MB/s",
        "net burst",
        "EBS MB/s",
        "EBS burst",
        "NVMe GB",
        "NVMe write",
        "$/hour",
    ]);
    for r in &rows {
        t.row([
            r.instance.clone(),
            r.vcpu.to_string(),
            format!("{}", r.memory_gib),
            mbps(r.network_mb_per_s),
            opt(r.network_burst_mb_per_s),
            mbps(r.ebs_mb_per_s),
            opt(r.ebs_burst_mb_per_s),
            r.nvme_gb
                .map(|g| format!("{g:.0}"))
                .unwrap_or_else(|| "-".into()),
            match (r.nvme_write_mb_per_s, r.nvme_write_is_default) {
                (Some(w), true) => format!("{}*", mbps(w)),
                (Some(w), false) => mbps(w),
                (None, _) => "-".into(),
            },
            format!("{:.4}", r.usd_per_hour),
        ]);
    }
    let mut text = t.render();
    text.push_str(&format!(
        "\ncatalog: {} ({}, prices in {} per hour; {} hours per month)\n",
        catalog.origin, catalog.region, catalog.currency, catalog.hours_per_month
    ));
    if rows.iter().any(|r| r.nvme_write_is_default) {
        text.push_str(
            "* NVMe write: conservative default (published 4 KiB random-write IOPS x 4 KiB); override with measurements\n",
        );
    }
    print_text(&text)
}
