//! What the verbs that write a GGUF (`convert`, `quantize`, `dummy`) share: the `--dialect`
//! flag, the parsing of a named storage type, and the byte progress bar on a terminal.

use std::io::IsTerminal;

use bitnet_formats::Dialect;

/// `--dialect`; the default (`None`) lets the writer choose by the weight type.
#[derive(clap::Args, Default)]
pub struct DialectArg {
    /// Type ids and architecture names of the output: upstream (llama.cpp / Ollama: `bitnet`,
    /// TQ types; refuses i2_s/tl*), bitnet (bitnet.cpp: TL2 = 42), bitnet-2024 (the 2024 fork:
    /// TL2 = 39). Default: upstream for tq1_0/tq2_0, bitnet otherwise.
    #[arg(long, value_parser = parse_dialect)]
    pub dialect: Option<Dialect>,
}

fn parse_dialect(s: &str) -> Result<Dialect, String> {
    Dialect::from_name(s)
        .ok_or_else(|| format!("unknown dialect {s:?}; choose upstream, bitnet or bitnet-2024"))
}

/// `s` parsed by `parse`, or an error listing the accepted `names`.
pub fn parse_named_type<T>(
    s: &str,
    parse: impl FnOnce(&str) -> Option<T>,
    names: &[&str],
) -> Result<T, String> {
    parse(s).ok_or_else(|| format!("unknown type {s:?}; choose one of {}", names.join(", ")))
}

/// A bar over the bytes a writer has processed, drawn only when stderr is a terminal.
pub struct ByteProgress {
    tty: bool,
    bar: Option<indicatif::ProgressBar>,
    done: u64,
}

impl ByteProgress {
    pub fn new() -> ByteProgress {
        ByteProgress {
            tty: std::io::stderr().is_terminal(),
            bar: None,
            done: 0,
        }
    }

    pub fn start(&mut self, total_bytes: u64) {
        if !self.tty {
            return;
        }
        let b = indicatif::ProgressBar::new(total_bytes);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
            )
            .expect("static template"),
        );
        self.bar = Some(b);
    }

    /// One more tensor, `name`, of `bytes` done.
    pub fn advance(&mut self, name: &str, bytes: u64) {
        self.done += bytes;
        if let Some(b) = &self.bar {
            b.set_position(self.done);
            b.set_message(name.to_owned());
        }
    }

    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
