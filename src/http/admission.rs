//! The connection caps (docs/operations.md): open client connections overall
//! (`limits.max_connections`) and per client IP
//! (`limits.max_connections_per_ip`), counted once for the plain and HTTPS
//! listeners together. A connection holds its place from accept until its
//! socket closes; the caps are read from the limits in force at each
//! accept, so a reload applies to the next connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::Limits;
/// Why a connection was refused: the cap it met, as the metric counts it.
pub use crate::telemetry::metrics::RejectReason as Refusal;

/// The open client connections, shared by every listener.
#[derive(Default)]
pub struct Connections {
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    /// Counted whether or not a per-IP cap is set, so one set by a reload
    /// sees the connections already open.
    per_ip: HashMap<IpAddr, usize>,
}

impl Connections {
    pub fn new() -> Arc<Connections> {
        Arc::default()
    }

    fn open(&self) -> MutexGuard<'_, Open> {
        // Every critical section leaves the counts consistent.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new connection from `ip`, or why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Result<Admitted, Refusal> {
        let mut open = self.open();
        if open.total >= limits.max_connections {
            return Err(Refusal::Total);
        }
        let from_ip = open.per_ip.entry(ip).or_insert(0);
        if limits
            .max_connections_per_ip
            .is_some_and(|cap| *from_ip >= cap)
        {
            return Err(Refusal::PerIp);
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Admitted {
            connections: self.clone(),
            ip,
        })
    }
}

/// One admitted connection's place; dropping it gives the place back.
pub struct Admitted {
    connections: Arc<Connections>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.connections.open();
        open.total -= 1;
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: Option<usize>) -> Limits {
        Limits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            ..Limits::default()
        }
    }

    #[test]
    fn caps_count_open_connections_and_give_places_back() {
        let c = Connections::new();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let l = limits(3, Some(2));
        let a1 = c.admit(a, &l).unwrap();
        let _a2 = c.admit(a, &l).unwrap();
        assert_eq!(c.admit(a, &l).err(), Some(Refusal::PerIp));
        let _b1 = c.admit(b, &l).unwrap();
        assert_eq!(c.admit(b, &l).err(), Some(Refusal::Total));
        drop(a1);
        let _a3 = c.admit(a, &l).unwrap();
        // No per-IP cap (a reload may lift it): only the total counts.
        assert_eq!(c.admit(a, &limits(5, None)).map(|_| ()), Ok(()));
    }

    #[test]
    fn an_ip_with_no_connections_left_is_forgotten() {
        let c = Connections::new();
        let ip: IpAddr = "::1".parse().unwrap();
        drop(c.admit(ip, &limits(1, None)).unwrap());
        assert!(c.open().per_ip.is_empty());
        assert_eq!(c.open().total, 0);
    }
}
