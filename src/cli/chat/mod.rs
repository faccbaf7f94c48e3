//! The interactive chat of `chat` and of `run` without a prompt at a terminal, as Ollama's:
//! slash commands (`/?`), `"""` for messages of several lines, Ctrl-C to stop a reply with the
//! conversation kept, and a context that never runs out (the oldest turns are dropped from the
//! prompt, and a reply that fills the context shifts it).

mod commands;
pub mod fit;
mod input;

use std::io::Write;

use anyhow::Result;
use serde_json::{Map, Value};

use bitnet_gguf::engine::chat::ChatMessage;
use bitnet_gguf::engine::generate::{generate_with, GenerateParams, LongRun};
use bitnet_gguf::engine::model::{Model, Session};
use bitnet_gguf::serve::store::{Entry, Store};

use super::run::{load, ContextArgs, ModelArgs, SamplingArgs};
use super::run_modelfile;
use input::{Input, Read};

/// Everything a chat starts from (the command line).
pub struct ChatSetup {
    pub model: ModelArgs,
    pub sampling: SamplingArgs,
    pub system: Option<String>,
    pub context: ContextArgs,
    pub verbose: bool,
}

/// How a conversation ended.
enum Leave {
    Quit,
    /// `/load NAME`: start over with that model.
    Load(String),
}

/// Runs the chat until `/bye` or Ctrl-D; `/load` swaps the model in place.
pub fn repl(setup: ChatSetup) -> Result<()> {
    let history = Some(Store::from_env(None).root.join("history"));
    if let Some(dir) = history.as_ref().and_then(|h| h.parent()) {
        let _ = std::fs::create_dir_all(dir); // without it, only the history is lost
    }
    let mut input = Input::new(history)?;
    let mut args = setup.model.clone();
    loop {
        let (entry, settings) = run_modelfile::modelfile_for(&mut args)?;
        let model = load(&args, true, setup.verbose)?;
        let params =
            run_modelfile::generation_params(&model, settings, &setup.sampling, true, false);
        let initial = run_modelfile::initial_messages(entry.as_ref(), setup.system.as_deref());
        let mut chat = Conversation::new(&model, entry.as_ref(), initial, params, &setup);
        match chat.run(&mut input)? {
            Leave::Quit => return Ok(()),
            Leave::Load(name) => {
                args = ModelArgs {
                    model: Some(name),
                    ..setup.model.clone()
                };
            }
        }
    }
}

/// One model's conversation.
struct Conversation<'m> {
    model: &'m Model,
    entry: Option<&'m Entry>,
    session: Session<'m>,
    system: Option<String>,
    /// The Modelfile's `MESSAGE`s, where `/clear` goes back to.
    initial: Vec<ChatMessage>,
    /// Every message after the system one.
    messages: Vec<ChatMessage>,
    params: GenerateParams,
    /// `/set parameter`s, kept for `/show parameters` and `/save`.
    set_params: Map<String, Value>,
    context: ContextArgs,
    verbose: bool,
}

impl<'m> Conversation<'m> {
    fn new(
        model: &'m Model,
        entry: Option<&'m Entry>,
        mut initial: Vec<ChatMessage>,
        params: GenerateParams,
        setup: &ChatSetup,
    ) -> Self {
        let system = match initial.first() {
            Some(m) if m.role == "system" => Some(initial.remove(0).content),
            _ => None,
        };
        Conversation {
            model,
            entry,
            session: model.new_session(model.default_n_ctx()),
            system,
            messages: initial.clone(),
            initial,
            params,
            set_params: Map::new(),
            context: setup.context.clone(),
            verbose: setup.verbose,
        }
    }

    fn name(&self) -> String {
        self.entry.map_or_else(
            || self.model.path().display().to_string(),
            |e| e.name.to_string(),
        )
    }

    fn run(&mut self, input: &mut Input) -> Result<Leave> {
        eprintln!(
            "chat with {} — /? for help, Ctrl-C stops a reply, Ctrl-D or /bye leaves",
            self.name()
        );
        loop {
            let line = match input.message()? {
                Read::Line(l) => l,
                Read::Interrupted => {
                    eprintln!("Use Ctrl + d or /bye to exit.");
                    continue;
                }
                Read::Eof => return Ok(Leave::Quit),
            };
            if line.trim().is_empty() {
                continue;
            }
            if line.trim_start().starts_with('/') {
                if let Some(leave) = self.command(line.trim())? {
                    return Ok(leave);
                }
                continue;
            }
            self.answer(line, input)?;
        }
    }

    /// The messages as the template sees them: the system one first.
    fn all_messages(&self) -> Vec<ChatMessage> {
        let system = self
            .system
            .iter()
            .map(|s| ChatMessage::new("system", s.clone()));
        system.chain(self.messages.iter().cloned()).collect()
    }

    /// Answers `text`, streaming the reply; Ctrl-C ends the reply early and keeps what came.
    fn answer(&mut self, text: String, input: &Input) -> Result<()> {
        self.messages.push(ChatMessage::new("user", text));
        let n_ctx = self.session.n_ctx();
        let max = self.params.max_tokens;
        let all = self.all_messages();
        let fitted = fit::fit_chat(self.model, self.entry, &all, n_ctx, max, self.context.keep)?;
        let how = LongRun {
            shift_keep: (!self.context.no_context_shift).then_some(fitted.keep),
            ignore_eos: self.context.ignore_eos,
        };
        let mut answer = String::new();
        let mut out = std::io::stdout();
        input.arm();
        let stats = generate_with(
            &mut self.session,
            &fitted.ids,
            &self.params,
            how,
            &mut |t| {
                answer.push_str(t);
                print!("{t}");
                out.flush().is_ok() && !input.interrupted()
            },
        )?;
        println!();
        if input.interrupted() {
            eprintln!("(stopped)");
        }
        if self.verbose {
            eprintln!(
                "[{} prompt tokens ({} cached, {} kept through a shift), {:.1} tok/s; {} generated, {:.1} tok/s]",
                stats.prompt_tokens,
                stats.cached_tokens,
                fitted.keep,
                stats.prompt_tok_per_s(),
                stats.generated_tokens,
                stats.gen_tok_per_s()
            );
        }
        self.messages
            .push(ChatMessage::new("assistant", answer.trim().to_string()));
        Ok(())
    }
}
