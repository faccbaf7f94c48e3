//! A loopback mock of the Hugging Face Hub's protocol, served from files the test makes:
//! `GET /api/models/{repo}/revision/{rev}` (commit + siblings), `HEAD`/`GET
//! /{repo}/resolve/{rev}/{file}` (small files answered directly with their git blob SHA-1
//! ETag; LFS files redirected to `/lfs/{sha256}` with `X-Linked-Etag`/`X-Linked-Size`), and
//! `/lfs/{sha256}` with `Range` support. Faults on demand: a required bearer token, one
//! connection dropped after half of an LFS body, corrupted LFS bytes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha1::Sha1;
use sha2::{Digest, Sha256};

pub struct MockFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub lfs: bool,
}

impl MockFile {
    pub fn sha256(&self) -> String {
        hex(&Sha256::digest(&self.bytes))
    }
    pub fn git_sha1(&self) -> String {
        let mut h = Sha1::new();
        h.update(format!("blob {}\0", self.bytes.len()).as_bytes());
        h.update(&self.bytes);
        hex(&h.finalize())
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Default)]
pub struct MockState {
    /// repo → (commit, files)
    pub repos: HashMap<String, (String, Vec<MockFile>)>,
    /// When set, the Hub's own URLs answer 401 without `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The next full (un-ranged) LFS body stops after half its bytes, once.
    pub drop_half_once: bool,
    /// LFS bodies are served with one byte changed.
    pub corrupt: bool,
    /// Body bytes of files sent (resolve and LFS bodies).
    pub body_bytes: u64,
    /// `Range` headers received on LFS requests.
    pub ranges: Vec<String>,
    /// `Authorization` headers received, per path.
    pub auth_seen: Vec<(String, Option<String>)>,
}

pub struct MockHub {
    pub endpoint: String,
    pub state: Arc<Mutex<MockState>>,
}

impl MockHub {
    pub fn start() -> MockHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(MockState::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        MockHub { endpoint, state }
    }

    pub fn add_repo(&self, repo: &str, commit: &str, files: Vec<MockFile>) {
        self.state
            .lock()
            .unwrap()
            .repos
            .insert(repo.to_string(), (commit.to_string(), files));
    }

    pub fn body_bytes(&self) -> u64 {
        self.state.lock().unwrap().body_bytes
    }
}

fn respond(
    conn: &mut TcpStream,
    status: &str,
    headers: &[(String, String)],
    body: &[u8],
    send_body: bool,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers.iter().any(|(k, _)| k == "Content-Length") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    if send_body {
        conn.write_all(body)?;
    }
    conn.flush()
}

fn serve(mut conn: TcpStream, st: &Mutex<MockState>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let send_body = method != "HEAD";
    let auth = headers.get("authorization").cloned();
    let mut s = st.lock().unwrap();
    s.auth_seen.push((path.clone(), auth.clone()));
    let authorized = s
        .token
        .as_ref()
        .is_none_or(|t| auth.as_deref() == Some(&format!("Bearer {t}")));

    if let Some(sha) = path.strip_prefix("/lfs/") {
        let Some(bytes) = s
            .repos
            .values()
            .flat_map(|(_, f)| f.iter())
            .find(|f| f.lfs && f.sha256() == sha)
            .map(|f| f.bytes.clone())
        else {
            return respond(&mut conn, "404 Not Found", &[], b"", true);
        };
        let mut bytes = bytes;
        if s.corrupt {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x55;
        }
        let total = bytes.len();
        if let Some(r) = headers.get("range") {
            s.ranges.push(r.clone());
            let from: usize = r
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap();
            let part = &bytes[from.min(total)..];
            s.body_bytes += part.len() as u64;
            let hdr = vec![(
                "Content-Range".to_string(),
                format!("bytes {from}-{}/{total}", total - 1),
            )];
            drop(s);
            return respond(&mut conn, "206 Partial Content", &hdr, part, send_body);
        }
        if s.drop_half_once {
            s.drop_half_once = false;
            let half = total / 2;
            s.body_bytes += half as u64;
            drop(s);
            let hdr = vec![("Content-Length".to_string(), total.to_string())];
            respond(&mut conn, "200 OK", &hdr, &bytes[..half], send_body)?;
            // Closing now leaves the client short of the announced length.
            return conn.shutdown(std::net::Shutdown::Both);
        }
        s.body_bytes += total as u64;
        drop(s);
        return respond(&mut conn, "200 OK", &[], &bytes, send_body);
    }

    if !authorized {
        return respond(&mut conn, "401 Unauthorized", &[], b"", send_body);
    }
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((repo, _rev)) = rest.split_once("/revision/") else {
            return respond(&mut conn, "404 Not Found", &[], b"", send_body);
        };
        let Some((commit, files)) = s.repos.get(repo) else {
            return respond(&mut conn, "404 Not Found", &[], b"", send_body);
        };
        let siblings: Vec<_> = files
            .iter()
            .map(|f| serde_json::json!({ "rfilename": f.name }))
            .collect();
        let body = serde_json::json!({"id": repo, "sha": commit, "siblings": siblings}).to_string();
        return respond(&mut conn, "200 OK", &[], body.as_bytes(), send_body);
    }
    // /{org}/{repo}/resolve/{rev}/{file}
    let Some((repo, rest)) = path.trim_start_matches('/').split_once("/resolve/") else {
        return respond(&mut conn, "404 Not Found", &[], b"", send_body);
    };
    let Some((_, file)) = rest.split_once('/') else {
        return respond(&mut conn, "404 Not Found", &[], b"", send_body);
    };
    let Some((commit, files)) = s.repos.get(repo) else {
        return respond(&mut conn, "404 Not Found", &[], b"", send_body);
    };
    let Some(f) = files.iter().find(|f| f.name == file) else {
        return respond(&mut conn, "404 Not Found", &[], b"", send_body);
    };
    let mut hdr = vec![("X-Repo-Commit".to_string(), commit.clone())];
    if f.lfs {
        hdr.push(("Location".into(), format!("/lfs/{}", f.sha256())));
        hdr.push(("X-Linked-Etag".into(), format!("\"{}\"", f.sha256())));
        hdr.push(("X-Linked-Size".into(), f.bytes.len().to_string()));
        hdr.push(("ETag".into(), "\"not-the-content-digest\"".into()));
        return respond(&mut conn, "302 Found", &hdr, b"", send_body);
    }
    hdr.push(("ETag".into(), format!("\"{}\"", f.git_sha1())));
    let bytes = f.bytes.clone();
    if send_body {
        s.body_bytes += bytes.len() as u64;
    }
    drop(s);
    respond(&mut conn, "200 OK", &hdr, &bytes, send_body)
}
