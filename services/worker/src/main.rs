//! The example background worker: processes a queue of jobs on a timer and reports progress on
//! `/status`, with `/health` for the container health check, on `$PORT` (default 8081).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Response;

const DEFAULT_PORT: u16 = 8081;

fn main() -> std::io::Result<()> {
    common::healthcheck_command(DEFAULT_PORT);
    let done = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&done);
    std::thread::spawn(move || loop {
        // One "job": in a real worker, a message from a queue.
        counter.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs(1));
    });
    let addr = format!("0.0.0.0:{}", common::port_from_env(DEFAULT_PORT));
    common::serve(&addr, move |method, path| match (method, path) {
        ("GET", "/status") => Response::json(format!(
            "{{\"service\":\"worker\",\"jobs_done\":{}}}",
            done.load(Ordering::Relaxed)
        )),
        _ => Response::text(404, "not found\n"),
    })
}
