//! Before an operation starts: the Kafka writes it will make, probed without changing
//! anything. An operation whose principal lacks an ACL would otherwise start and then halt
//! midway: a horizontal add with its new brokers running but no partition allowed onto them,
//! or a StatefulSet roll with its template already patched. A decision that fails a probe is
//! recorded as "not applied", naming the missing ACL, and nothing is touched.
//!
//! [`needed`] (pure) says which writes a mechanism makes; [`check`] sends one request per
//! write that the broker authorizes and then has nothing to do for. Performs Kafka I/O.

use kpilot_kafka::AdminClient;

use crate::observe::Connection;

/// One kind of Kafka write an operation makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Preferred leader elections (ElectLeaders: Alter on the cluster).
    Elect,
    /// Partition reassignments (AlterPartitionReassignments: Alter on the cluster).
    Reassign,
    /// Broker throttle rates (IncrementalAlterConfigs: AlterConfigs on the cluster).
    BrokerConfigs,
    /// Topic throttled-replica lists (IncrementalAlterConfigs: AlterConfigs on topics).
    TopicConfigs,
}

impl std::fmt::Display for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Write::Elect => "elect preferred leaders",
            Write::Reassign => "reassign partitions",
            Write::BrokerConfigs => "set the brokers' throttle rates",
            Write::TopicConfigs => "set the topics' throttled replicas",
        })
    }
}

/// The Kafka writes of an operation: a horizontal one (either target) runs the throttled
/// rebalance and elects leaders at the end; a vertical one elects leaders (after every broker
/// in a StatefulSet roll; once at the end of a Strimzi roll, whose restarts Strimzi makes with
/// its own credentials). A vertical one onto instance-local disks (`rebuilds`) also throttles
/// the rebuilds: the rates on the brokers, the throttled replicas on the topics (per broker in
/// a StatefulSet roll; on every broker and topic before Strimzi rolls the pods). Pure.
pub fn needed(horizontal: bool, rebuilds: bool) -> &'static [Write] {
    if horizontal {
        &[
            Write::Reassign,
            Write::BrokerConfigs,
            Write::TopicConfigs,
            Write::Elect,
        ]
    } else if rebuilds {
        &[Write::BrokerConfigs, Write::TopicConfigs, Write::Elect]
    } else {
        &[Write::Elect]
    }
}

/// Probes every write in `writes` with a request that changes nothing: an election and a
/// reassignment naming no partition, config changes with `validateOnly` (on one broker, as
/// broker configs are authorized on the cluster; on every topic, as topic ACLs may cover some
/// topics and not others). Returns, for the first refused write, what it is and the broker's
/// error (which names the missing ACL).
pub async fn check(admin: &AdminClient, writes: &[Write]) -> Result<(), String> {
    let metadata = admin
        .metadata()
        .await
        .map_err(|e| format!("cannot read the metadata to check permissions: {e}"))?;
    for write in writes {
        let result = match write {
            Write::Elect => admin.elect_preferred_leaders(Some(&[])).await.map(|_| ()),
            Write::Reassign => admin.alter_partition_reassignments(&[]).await,
            Write::BrokerConfigs => admin.may_set_throttle_rates(&metadata).await,
            // A rebalance may move any topic, a roll onto local disks rebuilds every one.
            Write::TopicConfigs => admin.may_set_throttled_replicas(&metadata).await,
        };
        result.map_err(|e| format!("this principal may not {write}: {e}"))?;
    }
    Ok(())
}

/// [`check`] over a connection of its own; a cluster it cannot reach fails the check too.
pub async fn may_apply(conn: &Connection, writes: &[Write]) -> Result<(), String> {
    let admin = conn
        .connect()
        .await
        .map_err(|e| format!("cannot check this principal's permissions: {e}"))?;
    let result = check(&admin, writes).await;
    admin.close();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mechanism_probes_the_writes_it_makes() {
        assert_eq!(
            needed(false, false),
            &[Write::Elect],
            "a roll on network volumes elects leaders"
        );
        let all = [
            Write::Reassign,
            Write::BrokerConfigs,
            Write::TopicConfigs,
            Write::Elect,
        ];
        // Adding or removing brokers moves data whatever the storage.
        for rebuilds in [false, true] {
            let writes = needed(true, rebuilds);
            for w in all {
                assert!(writes.contains(&w), "{w} missing");
            }
        }
        // A roll onto local disks throttles every rebuild: it is refused before a pod changes,
        // not halted at its first rebuild.
        let writes = needed(false, true);
        for w in [Write::BrokerConfigs, Write::TopicConfigs, Write::Elect] {
            assert!(writes.contains(&w), "{w} missing");
        }
        assert!(
            !writes.contains(&Write::Reassign),
            "a roll moves no partition"
        );
    }
}
