//! The example HTTP API: `/`, `/version` and `/health` on `$PORT` (default 8080).

use common::Response;

const DEFAULT_PORT: u16 = 8080;

fn main() -> std::io::Result<()> {
    common::healthcheck_command(DEFAULT_PORT);
    // The image sets APP_VERSION from the build's VERSION argument.
    let version = std::env::var("APP_VERSION").unwrap_or_else(|_| env!("CARGO_PKG_VERSION").into());
    let addr = format!("0.0.0.0:{}", common::port_from_env(DEFAULT_PORT));
    common::serve(&addr, |method, path| match (method, path) {
        ("GET", "/") => Response::text(200, "hello from api\n"),
        ("GET", "/version") => {
            Response::json(format!("{{\"service\":\"api\",\"version\":\"{version}\"}}"))
        }
        ("GET", _) => Response::text(404, "not found\n"),
        _ => Response::text(405, "method not allowed\n"),
    })
}
