//! Crash consistency: 20 times, a mixed write load (sign-ups, sign-ins,
//! refreshes, sign-outs) against the built binary, kill -9 at a random
//! moment, restart on the same store. Every acknowledged write must be
//! there after each restart; requests cut off by the kill are unknown and
//! left out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::harness::auth::{auth_config_on, post, tokens, user, PASSWORD};
use crate::harness::{Backend, Binary, Client};

/// What the client was told about one session.
#[derive(Clone, Debug)]
enum Session {
    /// This refresh token is the current one.
    Live(String),
    /// Signed out (204): this token must be refused.
    SignedOut(String),
    /// An operation on it was in flight at the kill.
    Unknown,
}

#[derive(Default)]
struct Acked {
    /// Sign-ups answered 201.
    users: Vec<String>,
    sessions: HashMap<usize, Session>,
    /// Tokens that were rotated away (200 on refresh): reusing one must fail.
    rotated: Vec<(usize, String)>,
    next_session: usize,
    writes: usize,
}

/// A tiny deterministic generator (xorshift), seeded per run and printed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

async fn send(c: &Client, path: &str, body: serde_json::Value) -> Option<crate::harness::Reply> {
    let req = c.post(path).body(body.to_string()).try_send();
    tokio::time::timeout(Duration::from_secs(5), req)
        .await
        .ok()
        .and_then(Result::ok)
}

/// One writer: random operations until a request fails (the kill).
async fn writer(c: Client, acked: Arc<Mutex<Acked>>, cycle: usize, id: usize, mut rng: Rng) {
    for n in 0.. {
        let live: Vec<(usize, String)> = {
            let a = acked.lock().unwrap();
            a.sessions
                .iter()
                .filter_map(|(k, s)| match s {
                    // Each writer works on its own sessions only.
                    Session::Live(t) if k % 4 == id => Some((*k, t.clone())),
                    _ => None,
                })
                .collect()
        };
        match (rng.below(4), live.is_empty()) {
            (0, _) | (_, true) => {
                let email = format!("c{cycle}-w{id}-{n}@example.com");
                let Some(r) = send(&c, "/signup", user(&email)).await else {
                    return;
                };
                assert_eq!(r.status, 201, "{:?}", r.body);
                let (_, refresh) = tokens(&r);
                let mut a = acked.lock().unwrap();
                a.users.push(email);
                let k = next_session(&mut a, id);
                a.sessions.insert(k, Session::Live(refresh));
            }
            (1, _) => {
                let email = acked.lock().unwrap().users.first().cloned().unwrap();
                let body = json!({"email": email, "password": PASSWORD});
                let Some(r) = send(&c, "/signin", body).await else {
                    return;
                };
                assert_eq!(r.status, 200, "{:?}", r.body);
                let (_, refresh) = tokens(&r);
                let mut a = acked.lock().unwrap();
                let k = next_session(&mut a, id);
                a.sessions.insert(k, Session::Live(refresh));
            }
            (op, _) => {
                let (k, token) = live[rng.below(live.len())].clone();
                // From here until the answer, the outcome is unknown.
                acked.lock().unwrap().sessions.insert(k, Session::Unknown);
                let path = if op == 2 {
                    "/refresh-token"
                } else {
                    "/signout"
                };
                let Some(r) = send(&c, path, json!({"refreshToken": token})).await else {
                    return;
                };
                let mut a = acked.lock().unwrap();
                if op == 2 {
                    assert_eq!(r.status, 200, "{:?}", r.body);
                    a.sessions.insert(k, Session::Live(tokens(&r).1));
                    a.rotated.push((k, token));
                } else {
                    assert_eq!(r.status, 204, "{:?}", r.body);
                    a.sessions.insert(k, Session::SignedOut(token));
                }
            }
        }
        acked.lock().unwrap().writes += 1;
    }
}

/// Session numbers per writer, so writers never share one.
fn next_session(a: &mut Acked, id: usize) -> usize {
    while a.next_session % 4 != id {
        a.next_session += 1;
    }
    a.next_session += 1;
    a.next_session - 1
}

/// Checks every acknowledged fact against the restarted gateway.
async fn verify(c: &Client, acked: &Mutex<Acked>, cycle: usize) {
    let (users, sessions, rotated) = {
        let a = acked.lock().unwrap();
        (a.users.clone(), a.sessions.clone(), a.rotated.clone())
    };
    for email in &users {
        let r = post(c, "/signin", &json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(
            r.status, 200,
            "cycle {cycle}: acknowledged user {email} lost"
        );
    }
    for (k, s) in &sessions {
        match s {
            Session::Live(t) => {
                let r = post(c, "/refresh-token", &json!({"refreshToken": t})).await;
                assert_eq!(
                    r.status, 200,
                    "cycle {cycle}: session {k}'s acknowledged token is refused: {:?}",
                    r.body
                );
                // The check rotated it: that too is now an acknowledged write.
                acked
                    .lock()
                    .unwrap()
                    .sessions
                    .insert(*k, Session::Live(tokens(&r).1));
            }
            Session::SignedOut(t) => {
                let r = post(c, "/refresh-token", &json!({"refreshToken": t})).await;
                assert_eq!(
                    r.status, 403,
                    "cycle {cycle}: session {k} came back after sign-out"
                );
            }
            Session::Unknown => {}
        }
    }
    // A rotated-away token must stay used. Reusing it revokes its session
    // (reuse detection), so check the one from the latest rotation only.
    if let Some((k, old)) = rotated.last() {
        if matches!(sessions.get(k), Some(Session::Live(_))) {
            let r = post(c, "/refresh-token", &json!({"refreshToken": old})).await;
            assert_eq!(r.status, 403, "cycle {cycle}: a rotated token works again");
            acked.lock().unwrap().sessions.insert(*k, Session::Unknown);
        }
    }
}

async fn twenty_kill_9s_under_mixed_writes_lose_no_acknowledged_write(backend: Backend) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let mut gw = Binary::serve(
        auth_config_on(backend).set("auth.signin_limit", "{ failures: 1000, window: 1m }"),
    )
    .await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    for cycle in 0..20 {
        let writers: Vec<_> = (0..4)
            .map(|id| {
                let w = writer(
                    gw.client(),
                    acked.clone(),
                    cycle,
                    id,
                    Rng(seed.wrapping_mul(cycle as u64 * 4 + id as u64 + 1) | 1),
                );
                tokio::spawn(w)
            })
            .collect();
        // A random moment once writes are flowing: 50 to 550 ms.
        let before = acked.lock().unwrap().writes;
        crate::harness::eventually("writes to start", Duration::from_secs(20), || {
            acked.lock().unwrap().writes > before
        })
        .await;
        tokio::time::sleep(Duration::from_millis(50 + rng.below(500) as u64)).await;
        gw = gw.kill_and_restart().await;
        for w in writers {
            w.await.unwrap();
        }
        verify(&gw.client(), &acked, cycle).await;
    }
    let a = acked.lock().unwrap();
    println!(
        "{} acknowledged writes, {} users, {} sessions",
        a.writes,
        a.users.len(),
        a.sessions.len()
    );
    assert!(a.writes > 100, "too few writes to mean much: {}", a.writes);
}

crate::on_both_stores!(twenty_kill_9s_under_mixed_writes_lose_no_acknowledged_write,);
