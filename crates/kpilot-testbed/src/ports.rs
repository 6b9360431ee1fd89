//! Free TCP ports on 127.0.0.1, chosen at runtime by binding port 0. Performs I/O (sockets).

use std::net::{Ipv4Addr, TcpListener};

use crate::error::TestbedError;

/// Reserves `n` distinct free ports: binds them all at once (so they differ), then releases
/// them for the brokers to bind. Another process could take one in between; the cluster start
/// retries once with fresh ports when a broker reports "Address already in use".
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>, TestbedError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TestbedError::ReservePort { source })?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TestbedError::ReservePort { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports = free_ports(6).expect("loopback ports");
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 6);
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("released port is bindable");
        }
    }
}
