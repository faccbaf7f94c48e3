//! Reading the user's lines: a line editor with history at a terminal (rustyline: the most
//! used Rust readline, with emacs/vi keys, history search and a history file), plain lines
//! from a pipe; `"""` opens and closes a message of several lines.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

/// What one read gave.
pub enum Read {
    Line(String),
    /// Ctrl-C at the prompt.
    Interrupted,
    /// Ctrl-D, or the end of piped input.
    Eof,
}

pub struct Input {
    editor: Option<DefaultEditor>,
    history: Option<PathBuf>,
    /// Set by Ctrl-C (SIGINT) while a reply is generated.
    interrupt: Arc<AtomicBool>,
}

impl Input {
    /// A line editor when standard input is a terminal (then Ctrl-C no longer ends the
    /// process: it stops a reply, or clears the prompt), else plain lines.
    pub fn new(history: Option<PathBuf>) -> Result<Input> {
        let interrupt = Arc::new(AtomicBool::new(false));
        if !std::io::stdin().is_terminal() {
            return Ok(Input {
                editor: None,
                history: None,
                interrupt,
            });
        }
        signal_hook::flag::register(signal_hook::consts::SIGINT, interrupt.clone())?;
        let mut editor = DefaultEditor::new()?;
        if let Some(h) = &history {
            let _ = editor.load_history(h); // absent on first use
        }
        Ok(Input {
            editor: Some(editor),
            history,
            interrupt,
        })
    }

    /// Clears a pending Ctrl-C before a reply starts.
    pub fn arm(&self) {
        self.interrupt.store(false, Ordering::SeqCst);
    }

    /// Whether Ctrl-C came since [`Input::arm`].
    pub fn interrupted(&self) -> bool {
        self.interrupt.load(Ordering::SeqCst)
    }

    /// One message: a line, or the lines between `"""` and `"""` joined by newlines.
    pub fn message(&mut self) -> Result<Read> {
        let first = match self.line(">>> ")? {
            Read::Line(l) => l,
            other => return Ok(other),
        };
        let Some(rest) = first.trim_start().strip_prefix("\"\"\"") else {
            return Ok(Read::Line(first));
        };
        if let Some(body) = rest.strip_suffix("\"\"\"") {
            return Ok(Read::Line(body.to_string()));
        }
        let mut lines = vec![rest.to_string()];
        loop {
            match self.line("... ")? {
                Read::Line(l) => match l.trim_end().strip_suffix("\"\"\"") {
                    Some(last) => {
                        lines.push(last.to_string());
                        break;
                    }
                    None => lines.push(l),
                },
                other => return Ok(other),
            }
        }
        let text = lines.join("\n");
        Ok(Read::Line(text.trim_matches('\n').to_string()))
    }

    fn line(&mut self, prompt: &str) -> Result<Read> {
        let Some(editor) = &mut self.editor else {
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line)? == 0 {
                return Ok(Read::Eof);
            }
            return Ok(Read::Line(line.trim_end_matches(['\n', '\r']).to_string()));
        };
        match editor.readline(prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(h) = &self.history {
                        let _ = editor.save_history(h);
                    }
                }
                Ok(Read::Line(line))
            }
            Err(ReadlineError::Interrupted) => Ok(Read::Interrupted),
            Err(ReadlineError::Eof) => Ok(Read::Eof),
            Err(e) => Err(e.into()),
        }
    }
}
