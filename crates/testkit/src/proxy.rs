//! A TCP proxy that can take a service away and give it back: [`Proxy::cut`] closes every
//! connection through it and stops listening, so clients see their connections drop and new
//! ones refused, exactly as when the service's host goes down; [`Proxy::restore`] listens on
//! the same port again. A broker started with `Broker::start_with(port, &proxy.addr())`
//! advertises the proxy, so every client (bootstrap and partition leaders alike) goes through
//! it: an outage of any length without restarting the broker, whose own restart bugs would
//! otherwise be what a test measures.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A loopback TCP proxy to `target`, on a port of its own.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    target: String,
    listener: Mutex<Option<TcpListener>>,
    /// Both sides of every open connection, to shut them down on a cut.
    open: Mutex<Vec<TcpStream>>,
    done: AtomicBool,
    accepted: AtomicUsize,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `target` (which need
    /// not be up yet: a connection made while it is not is closed at once).
    pub fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: cannot bind");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            target: target.to_owned(),
            listener: Mutex::new(Some(listener)),
            open: Mutex::new(Vec::new()),
            done: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || s.accept_loop());
        Proxy {
            port,
            shared,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:port`, the address clients use.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far (a test can check its clients really went through).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Takes the service away: stops listening (new connections are refused) and shuts down
    /// every open connection in both directions.
    pub fn cut(&self) {
        drop(self.shared.listener.lock().unwrap().take());
        for s in self.shared.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        // The port must refuse from now on, or the outage is not one.
        assert!(
            TcpStream::connect(self.addr()).is_err(),
            "proxy: {} still accepts after the cut",
            self.addr()
        );
    }

    /// Gives the service back on the same port.
    pub fn restore(&self) {
        let mut slot = self.shared.listener.lock().unwrap();
        assert!(slot.is_none(), "proxy: restore without a cut");
        let start = std::time::Instant::now();
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if start.elapsed() < Duration::from_secs(10) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("proxy: cannot listen on {} again: {e}", self.port),
            }
        };
        listener.set_nonblocking(true).unwrap();
        *slot = Some(listener);
    }
}

impl Shared {
    fn accept_loop(self: Arc<Self>) {
        while !self.done.load(Ordering::SeqCst) {
            let accepted = {
                let guard = self.listener.lock().unwrap();
                match guard.as_ref().map(TcpListener::accept) {
                    Some(Ok((client, _))) => Some(client),
                    Some(Err(e)) if e.kind() != ErrorKind::WouldBlock => None,
                    _ => None,
                }
            };
            match accepted {
                Some(client) => self.forward(client),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    fn forward(&self, client: TcpStream) {
        self.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = client.set_nonblocking(false);
        let Ok(upstream) = TcpStream::connect(&self.target) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        {
            let mut open = self.open.lock().unwrap();
            open.retain(|s| s.peer_addr().is_ok());
            open.push(client.try_clone().unwrap());
            open.push(upstream.try_clone().unwrap());
        }
        pipe(client.try_clone().unwrap(), upstream.try_clone().unwrap());
        pipe(upstream, client);
    }
}

/// Copies `from` into `to` on a thread until either side closes, then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.done.store(true, Ordering::SeqCst);
        drop(self.shared.listener.lock().unwrap().take());
        for s in self.shared.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server, the proxy in front: bytes pass, a cut drops the connection and refuses
    /// new ones, a restore serves again on the same port.
    #[test]
    fn a_cut_drops_and_refuses_connections_and_a_restore_serves_again() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = echo.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for s in echo.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = std::io::copy(&mut r, &mut w);
                });
            }
        });
        let proxy = Proxy::start(&target);
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");

        proxy.cut();
        let mut rest = Vec::new();
        // The open connection ends (EOF or reset), it does not hang.
        let ended = matches!(c.read_to_end(&mut rest), Ok(0) | Err(_));
        assert!(ended, "the connection survived the cut");
        assert!(TcpStream::connect(proxy.addr()).is_err());

        proxy.restore();
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"pong").unwrap();
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
        assert_eq!(proxy.accepted(), 2);
    }
}
