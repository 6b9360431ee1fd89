//! Helpers shared by the in-memory executor tests.
#![allow(dead_code)]

use std::time::Duration;

use kpilot_cluster::BrokerId;
use kpilot_roll::fake::FakeCluster;
use kpilot_roll::gate;
use kpilot_roll::ports::{Fleet, FleetError};
use kpilot_roll::store::{JournalStore, MemoryStore, StoreError};
use kpilot_roll::{GateRules, Journal, Settings};
use kpilot_units::InstanceType;

/// Fast settings for the fake.
pub fn fast() -> Settings {
    Settings {
        gate_timeout: Duration::from_secs(5),
        start_timeout: Duration::from_secs(5),
        catch_up_timeout: Duration::from_secs(5),
        election_timeout: Duration::from_secs(5),
        poll: Duration::from_millis(1),
        progress_every: Duration::from_millis(0),
    }
}

pub fn size(s: &str) -> InstanceType {
    s.parse().expect("instance type")
}

/// A fleet that checks, before every stop, that the gate is open for that node on the fake's
/// current state (the property "never stop when the gate says no").
pub struct CheckedFleet<'a> {
    pub fake: &'a FakeCluster,
    pub rules: GateRules,
}

impl Fleet for CheckedFleet<'_> {
    async fn size(&self, node: BrokerId) -> Result<Option<InstanceType>, FleetError> {
        self.fake.size(node).await
    }
    async fn stop(&self, node: BrokerId) -> Result<(), FleetError> {
        let obs = kpilot_roll::Observation::new(self.fake.state(), 0);
        let already_down = !obs.is_serving(node);
        let verdict = gate::evaluate(&obs, node, &self.rules);
        // A stop repeated on resume finds the node already down; that is not a new stop.
        assert!(
            already_down || verdict.is_open(),
            "stopped while the gate was closed: {verdict}"
        );
        self.fake.stop(node).await
    }
    async fn resize(&self, node: BrokerId, size: &InstanceType) -> Result<(), FleetError> {
        self.fake.resize(node, size).await
    }
    async fn start(&self, node: BrokerId) -> Result<(), FleetError> {
        self.fake.start(node).await
    }
    async fn is_running(&self, node: BrokerId) -> Result<bool, FleetError> {
        self.fake.is_running(node).await
    }
    fn fresh_disks(&self) -> bool {
        self.fake.fresh_disks()
    }
}

/// A store that "crashes" (fails every save) from the `crash_at`-th save on, like a process
/// killed at that point; `inner` keeps what was saved before.
pub struct CrashingStore<'a> {
    pub inner: &'a mut MemoryStore,
    pub saves: usize,
    pub crash_at: usize,
}

impl JournalStore for CrashingStore<'_> {
    fn load(&self) -> Result<Option<Journal>, StoreError> {
        self.inner.load()
    }
    fn save(&mut self, journal: &Journal) -> Result<(), StoreError> {
        self.saves += 1;
        if self.saves >= self.crash_at {
            return Err(StoreError::Write {
                kind: "roll",
                path: "crashed".into(),
                source: std::io::Error::other("simulated crash"),
            });
        }
        self.inner.save(journal)
    }
}
