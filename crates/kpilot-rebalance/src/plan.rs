//! The planner: drain removed brokers, then move the replicas that best close the gap between
//! the most over-full and the most under-full brokers until every broker is within the balance
//! targets, then spread preferred leaders by reordering replica lists (no data moves). Pure and
//! deterministic: the same input gives the same plan.

use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::{BrokerId, TopicPartition};
use serde::Serialize;

use crate::bound::{Balance, BalanceTargets, LowerBound};
use crate::input::{PlanError, PlanInput};

/// One replica moving from one broker to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    /// The partition.
    pub partition: TopicPartition,
    /// The broker losing the replica.
    pub from: BrokerId,
    /// The broker gaining it.
    pub to: BrokerId,
    /// Bytes to copy.
    pub bytes: u64,
}

/// Summary figures of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanStats {
    /// Bytes the plan copies.
    pub bytes_moved: u64,
    /// The lower bound on bytes any plan reaching the targets must copy.
    pub lower_bound: LowerBound,
    /// `bytes_moved / lower_bound.bytes` (1.0 when both are zero).
    pub ratio_to_bound: f64,
    /// Replicas moved.
    pub replicas_moved: usize,
    /// Partitions whose preferred leader changes.
    pub leaders_changed: usize,
    /// The balance targets per balancing group: one per zone when every partition has one
    /// replica in each zone (then bytes cannot cross zones), else one for the whole cluster.
    pub targets: BTreeMap<String, BalanceTargets>,
    /// Balance before.
    pub before: Balance,
    /// Balance after.
    pub after: Balance,
    /// True when every target broker ends within the targets.
    pub balanced: bool,
    /// True when every partition's replicas are in distinct zones (when zones are known and
    /// there are enough of them).
    pub zones_distinct: bool,
}

/// A reassignment plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The target broker set.
    pub brokers: BTreeSet<BrokerId>,
    /// The new replica list of every partition that changes (replicas or their order).
    pub assignment: BTreeMap<TopicPartition, Vec<BrokerId>>,
    /// The replica moves.
    pub moves: Vec<Move>,
    /// Figures.
    pub stats: PlanStats,
}

/// Default byte-balance tolerance: 10% of the mean (or the largest partition, if larger).
pub const DEFAULT_TOLERANCE: f64 = 0.10;

/// Plans a reassignment with the default tolerance.
pub fn plan(input: &PlanInput) -> Result<Plan, PlanError> {
    plan_with_tolerance(input, DEFAULT_TOLERANCE)
}

