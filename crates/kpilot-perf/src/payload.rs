//! Record payloads: a pool of bytes with the asked compressibility that records are sliced
//! from, and the 16-byte stamp (run tag, phase, intended send time) consumers read back for
//! end-to-end latency. Pure.

use crate::workload::STAMP_LEN;

/// Compressibility is applied per block of this many bytes: each block is either all zeros or
/// random bytes.
const BLOCK: usize = 64;

/// Smallest pool, so slices differ well beyond compressor windows.
const MIN_POOL: usize = 4 << 20;

/// Bytes records are sliced from. About `compressibility` of the bytes are zero blocks, the
/// rest random, so a compressor shrinks a record to roughly `1 - compressibility` of its size.
#[derive(Debug, Clone)]
pub struct PayloadPool {
    bytes: Vec<u8>,
    record_size: usize,
    positions: usize,
}

impl PayloadPool {
    /// A pool for records of `record_size` bytes, deterministic for a given `seed`.
    pub fn new(record_size: usize, compressibility: f64, seed: u64) -> Self {
        let len = MIN_POOL.max(record_size.saturating_mul(4));
        let mut rng = SplitMix64(seed ^ 0x6b70_696c_6f74);
        let mut bytes = vec![0u8; len];
        let threshold = (compressibility.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        for block in bytes.chunks_mut(BLOCK) {
            let zero = compressibility >= 1.0 || (compressibility > 0.0 && rng.next() < threshold);
            if !zero {
                for chunk in block.chunks_mut(8) {
                    let r = rng.next().to_le_bytes();
                    chunk.copy_from_slice(&r[..chunk.len()]);
                }
            }
        }
        let positions = len - record_size + 1;
        Self {
            bytes,
            record_size,
            positions,
        }
    }

    /// The payload of record `n`: the pool read as a stream, one record after the other, so
    /// consecutive records differ and the reads stay sequential (random offsets into a pool
    /// larger than the CPU caches made the copy the most expensive step of a send).
    pub fn record(&self, n: u64) -> &[u8] {
        let start = (n.wrapping_mul(self.record_size as u64) % self.positions as u64) as usize;
        &self.bytes[start..start + self.record_size]
    }

    /// Record size in bytes.
    pub fn record_size(&self) -> usize {
        self.record_size
    }
}

/// Writes the stamp into the first 16 bytes of `buf` (no-op when `buf` is shorter). `tag`
/// identifies the run, so records of other runs or other producers are not mistaken for ours.
pub fn write_stamp(buf: &mut [u8], tag: u32, phase: u32, intended_unix_us: u64) {
    if buf.len() < STAMP_LEN {
        return;
    }
    buf[0..4].copy_from_slice(&tag.to_le_bytes());
    buf[4..8].copy_from_slice(&phase.to_le_bytes());
    buf[8..16].copy_from_slice(&intended_unix_us.to_le_bytes());
}

/// Reads the stamp of a record of run `tag`: `(phase, intended send time in microseconds since
/// the Unix epoch)`; `None` for a record of another run or without a stamp.
pub fn read_stamp(buf: &[u8], tag: u32) -> Option<(u32, u64)> {
    if buf.len() < STAMP_LEN || buf[0..4] != tag.to_le_bytes() {
        return None;
    }
    let phase = u32::from_le_bytes(buf[4..8].try_into().ok()?);
    let us = u64::from_le_bytes(buf[8..16].try_into().ok()?);
    Some((phase, us))
}

/// A small, fast, seeded generator (SplitMix64); not for cryptography.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zero_fraction(p: &PayloadPool) -> f64 {
        let zeros = p.bytes.iter().filter(|&&b| b == 0).count();
        zeros as f64 / p.bytes.len() as f64
    }

    #[test]
    fn compressibility_sets_the_share_of_zero_blocks() {
        let random = PayloadPool::new(1024, 0.0, 1);
        assert!(zero_fraction(&random) < 0.01);
        let half = PayloadPool::new(1024, 0.5, 1);
        assert!(
            (zero_fraction(&half) - 0.5).abs() < 0.02,
            "{}",
            zero_fraction(&half)
        );
        let all = PayloadPool::new(1024, 1.0, 1);
        assert_eq!(zero_fraction(&all), 1.0);
    }

    #[test]
    fn records_have_the_size_and_vary() {
        let p = PayloadPool::new(100, 0.0, 7);
        assert_eq!(p.record(0).len(), 100);
        assert_ne!(p.record(0), p.record(1));
        assert_eq!(p.record(123_456_789).len(), 100);
        let big = PayloadPool::new(8 << 20, 0.0, 7);
        assert_eq!(big.record(3).len(), 8 << 20);
    }

    #[test]
    fn stamps_round_trip_and_foreign_records_are_recognised() {
        let mut buf = vec![0xAA; 32];
        write_stamp(&mut buf, 0xfeed, 7, 1_700_000_000_123_456);
        assert_eq!(read_stamp(&buf, 0xfeed), Some((7, 1_700_000_000_123_456)));
        assert_eq!(read_stamp(&buf, 0xbeef), None);
        assert_eq!(read_stamp(&[0u8; 32], 0xfeed), None);
        let mut short = vec![0u8; 8];
        write_stamp(&mut short, 0xfeed, 1, 2);
        assert_eq!(read_stamp(&short, 0xfeed), None);
    }
}
