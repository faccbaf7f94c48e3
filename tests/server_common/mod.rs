//! A fake model behind the server's `Backend` trait, and a test server on a loopback port.
//! The fake "model" answers any prompt that ends in a non-letter with the alphabet, one letter
//! per token, then end-of-generation: deterministic text to assert on.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bitnet_gguf::serve::http::backend::{
    Backend, ChatTurn, ModelMeta, SamplerConfig, TextModel, TokenSampler, TokenText,
};
use bitnet_gguf::serve::http::scheduler::{self, SchedConfig};
use bitnet_gguf::serve::http::{self, LoadSettings, Loader, ServeConfig};
use bitnet_gguf::serve::options::KeepAlive;
use bitnet_gguf::serve::store::Store;

pub const BOS: u32 = 1;
pub const EOS: u32 = 2;

pub struct Fake {
    pub meta: ModelMeta,
    pub step_delay: Duration,
}

pub struct Greedy;
impl TokenSampler for Greedy {
    fn sample(&mut self, logits: &[f32], _h: &[u32]) -> u32 {
        bitnet_gguf::serve::http::backend::argmax(logits)
    }
}

fn next_token(last: u32) -> u32 {
    let c = last.wrapping_sub(3) as u8;
    if last >= 3 && c.is_ascii_lowercase() {
        if c == b'z' {
            EOS
        } else {
            c as u32 + 1 + 3
        }
    } else {
        b'a' as u32 + 3
    }
}

impl TokenText for Fake {
    fn piece(&self, id: u32) -> Vec<u8> {
        if id >= 3 {
            vec![(id - 3) as u8]
        } else {
            vec![]
        }
    }
    fn is_end_of_generation(&self, id: u32) -> bool {
        id == EOS
    }
}

impl TextModel for Fake {
    fn meta(&self) -> &ModelMeta {
        &self.meta
    }
    fn tokenize(&self, text: &str, add_bos: bool) -> anyhow::Result<Vec<u32>> {
        let mut v: Vec<u32> = if add_bos { vec![BOS] } else { vec![] };
        v.extend(text.bytes().map(|b| b as u32 + 3));
        Ok(v)
    }
    fn detokenize(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(
            &ids.iter()
                .filter(|&&i| i >= 3)
                .map(|&i| (i - 3) as u8)
                .collect::<Vec<_>>(),
        )
        .into_owned()
    }
    fn add_bos_default(&self) -> bool {
        true
    }
    fn bos_text(&self) -> Option<String> {
        None
    }
    fn render_chat(&self, m: &[ChatTurn]) -> anyhow::Result<String> {
        Ok(m.iter()
            .map(|t| format!("{}: {}\n", t.role, t.content))
            .collect::<String>()
            + "assistant:")
    }
    fn render_template(&self, _s: &str, m: &[ChatTurn]) -> anyhow::Result<String> {
        self.render_chat(m)
    }
    fn default_stops(&self) -> Vec<String> {
        vec![]
    }
    fn sampler(&self, _s: &SamplerConfig) -> Box<dyn TokenSampler> {
        Box::new(Greedy)
    }
}

pub struct Seq(Vec<u32>);

impl Fake {
    fn logits(&self, last: u32) -> Vec<f32> {
        let mut l = vec![0.0; 259];
        l[next_token(last) as usize] = 1.0;
        l
    }
}

impl Backend for Fake {
    type Seq<'a> = Seq;
    fn new_seq(&self, _n_ctx: usize) -> Seq {
        Seq(vec![])
    }
    fn seq_tokens(&self, s: &Seq) -> Vec<u32> {
        s.0.clone()
    }
    fn truncate(&self, s: &mut Seq, n: usize) {
        s.0.truncate(n)
    }
    fn forward_seqs(&self, seqs: &mut [&mut Seq], t: &[&[u32]]) -> anyhow::Result<Vec<Vec<f32>>> {
        std::thread::sleep(self.step_delay);
        Ok(seqs
            .iter_mut()
            .zip(t)
            .map(|(s, toks)| {
                s.0.extend_from_slice(toks);
                self.logits(*toks.last().unwrap())
            })
            .collect())
    }
    fn embed(&self, t: &[u32]) -> anyhow::Result<Vec<f32>> {
        Ok(vec![t.len() as f32, t.iter().sum::<u32>() as f32, 1.0])
    }
}