/// Plans a reassignment; `tolerance` is the allowed byte imbalance as a fraction of the mean.
pub fn plan_with_tolerance(input: &PlanInput, tolerance: f64) -> Result<Plan, PlanError> {
    let target = input.validate()?;
    let mut w = Work::new(input, &target);
    let before = w.balance(true);
    let groups = w.groups();
    let mut targets = Targets::default();
    let mut lower_bound = LowerBound {
        must_leave_bytes: 0,
        must_arrive_bytes: 0,
        bytes: 0,
    };
    for (name, members) in &groups {
        // Everything currently on a group's brokers, plus what removed brokers of the same
        // group hold (it must land inside the group).
        let current: BTreeSet<BrokerId> = w
            .all
            .iter()
            .copied()
            .filter(|b| w.group_of(*b) == *name)
            .collect();
        let (mut bytes, mut replicas, mut largest) = (0u64, 0usize, 0u64);
        for b in &current {
            bytes += w.bytes[b];
            replicas += w.count[b];
            for &i in &w.hosted[b] {
                largest = largest.max(w.parts[i].size);
            }
        }
        let t = BalanceTargets::new(members.len(), bytes, replicas, largest, tolerance);
        let held: BTreeMap<BrokerId, u64> = current
            .iter()
            .filter(|b| before.bytes.contains_key(b))
            .map(|b| (*b, before.bytes[b]))
            .collect();
        let lb = LowerBound::compute(&held, members, &t);
        lower_bound.must_leave_bytes += lb.must_leave_bytes;
        lower_bound.must_arrive_bytes += lb.must_arrive_bytes;
        lower_bound.bytes += lb.bytes;
        for b in members {
            targets.by_broker.insert(*b, t);
        }
        targets.groups.insert(name.clone(), t);
    }

    w.drain_removed(&targets);
    w.balance_bytes_and_counts(&targets);
    w.spread_leaders();

    let after = w.balance(false);
    let mut assignment = BTreeMap::new();
    let mut moves = Vec::new();
    let mut leaders_changed = 0;
    for (p, orig) in w.parts.iter().zip(&input.partitions) {
        if p.replicas != orig.replicas {
            assignment.insert(orig.partition.clone(), p.replicas.clone());
        }
        if p.replicas.first() != orig.replicas.first() {
            leaders_changed += 1;
        }
        let gone: Vec<BrokerId> = orig
            .replicas
            .iter()
            .copied()
            .filter(|b| !p.replicas.contains(b))
            .collect();
        let new: Vec<BrokerId> = p
            .replicas
            .iter()
            .copied()
            .filter(|b| !orig.replicas.contains(b))
            .collect();
        for (from, to) in gone.into_iter().zip(new) {
            moves.push(Move {
                partition: orig.partition.clone(),
                from,
                to,
                bytes: p.size,
            });
        }
    }
    let bytes_moved: u64 = moves.iter().map(|m| m.bytes).sum();
    let ratio_to_bound = if lower_bound.bytes == 0 {
        if bytes_moved == 0 { 1.0 } else { f64::INFINITY }
    } else {
        bytes_moved as f64 / lower_bound.bytes as f64
    };
    let balanced = target.iter().all(|b| {
        let t = &targets.by_broker[b];
        let bytes = after.bytes.get(b).copied().unwrap_or(0) as f64;
        let count = after.replicas.get(b).copied().unwrap_or(0);
        bytes <= t.high_bytes() + 0.5
            && bytes + 0.5 >= t.low_bytes()
            && count >= t.min_replicas
            && count <= t.max_replicas
    });
    let zones_distinct = w.zones_distinct();
    Ok(Plan {
        brokers: target,
        assignment,
        stats: PlanStats {
            bytes_moved,
            lower_bound,
            ratio_to_bound,
            replicas_moved: moves.len(),
            leaders_changed,
            targets: targets.groups,
            before,
            after,
            balanced,
            zones_distinct,
        },
        moves,
    })
}

/// Balance targets per broker (from its group) and per group.
#[derive(Default)]
struct Targets {
    by_broker: BTreeMap<BrokerId, BalanceTargets>,
    groups: BTreeMap<String, BalanceTargets>,
}

struct Part {
    replicas: Vec<BrokerId>,
    size: u64,
    /// Whether a replica of this partition has already been moved by this plan.
    touched: bool,
}

/// The mutable planning state.
struct Work<'a> {
    parts: Vec<Part>,
    target: &'a BTreeSet<BrokerId>,
    all: BTreeSet<BrokerId>,
    racks: BTreeMap<BrokerId, String>,
    enforce_zones: bool,
    bytes: BTreeMap<BrokerId, u64>,
    count: BTreeMap<BrokerId, usize>,
    /// Partitions hosted by each broker.
    hosted: BTreeMap<BrokerId, BTreeSet<usize>>,
}

impl<'a> Work<'a> {
    fn new(input: &PlanInput, target: &'a BTreeSet<BrokerId>) -> Self {
        let parts: Vec<Part> = input
            .partitions
            .iter()
            .map(|p| Part {
                replicas: p.replicas.clone(),
                size: p.size_bytes,
                touched: false,
            })
            .collect();
        let racks: BTreeMap<BrokerId, String> = input
            .brokers
            .iter()
            .filter_map(|(b, r)| r.clone().map(|r| (*b, r)))
            .collect();
        let max_rf = parts.iter().map(|p| p.replicas.len()).max().unwrap_or(0);
        let target_racks: BTreeSet<&String> = target.iter().filter_map(|b| racks.get(b)).collect();
        let enforce_zones =
            target.iter().all(|b| racks.contains_key(b)) && target_racks.len() >= max_rf;
        let mut all: BTreeSet<BrokerId> = input.brokers.keys().copied().collect();
        all.extend(target.iter().copied());
        let mut w = Self {
            parts,
            target,
            all,
            racks,
            enforce_zones,
            bytes: BTreeMap::new(),
            count: BTreeMap::new(),
            hosted: BTreeMap::new(),
        };
        for b in w.all.clone() {
            w.bytes.insert(b, 0);
            w.count.insert(b, 0);
            w.hosted.insert(b, BTreeSet::new());
        }
        for (i, p) in w.parts.iter().enumerate() {
            for b in &p.replicas {
                *w.bytes.entry(*b).or_insert(0) += p.size;
                *w.count.entry(*b).or_insert(0) += 1;
                w.hosted.entry(*b).or_default().insert(i);
            }
        }
        w
    }

