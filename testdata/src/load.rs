//! Load for servers under test: keep-alive HTTP/1.1 clients that count the status of
//! every answer, and a process's memory; shared by the CLI's and the shim's load tests.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The request each client sends.
const REQUEST: &[u8] = b"GET /hello HTTP/1.1\r\nhost: localhost\r\n\r\n";

/// `VmRSS` and `VmHWM` (peak) of `pid`, in bytes.
pub fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One keep-alive connection sending `requests` GETs in turn: the status of each answer
/// (0 for a connection that failed before answering).
pub async fn client(addr: String, requests: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(requests);
    let Ok(stream) = tokio::net::TcpStream::connect(&addr).await else {
        return vec![0; requests];
    };
    let mut stream = BufReader::new(stream);
    for _ in 0..requests {
        if stream.get_mut().write_all(REQUEST).await.is_err() {
            break;
        }
        let mut status = 0;
        let mut length = 0usize;
        let mut close = false;
        let mut chunked = false;
        let mut line = String::new();
        loop {
            line.clear();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                close = true;
                break;
            }
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("http/1.1 ") {
                status = lower[9..12].parse().unwrap_or(0);
            } else if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            } else if lower.trim() == "transfer-encoding: chunked" {
                chunked = true;
            } else if lower.trim() == "connection: close" {
                close = true;
            } else if line == "\r\n" {
                break;
            }
        }
        if status == 0 || !body(&mut stream, chunked, length).await {
            break;
        }
        statuses.push(status);
        if close {
            break;
        }
    }
    statuses.resize(requests, 0);
    statuses
}

/// Reads a response body: `length` bytes, or chunks; whether it was whole.
async fn body(stream: &mut BufReader<tokio::net::TcpStream>, chunked: bool, length: usize) -> bool {
    if !chunked {
        return stream.read_exact(&mut vec![0; length]).await.is_ok();
    }
    let mut line = String::new();
    // Bounded: a hello's body is one chunk.
    for _ in 0..64 {
        line.clear();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return false;
        }
        let Ok(size) = usize::from_str_radix(line.trim(), 16) else {
            return false;
        };
        // The chunk and its CRLF (the last chunk's CRLF ends the body).
        if stream.read_exact(&mut vec![0; size + 2]).await.is_err() {
            return false;
        }
        if size == 0 {
            return true;
        }
    }
    false
}

/// `connections` clients at once, `each` requests apiece, against `addr`: the status of
/// every request (0: not answered). Bounded by `limit` (panics past it); runs on the
/// calling thread (which may have entered a pod's network namespace).
pub fn load(addr: &str, connections: usize, each: usize, limit: std::time::Duration) -> Vec<u16> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let clients: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(client(addr.to_owned(), each)))
            .collect();
        tokio::time::timeout(limit, async {
            let mut all = Vec::with_capacity(connections * each);
            for c in clients {
                all.extend(c.await.expect("a client panicked"));
            }
            all
        })
        .await
        .unwrap_or_else(|_| panic!("{connections} clients took over {limit:?}"))
    })
}
