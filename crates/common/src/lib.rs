//! What the example services share: a small blocking HTTP/1.1 server with a health endpoint,
//! the client half of the container health check, and graceful configuration from the
//! environment. Standard library only, so the static binaries stay small.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A response: status code, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    pub fn json(body: impl Into<String>) -> Response {
        Response {
            status: 200,
            content_type: "application/json",
            body: body.into(),
        }
    }
}

/// The port from `$PORT`, else `default`.
pub fn port_from_env(default: u16) -> u16 {
    std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

/// Serves `handler(method, path)` forever on `addr`; `/health` always answers `ok`.
pub fn serve(addr: &str, handler: impl Fn(&str, &str) -> Response) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    eprintln!("listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if let Err(e) = answer(stream, &handler) {
            eprintln!("request failed: {e}");
        }
    }
    Ok(())
}

fn answer(mut stream: TcpStream, handler: &impl Fn(&str, &str) -> Response) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("/");
    let resp = if path == "/health" {
        Response::text(200, "ok\n")
    } else {
        handler(method, path)
    };
    let reason = match resp.status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    write!(
        stream,
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        resp.status,
        resp.content_type,
        resp.body.len(),
        resp.body
    )?;
    stream.flush()
}

/// GETs `http://127.0.0.1:{port}{path}`; true on a 200. The binary's `healthcheck` command,
/// so that a `scratch` image needs no shell or curl for its HEALTHCHECK.
pub fn probe(port: u16, path: &str) -> bool {
    let Ok(mut addrs) = ("127.0.0.1", port).to_socket_addrs() else {
        return false;
    };
    let Some(addr) = addrs.next() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Runs the `healthcheck` subcommand if asked: exits 0 when `/health` answers, 1 otherwise.
pub fn healthcheck_command(default_port: u16) {
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        let ok = probe(port_from_env(default_port), "/health");
        std::process::exit(if ok { 0 } else { 1 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_health_and_routes_and_probe_sees_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        std::thread::spawn(move || {
            serve(&format!("127.0.0.1:{port}"), |_, path| match path {
                "/hello" => Response::text(200, "hi"),
                _ => Response::text(404, "no"),
            })
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !probe(port, "/health") {
            assert!(
                std::time::Instant::now() < deadline,
                "server did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(probe(port, "/hello"));
        assert!(!probe(port, "/missing"));
    }

    #[test]
    fn probe_of_a_closed_port_is_false() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        assert!(!probe(port, "/health"));
    }
}