    /// Balancing groups: one per zone when zones are enforced and every partition has exactly
    /// one replica per zone (bytes cannot cross zones then); otherwise one group, "cluster".
    fn groups(&self) -> BTreeMap<String, BTreeSet<BrokerId>> {
        let mut groups: BTreeMap<String, BTreeSet<BrokerId>> = BTreeMap::new();
        for b in self.target {
            groups.entry(self.group_of(*b)).or_default().insert(*b);
        }
        groups
    }

    fn per_zone(&self) -> bool {
        if !self.enforce_zones {
            return false;
        }
        let zones: BTreeSet<&String> = self
            .target
            .iter()
            .filter_map(|b| self.racks.get(b))
            .collect();
        // A removed broker's zone must still exist, or its replicas have to change zone.
        self.all
            .iter()
            .all(|b| self.racks.get(b).is_some_and(|r| zones.contains(r)))
            && self.parts.iter().all(|p| p.replicas.len() == zones.len())
    }

    fn group_of(&self, b: BrokerId) -> String {
        if self.per_zone() {
            self.racks.get(&b).cloned().unwrap_or_default()
        } else {
            "cluster".to_string()
        }
    }

    fn balance(&self, include_all: bool) -> Balance {
        let keep = |b: &BrokerId| include_all || self.target.contains(b);
        let mut leaders: BTreeMap<BrokerId, usize> = self
            .all
            .iter()
            .filter(|b| keep(b))
            .map(|b| (*b, 0))
            .collect();
        for p in &self.parts {
            if let Some(l) = p.replicas.first()
                && keep(l)
            {
                *leaders.entry(*l).or_insert(0) += 1;
            }
        }
        Balance {
            bytes: self
                .bytes
                .iter()
                .filter(|(b, _)| keep(b))
                .map(|(b, v)| (*b, *v))
                .collect(),
            replicas: self
                .count
                .iter()
                .filter(|(b, _)| keep(b))
                .map(|(b, v)| (*b, *v))
                .collect(),
            leaders,
        }
    }

    /// Can partition `i` take a replica on `to`, replacing the one on `from`?
    fn can_place(&self, i: usize, from: Option<BrokerId>, to: BrokerId) -> bool {
        let p = &self.parts[i];
        if p.replicas.contains(&to) || !self.target.contains(&to) {
            return false;
        }
        if !self.enforce_zones {
            return true;
        }
        let Some(rack) = self.racks.get(&to) else {
            return false;
        };
        !p.replicas
            .iter()
            .filter(|b| Some(**b) != from)
            .any(|b| self.racks.get(b) == Some(rack))
    }

    fn relocate(&mut self, i: usize, from: BrokerId, to: BrokerId) {
        let size = self.parts[i].size;
        self.parts[i].touched = true;
        if let Some(slot) = self.parts[i].replicas.iter_mut().find(|b| **b == from) {
            *slot = to;
        }
        for (b, delta) in [(from, -1i64), (to, 1i64)] {
            let bytes = self.bytes.entry(b).or_insert(0);
            let count = self.count.entry(b).or_insert(0);
            if delta < 0 {
                *bytes -= size;
                *count -= 1;
                self.hosted.entry(b).or_default().remove(&i);
            } else {
                *bytes += size;
                *count += 1;
                self.hosted.entry(b).or_default().insert(i);
            }
        }
    }

