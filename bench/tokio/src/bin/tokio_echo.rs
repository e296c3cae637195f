//! tokio_echo: TCP echo server, the Tokio baseline for the echo benchmark.
//!
//! Usage: tokio_echo [ADDR]        (default 127.0.0.1:8080; port 0 picks one)
//!
//! Environment: BLZ_WORKERS = worker threads (default: one per CPU).
//! On start it prints the bound address, alone on one line, to stdout, so a
//! driver script can read the port. It runs until SIGINT or SIGTERM.
//!
//! Each connection is one task that reads into a 16 KiB buffer and writes
//! back everything it read, until the peer closes or an error occurs.

use std::io::Write;
use std::net::SocketAddr;
use std::process::exit;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

const DEFAULT_ADDR: &str = "127.0.0.1:8080";
const BUF_SIZE: usize = 16 * 1024;

fn die(msg: &str) -> ! {
    eprintln!("tokio_echo: {}", msg);
    exit(1);
}

async fn echo(mut s: TcpStream) {
    // Echo traffic is small request/response; do not let Nagle batch it.
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn accept_loop(l: TcpListener) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                tokio::spawn(echo(s));
            }
            Err(e) => {
                // Typically EMFILE; back off instead of spinning on it.
                eprintln!("tokio_echo: accept: {}", e);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn main() {
    let addr_arg = std::env::args().nth(1);
    let addr: SocketAddr = addr_arg
        .as_deref()
        .unwrap_or(DEFAULT_ADDR)
        .parse()
        .unwrap_or_else(|_| die("usage: tokio_echo [IP:PORT]"));

    let mut b = Builder::new_multi_thread();
    b.enable_all();
    if let Ok(v) = std::env::var("BLZ_WORKERS") {
        match v.parse::<usize>() {
            Ok(n) if n > 0 => {
                b.worker_threads(n);
            }
            _ => die("BLZ_WORKERS must be a positive integer"),
        }
    }
    let rt = b
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {}", e)));

    // Register the signal handlers before announcing the address, so a
    // driver that signals right after reading it is never lost.
    let stop = Arc::new(Notify::new());
    rt.block_on(async {
        for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
            let mut sig = signal(kind).unwrap_or_else(|e| die(&format!("signal: {}", e)));
            let stop = stop.clone();
            tokio::spawn(async move {
                sig.recv().await;
                // With nobody waiting yet, notify_one stores a permit.
                stop.notify_one();
            });
        }
        let l = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| die(&format!("bind {}: {}", addr, e)));
        let local = l.local_addr().unwrap_or(addr);
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{}", local);
        let _ = out.flush();
        tokio::spawn(accept_loop(l));
        stop.notified().await;
    });
    // Open connections are simply dropped with their tasks.
    rt.shutdown_timeout(Duration::from_secs(1));
}
