//! Shared helpers for the tests that drive the real `bitnet-gguf` binary: running a verb and
//! capturing its output, and starting `serve` on a free local port.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The committed tiny model, relative to the repository root (the commands' working directory).
pub const TINY: &str = "models/tiny-bitnet-b1.58.gguf";

/// How long `serve` may take to answer: the tiny model loads in well under a second, but the
/// machine may be busy building.
const SERVE_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// The tiny model's absolute path, for commands run outside the repository root.
pub fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(TINY)
}

/// The binary with `args`, run from the repository root so that relative model paths resolve.
pub fn cli(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitnet-gguf"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// Runs `args` from the repository root and captures its output.
pub fn bitnet_gguf(args: &[&str]) -> Output {
    cli(args).output().expect("running bitnet-gguf")
}

/// Runs `cmd` with `input` on its standard input and captures its output.
pub fn output_with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running bitnet-gguf");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `out` of the run of `args`, after asserting that it succeeded.
pub fn succeeded(args: &[&str], out: Output) -> Output {
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `bitnet-gguf serve`; killed when dropped.
pub struct ServeProcess {
    pub child: Child,
    pub addr: String,
}

impl ServeProcess {
    /// Starts `cmd` (a `serve` command with its flags and environment) on a free local port
    /// and waits until it answers `GET /`. Panics with its stderr (when piped) if it does not.
    pub fn start(mut cmd: Command) -> ServeProcess {
        let addr = format!("127.0.0.1:{}", free_port());
        cmd.env("OLLAMA_HOST", &addr)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let child = cmd.spawn().expect("starting bitnet-gguf serve");
        let mut server = ServeProcess { child, addr };
        let started = Instant::now();
        while !server.answers() {
            let exited = server.child.try_wait().unwrap().is_some();
            if exited || started.elapsed() > SERVE_UP_TIMEOUT {
                panic!("the server did not come up: {}", server.stop());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn answers(&self) -> bool {
        bitnet_gguf::serve::http::client::request(&self.addr, "GET", "/", None)
            .is_ok_and(|r| r.status == 200)
    }

    /// What the server wrote to its piped stderr, read to the end: call it once the process
    /// has exited (or use `stop`). Empty when stderr was not piped.
    pub fn stderr_text(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut err).unwrap();
        }
        err
    }

    /// Kills the server and returns its stderr.
    pub fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr_text()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(prompt tokens, generated tokens)`: the numbers after `prompt:` and `generation:` in the
/// summary `run --verbose` writes to stderr.
pub fn verbose_counts(out: &Output) -> (usize, usize) {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("prompt: ")).unwrap();
    let n = |key: &str| -> usize {
        let rest = &line[line.find(key).unwrap() + key.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    (n("prompt: "), n("generation: "))
}