    /// Moves every replica off brokers that are not in the target set, largest first, each to
    /// the eligible target broker with the fewest bytes (preferring one under its replica cap).
    fn drain_removed(&mut self, targets: &Targets) {
        let removed: Vec<BrokerId> = self
            .all
            .iter()
            .copied()
            .filter(|b| !self.target.contains(b))
            .collect();
        let mut orphans: Vec<(u64, usize, BrokerId)> = Vec::new();
        for b in &removed {
            for &i in self.hosted.get(b).into_iter().flatten() {
                orphans.push((self.parts[i].size, i, *b));
            }
        }
        orphans.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, i, from) in orphans {
            let to = self
                .target
                .iter()
                .copied()
                .filter(|&t| self.can_place(i, Some(from), t))
                .min_by_key(|t| {
                    let tt = &targets.by_broker[t];
                    (
                        usize::from(self.count[t] >= tt.max_replicas),
                        (self.bytes[t] as f64 - tt.mean_bytes) as i64,
                        *t,
                    )
                });
            if let Some(to) = to {
                self.relocate(i, from, to);
            }
        }
    }

    /// Moves replicas from the fullest to the emptiest brokers until all are within targets.
    fn balance_bytes_and_counts(&mut self, targets: &Targets) {
        let t = |b: &BrokerId| targets.by_broker[b];
        let limit = self.parts.iter().map(|p| p.replicas.len()).sum::<usize>() * 2 + 16;
        for _ in 0..limit {
            let tb: Vec<BrokerId> = self.target.iter().copied().collect();
            let over_bytes = |w: &Self, b: &BrokerId| w.bytes[b] as f64 - t(b).mean_bytes;
            // Sources: brokers violating a target first (fullest first), then every other
            // broker; destinations likewise (emptiest first). Zones can make the worst pair
            // impossible while a less extreme one still helps.
            let violates_high = |w: &Self, b: &BrokerId| {
                w.bytes[b] as f64 > t(b).high_bytes() || w.count[b] > t(b).max_replicas
            };
            let violates_low = |w: &Self, b: &BrokerId| {
                (w.bytes[b] as f64) + 0.5 < t(b).low_bytes() || w.count[b] < t(b).min_replicas
            };
            if !tb
                .iter()
                .any(|b| violates_high(self, b) || violates_low(self, b))
            {
                return;
            }
            let mut sources = tb.clone();
            sources.sort_by(|a, b| {
                violates_high(self, b)
                    .cmp(&violates_high(self, a))
                    .then(over_bytes(self, b).total_cmp(&over_bytes(self, a)))
                    .then(a.cmp(b))
            });
            let mut dests = tb.clone();
            dests.sort_by(|a, b| {
                violates_low(self, b)
                    .cmp(&violates_low(self, a))
                    .then(over_bytes(self, a).total_cmp(&over_bytes(self, b)))
                    .then(a.cmp(b))
            });
            let mut moved = false;
            'search: for &a in &sources {
                for &b in &dests {
                    if a == b || !(violates_high(self, &a) || violates_low(self, &b)) {
                        continue;
                    }
                    if let Some(i) = self.best_replica(a, b, targets) {
                        self.relocate(i, a, b);
                        moved = true;
                        break 'search;
                    }
                }
            }
            if !moved {
                // No single move helps (count bands or zones block them): exchange a larger
                // replica of a full broker with a smaller one of an empty broker.
                'swap: for &a in &sources {
                    for &b in &dests {
                        if a == b || !(violates_high(self, &a) || violates_low(self, &b)) {
                            continue;
                        }
                        if let Some((x, y)) = self.best_swap(a, b, targets) {
                            self.relocate(x, a, b);
                            self.relocate(y, b, a);
                            moved = true;
                            break 'swap;
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// A pair (x on `a`, y on `b`) whose exchange moves `size(x) - size(y)` bytes from `a` to
    /// `b` without overshooting either mean, as large a shift as possible, then as few bytes
    /// copied as possible.
    fn best_swap(&self, a: BrokerId, b: BrokerId, targets: &Targets) -> Option<(usize, usize)> {
        let (ta, tb) = (&targets.by_broker[&a], &targets.by_broker[&b]);
        let gap =
            (self.bytes[&a] as f64 - ta.mean_bytes).min(tb.mean_bytes - self.bytes[&b] as f64);
        if gap <= 0.0 {
            return None;
        }
        let mut ys: Vec<(u64, usize)> = self.hosted[&b]
            .iter()
            .copied()
            .filter(|&y| self.can_place(y, Some(b), a))
            .map(|y| (self.parts[y].size, y))
            .collect();
        ys.sort();
        let mut best: Option<(u64, u64, usize, usize)> = None; // (shift, copied, x, y)
        for &x in &self.hosted[&a] {
            let sx = self.parts[x].size;
            if !self.can_place(x, Some(a), b) {
                continue;
            }
            // The smallest y with sx - sy <= gap, i.e. sy >= sx - gap.
            let floor = (sx as f64 - gap).max(0.0);
            let start = ys.partition_point(|(sy, _)| (*sy as f64) < floor);
            for &(sy, y) in &ys[start..] {
                if sy >= sx {
                    break; // ys are sorted: no later one shifts bytes towards `b`.
                }
                if x == y {
                    continue;
                }
                let shift = sx - sy;
                let copied = sx + sy;
                if best.is_none_or(|(bs, bc, _, _)| shift > bs || (shift == bs && copied < bc)) {
                    best = Some((shift, copied, x, y));
                }
                break;
            }
        }
        best.map(|(_, _, x, y)| (x, y))
    }

    /// The replica on `a` whose move to `b` helps most: the largest that fits in both `a`'s
    /// excess and `b`'s deficit; failing that, when a count target forces a move, the smallest;
    /// `None` when no move improves the balance.
    fn best_replica(&self, a: BrokerId, b: BrokerId, targets: &Targets) -> Option<usize> {
        let (ta, tb) = (&targets.by_broker[&a], &targets.by_broker[&b]);
        let ab = self.bytes[&a] as f64;
        let bb = self.bytes[&b] as f64;
        let excess = ab - ta.mean_bytes;
        let deficit = tb.mean_bytes - bb;
        let gap = excess.min(deficit);
        // Never push a broker out of its replica-count band to fix another.
        let count_ok = self.count[&a] > ta.min_replicas && self.count[&b] < tb.max_replicas;
        if !count_ok {
            return None;
        }
        let count_forced = self.count[&a] > ta.max_replicas || self.count[&b] < tb.min_replicas;
        // Aim each move at what is still needed to bring both brokers into their bands:
        // `need` bytes over `k` replicas, so both the byte and the count bands are met with
        // about the least data copied.
        let need_bytes = (ab - ta.high_bytes()).max(tb.low_bytes() - bb).max(0.0);
        let need_count = (self.count[&a].saturating_sub(ta.max_replicas))
            .max(tb.min_replicas.saturating_sub(self.count[&b]))
            .max(1);
        let ideal = if need_bytes > 0.0 {
            (need_bytes / need_count as f64).min(gap)
        } else {
            0.0
        };
        let candidates = self.hosted[&a]
            .iter()
            .copied()
            .filter(|&i| self.can_place(i, Some(a), b));
        let mut best_fit: Option<(f64, u64, usize)> = None; // (distance to ideal, size, index)
        let mut smallest: Option<(u64, usize)> = None;
        for i in candidates {
            let s = self.parts[i].size;
            if (s as f64) <= gap {
                // Prefer partitions not yet touched: otherwise every zone picks the same
                // partitions (same sizes, same needs) and the cluster splits into disjoint
                // groups of brokers that cannot share leadership.
                let penalty = if self.parts[i].touched {
                    ideal * 0.5 + 1.0
                } else {
                    0.0
                };
                let d = (s as f64 - ideal).abs() + penalty;
                if best_fit.is_none_or(|(bd, bs, _)| d < bd || (d == bd && s > bs)) {
                    best_fit = Some((d, s, i));
                }
            }
            if smallest.is_none_or(|(ss, _)| s < ss) {
                smallest = Some((s, i));
            }
        }
        if let Some((_, s, i)) = best_fit
            && (s > 0 || count_forced)
        {
            return Some(i);
        }
        // Nothing fits the gap. Move the smallest replica only if that still narrows the
        // spread between the two brokers, or a count target requires a move.
        let (s, i) = smallest?;
        let s = s as f64;
        let before = (ab - ta.mean_bytes).abs().max((bb - tb.mean_bytes).abs());
        let after = (ab - s - ta.mean_bytes)
            .abs()
            .max((bb + s - tb.mean_bytes).abs());
        if count_forced || (after < before && excess > 0.0 && deficit > 0.0) {
            return Some(i);
        }
        // Still nothing, but one broker is out of its band: a replica that brings it back
        // in while the other stays inside its own band is progress even when it overshoots
        // a mean (zones can leave no replica that fits both means). The smallest such, to
        // copy least. Each such move lowers the total distance outside the bands, so the
        // loop still ends.
        let need = (ab - ta.high_bytes()).max(tb.low_bytes() - bb);
        let room = (tb.high_bytes() - bb).min(ab - ta.low_bytes());
        if need <= 0.0 {
            return None;
        }
        self.hosted[&a]
            .iter()
            .copied()
            .filter(|&i| self.can_place(i, Some(a), b))
            .map(|i| (self.parts[i].size, i))
            .filter(|&(s, _)| (s as f64) >= need && (s as f64) <= room)
            .min()
            .map(|(_, i)| i)
    }

    /// Reorders replica lists (no data moves) so preferred leaderships are spread evenly: each
    /// step hands one leadership from a broker to one with at least two fewer, which strictly
    /// lowers the sum of squared counts, so it ends. Pull first (the lightest broker takes a
    /// partition it already hosts from the heaviest such leader), else push (the heaviest
    /// broker hands one to its lightest co-replica): zone-mates never share a partition, so
    /// the lightest broker cannot always take from the heaviest directly.
    fn spread_leaders(&mut self) {
        let mut leaders: BTreeMap<BrokerId, usize> = self.target.iter().map(|b| (*b, 0)).collect();
        for p in &self.parts {
            if let Some(l) = p.replicas.first() {
                *leaders.entry(*l).or_insert(0) += 1;
            }
        }
        let limit = self.parts.len() * self.target.len() + 16;
        for _ in 0..limit {
            let (Some(hn), Some(ln)) = (
                leaders.values().max().copied(),
                leaders.values().min().copied(),
            ) else {
                return;
            };
            if hn <= ln + 1 {
                return;
            }
            let light = leaders
                .iter()
                .filter(|(_, n)| **n == ln)
                .map(|(b, _)| *b)
                .min();
            let heavy = leaders
                .iter()
                .filter(|(_, n)| **n == hn)
                .map(|(b, _)| *b)
                .min();
            let (Some(light), Some(heavy)) = (light, heavy) else {
                return;
            };
            // Pull: a partition hosted on `light` whose leader has at least two more.
            let pull = self.hosted[&light]
                .iter()
                .copied()
                .filter_map(|i| {
                    let l = *self.parts[i].replicas.first()?;
                    let n = leaders.get(&l).copied()?;
                    (l != light && n >= ln + 2).then_some((n, std::cmp::Reverse(i), i, l, light))
                })
                .max();
            // Push: a partition led by `heavy` with a co-replica having at least two fewer.
            let push = || {
                self.hosted[&heavy]
                    .iter()
                    .copied()
                    .filter(|&i| self.parts[i].replicas.first() == Some(&heavy))
                    .flat_map(|i| self.parts[i].replicas.iter().skip(1).map(move |b| (i, *b)))
                    .filter_map(|(i, b)| {
                        let n = leaders.get(&b).copied()?;
                        (n + 2 <= hn).then_some((
                            std::cmp::Reverse(n),
                            std::cmp::Reverse(i),
                            i,
                            heavy,
                            b,
                        ))
                    })
                    .max()
            };
            let step = pull
                .map(|(_, _, i, from, to)| (i, from, to))
                .or_else(|| push().map(|(_, _, i, from, to)| (i, from, to)));
            let Some((i, from, to)) = step else {
                return;
            };
            let r = &mut self.parts[i].replicas;
            if let Some(pos) = r.iter().position(|b| *b == to) {
                r.swap(0, pos);
            }
            *leaders.entry(from).or_insert(0) -= 1;
            *leaders.entry(to).or_insert(0) += 1;
        }
    }

    fn zones_distinct(&self) -> bool {
        if !self.enforce_zones {
            return true;
        }
        self.parts.iter().all(|p| {
            let zones: BTreeSet<&String> = p
                .replicas
                .iter()
                .filter_map(|b| self.racks.get(b))
                .collect();
            zones.len() == p.replicas.len()
        })
    }
}
