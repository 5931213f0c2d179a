//! A lean HTTP/1.1 keep-alive client for load phases: one connection per
//! simulated client, each request written and its answer read on the
//! client's own task (no connection task, no pool, no redirect or retry
//! layers), so the load generator, which shares the machine with the server,
//! takes as little of its CPU as it can. Answers are read by their
//! `Content-Length`; anything else (chunked bodies, `Connection: close`) is
//! an error, never a guess.

use anyhow::{Context as _, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most header lines in an answer.
const MAX_HEADERS: usize = 32;

/// One keep-alive connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    host: String,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to `base` (`http://host:port`).
    pub async fn open(base: &str) -> anyhow::Result<Self> {
        let host = base
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("{base}: only http:// is spoken here"))?
            .trim_end_matches('/')
            .to_owned();
        let stream = TcpStream::connect(&host)
            .await
            .with_context(|| format!("cannot connect to {host}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host,
            out: Vec::with_capacity(1024),
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends one request (a JSON `body` if given) and reads its answer:
    /// `(status, body)`.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&[u8]>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        self.out.clear();
        self.out
            .extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host).as_bytes());
        if let Some(t) = bearer {
            self.out
                .extend_from_slice(format!("Authorization: Bearer {t}\r\n").as_bytes());
        }
        if let Some(b) = body {
            self.out.extend_from_slice(
                format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()).as_bytes(),
            );
        }
        self.out.extend_from_slice(b"\r\n");
        if let Some(b) = body {
            self.out.extend_from_slice(b);
        }
        self.stream.write_all(&self.out).await?;
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> anyhow::Result<(u16, Vec<u8>)> {
        loop {
            if let Some((status, head, len)) = parse_head(&self.buf)? {
                while self.buf.len() < head + len {
                    self.fill().await?;
                }
                let body = self.buf.get(head..head + len).unwrap_or_default().to_vec();
                self.buf.drain(..head + len);
                return Ok((status, body));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection mid-answer");
        }
        self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(())
    }
}

/// `(status, header length, body length)` once the head is complete.
fn parse_head(buf: &[u8]) -> anyhow::Result<Option<(u16, usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = res.parse(buf)? else {
        return Ok(None);
    };
    let status = res.code.ok_or_else(|| anyhow!("an answer without a status"))?;
    let mut len = None;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = Some(std::str::from_utf8(h.value)?.trim().parse::<usize>()?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("a chunked answer; this client reads Content-Length only");
        } else if h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close") {
            bail!("the server is closing the connection");
        }
    }
    Ok(Some((status, head, len.unwrap_or(0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_by_content_length() {
        let a = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_head(a).unwrap(), Some((200, a.len() - 2, 2)));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n").is_err());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
