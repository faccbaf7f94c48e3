//! `pull hf.co/ORG/REPO[:TYPE]`: the store's pull with a progress bar per layer (bytes/s, ETA)
//! on a terminal, status lines otherwise.

use std::io::IsTerminal;

use bitnet_gguf::serve::hub::HubConfig;
use bitnet_gguf::serve::store::pull::{self, PullEvent, PullOptions};
use bitnet_gguf::serve::store::Store;

#[derive(clap::Args)]
pub struct PullArgs {
    /// `hf.co/ORG/REPO[:TYPE]` (or `huggingface.co/…`): TYPE picks the repository's GGUF of that
    /// quant type (default: its only GGUF, or the I2_S one).
    pub model: String,
    /// Storage of the ternary weights when the repository holds a safetensors checkpoint
    /// (converted on the fly): i2_s (default), i2_s-arm, tl1, tl2, tq1_0, tq2_0, f16, f32.
    #[arg(long = "type")]
    pub weight_type: Option<String>,
}

/// Renders pull events: one bar per layer on a terminal, the status lines otherwise.
pub struct PullView {
    tty: bool,
    bar: Option<(String, indicatif::ProgressBar)>,
}

impl PullView {
    pub fn new() -> PullView {
        PullView {
            tty: std::io::stderr().is_terminal(),
            bar: None,
        }
    }

    fn end_bar(&mut self) {
        if let Some((_, b)) = self.bar.take() {
            b.finish();
        }
    }

    pub fn event(&mut self, e: PullEvent) {
        match e {
            PullEvent::Status(s) => {
                self.end_bar();
                if !self.tty || !s.starts_with("pulling ") || s == "pulling manifest" {
                    println!("{s}");
                }
            }
            PullEvent::Progress {
                digest,
                total,
                completed,
            } if self.tty => {
                if self.bar.as_ref().is_none_or(|(d, _)| d != digest) {
                    self.end_bar();
                    let b = indicatif::ProgressBar::new(total);
                    b.set_style(
                        indicatif::ProgressStyle::with_template(
                            "pulling {msg} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                        )
                        .expect("static template"),
                    );
                    let short = digest
                        .strip_prefix("sha256:")
                        .map_or(digest, |h| &h[..12.min(h.len())]);
                    b.set_message(short.to_string());
                    self.bar = Some((digest.to_string(), b));
                }
                if let Some((_, b)) = &self.bar {
                    b.set_position(completed);
                }
            }
            PullEvent::Progress { .. } => {}
        }
    }
}

pub fn pull(args: PullArgs) -> anyhow::Result<()> {
    let store = Store::from_env(None);
    let opts = PullOptions {
        hub: HubConfig::from_env(),
        weight_type: args.weight_type,
    };
    let mut view = PullView::new();
    let r = pull::pull(&store, &args.model, &opts, &mut |e| view.event(e));
    view.end_bar();
    r
}