pub fn fake_loader(step_delay: Duration) -> Loader {
    Arc::new(move |_path, settings: &LoadSettings, metrics| {
        let meta = ModelMeta {
            architecture: "fake".into(),
            n_ctx_train: 512,
            n_vocab: 259,
            file_size: 1000,
            kv_bytes_per_token: 10,
            ..Default::default()
        };
        let cfg = SchedConfig {
            n_slots: settings.n_slots,
            n_ctx: settings.n_ctx.unwrap_or(512),
            max_queue: settings.max_queue,
        };
        Ok(scheduler::spawn(
            Arc::new(Fake { meta, step_delay }),
            cfg,
            metrics,
        ))
    })
}

pub struct TestServer {
    pub addr: String,
    pub store_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn start(n_slots: usize, max_queue: usize, step_delay: Duration) -> TestServer {
    start_with(
        n_slots,
        max_queue,
        fake_loader(step_delay),
        Some((
            "fake".to_string(),
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"),
        )),
    )
}

pub fn start_with(
    n_slots: usize,
    max_queue: usize,
    loader: Loader,
    default_model: Option<(String, PathBuf)>,
) -> TestServer {
    let store_dir = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        load: LoadSettings {
            n_slots,
            n_ctx: Some(256),
            threads: None,
            max_queue,
            kv_type: Default::default(),
            head_type: None,
            residency: Default::default(),
        },
        keep_alive: KeepAlive::For(Duration::from_secs(300)),
        max_loaded: 2,
        default_model,
        api_key: None,
        body_limit: 1 << 20,
        store: Store::new(store_dir.path().to_path_buf(), None),
    };
    let mut server = spawn_server(config, loader);
    server.store_dir = store_dir;
    server
}

/// Runs a server with `config` (its address must be a loopback one, port 0 for any) on a
/// thread of its own until the returned handle is dropped.
pub fn spawn_server(config: ServeConfig, loader: Loader) -> TestServer {
    let store_dir = tempfile::tempdir().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
            addr_tx
                .send(listener.local_addr().unwrap().to_string())
                .unwrap();
            http::run_on(listener, config, loader, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
    });
    let addr = addr_rx.recv().unwrap();
    TestServer {
        addr,
        store_dir,
        stop: Some(tx),
        thread: Some(thread),
    }
}

/// Starts a streaming POST, reads the status line, headers and the first body line, then
/// returns the open reader (drop it to disconnect).
pub fn open_stream(
    addr: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, String, BufReader<TcpStream>) {
    let mut s = TcpStream::connect(addr).unwrap();
    let b = body.to_string();
    write!(s, "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", b.len()).unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        if l.trim().is_empty() {
            break;
        }
    }
    // Chunked: size line, then data.
    let mut size = String::new();
    r.read_line(&mut size).unwrap();
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    (code, first, r)
}

/// The configuration `start` uses (2 slots, queue 16, the fake `-m` model), for tests that
/// change a field and run it with `spawn_server`.
pub fn test_config(store: &std::path::Path) -> ServeConfig {
    ServeConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        load: LoadSettings {
            n_slots: 2,
            n_ctx: Some(256),
            threads: None,
            max_queue: 16,
            kv_type: Default::default(),
            head_type: None,
            residency: Default::default(),
        },
        keep_alive: KeepAlive::For(Duration::from_secs(300)),
        max_loaded: 2,
        default_model: Some((
            "fake".to_string(),
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"),
        )),
        api_key: None,
        body_limit: 1 << 20,
        store: Store::new(store.to_path_buf(), None),
    }
}

/// A server with `tweak` applied to `test_config`, its store in a fresh temporary directory.
pub fn serve_with(loader: Loader, tweak: impl FnOnce(&mut ServeConfig)) -> TestServer {
    let store_dir = tempfile::tempdir().unwrap();
    let mut config = test_config(store_dir.path());
    tweak(&mut config);
    let mut server = spawn_server(config, loader);
    server.store_dir = store_dir;
    server
}
