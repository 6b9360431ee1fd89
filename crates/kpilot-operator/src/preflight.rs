//! Before an operation starts: the Kafka writes it will make, probed without changing
//! anything. An operation whose principal lacks an ACL would otherwise start and then halt
//! midway: a horizontal add with its new brokers running but no partition allowed onto them,
//! or a StatefulSet roll with its template already patched. A decision that fails a probe is
//! recorded as "not applied", naming the missing ACL, and nothing is touched.
//!
//! [`needed`] (pure) says which writes a mechanism makes; [`check`] sends one request per
//! write that the broker authorizes and then has nothing to do for. Performs Kafka I/O.

use kpilot_kafka::{AdminClient, ConfigOp, ConfigResource, FOLLOWER_RATE, LEADER_REPLICAS};

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
/// its own credentials). Pure.
pub fn needed(horizontal: bool) -> &'static [Write] {
    if horizontal {
        &[
            Write::Reassign,
            Write::BrokerConfigs,
            Write::TopicConfigs,
            Write::Elect,
        ]
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
            // AlterConfigs on the cluster covers every broker: one is asked.
            Write::BrokerConfigs => match metadata.brokers.keys().next() {
                None => continue,
                Some(id) => {
                    admin
                        .validate_configs(
                            &[ConfigResource::Broker(*id)],
                            &[ConfigOp::set(FOLLOWER_RATE, "1")],
                        )
                        .await
                }
            },
            // AlterConfigs on topics may be granted per topic or prefix, and a rebalance may
            // move any topic: every one is asked, in one request.
            Write::TopicConfigs => {
                let topics: Vec<ConfigResource> = metadata
                    .topics
                    .keys()
                    .filter(|t| !t.is_internal_name())
                    .map(|t| ConfigResource::Topic(t.clone()))
                    .collect();
                admin
                    .validate_configs(&topics, &[ConfigOp::set(LEADER_REPLICAS, "*")])
                    .await
            }
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
        assert_eq!(needed(false), &[Write::Elect], "a roll elects leaders");
        let writes = needed(true);
        for w in [
            Write::Reassign,
            Write::BrokerConfigs,
            Write::TopicConfigs,
            Write::Elect,
        ] {
            assert!(writes.contains(&w), "{w} missing");
        }
    }
}
