//! The chat's slash commands, as Ollama's REPL spells them.

use anyhow::{bail, Result};
use serde_json::{Map, Value};

use bitnet_gguf::serve::options::RunOptions;
use bitnet_gguf::serve::store::create::create;
use bitnet_gguf::serve::store::params::{parameter_lines, typed_parameters};
use bitnet_gguf::serve::store::{Base, CreateSpec, Message, Store};

use super::{Conversation, Leave};

const HELP: &str = "Available Commands:
  /set parameter NAME VALUE  Set a parameter (Modelfile PARAMETER names: temperature, top_k,
                             top_p, min_p, num_predict, repeat_penalty, seed, stop, num_ctx, ...)
  /set system TEXT           Set the system message
  /show info                 Show details for this model
  /show parameters           Show the parameters in use
  /show template             Show the chat template
  /show system               Show the system message
  /clear                     Clear the conversation
  /save NAME                 Save the model with this conversation as a new store model
  /load NAME                 Load a model (a store name or a .gguf file)
  /bye                       Exit
  /?, /help                  Help for a command

Use \"\"\" to begin and end a message of several lines.
Ctrl-C stops a reply; Ctrl-D or /bye leaves.";

impl Conversation<'_> {
    /// Runs one slash command. Mistakes are reported and the chat goes on.
    pub(super) fn command(&mut self, line: &str) -> Result<Option<Leave>> {
        let (verb, rest) = split_word(line);
        match verb {
            "/bye" | "/exit" | "/quit" => return Ok(Some(Leave::Quit)),
            "/load" if !rest.is_empty() => return Ok(Some(Leave::Load(rest.to_string()))),
            _ => {}
        }
        let done = match verb {
            "/?" | "/help" => {
                eprintln!("{HELP}");
                Ok(())
            }
            "/clear" => {
                self.messages = self.initial.clone();
                self.session.truncate(0);
                eprintln!("Cleared session context");
                Ok(())
            }
            "/set" => self.set(rest),
            "/show" => self.show(rest),
            "/save" => self.save(rest),
            "/load" => Err(anyhow::anyhow!("usage: /load NAME")),
            _ => Err(anyhow::anyhow!(
                "unknown command '{verb}'; type /? for help"
            )),
        };
        if let Err(e) = done {
            eprintln!("error: {e:#}");
        }
        Ok(None)
    }

    fn set(&mut self, rest: &str) -> Result<()> {
        let (what, value) = split_word(rest);
        match what {
            "system" => {
                let text = value.trim_matches('"').to_string();
                self.system = (!text.is_empty()).then_some(text);
                eprintln!("Set system message.");
                Ok(())
            }
            "parameter" => {
                let (name, raw) = split_word(value);
                if name.is_empty() || raw.is_empty() {
                    bail!("usage: /set parameter NAME VALUE");
                }
                let typed = typed_parameters(&[(name.to_string(), raw.to_string())])
                    .map_err(anyhow::Error::msg)?;
                self.apply_params(&typed)?;
                self.set_params.extend(typed);
                eprintln!("Set parameter '{name}' to '{raw}'");
                Ok(())
            }
            _ => bail!("usage: /set parameter NAME VALUE, or /set system TEXT"),
        }
    }

    /// Puts Modelfile-typed parameters over the generation settings in use.
    fn apply_params(&mut self, typed: &Map<String, Value>) -> Result<()> {
        let mut o = RunOptions {
            sampling: self.params.sampler.clone(),
            stop: self.params.stop.clone(),
            ..RunOptions::ollama_defaults()
        };
        o.apply(typed).map_err(anyhow::Error::msg)?;
        if typed.contains_key("num_predict") {
            self.params.max_tokens = o.max_tokens();
        }
        self.params.sampler = o.sampling;
        if typed.contains_key("stop") {
            self.params.stop = o.stop;
        }
        if typed.contains_key("num_keep") {
            self.context.keep = o.num_keep;
        }
        if let Some(n) = o.num_ctx.filter(|_| typed.contains_key("num_ctx")) {
            self.session = self.model.new_session(n);
        }
        Ok(())
    }

    fn show(&self, what: &str) -> Result<()> {
        match what {
            "info" => {
                let c = self.model.config();
                eprintln!("  Model");
                eprintln!("    name                {}", self.name());
                eprintln!("    architecture        {}", c.arch);
                eprintln!("    layers              {}", c.n_layer);
                eprintln!("    embedding length    {}", c.n_embd);
                eprintln!("    vocabulary          {}", c.n_vocab);
                eprintln!("    training context    {}", c.n_ctx_train);
                eprintln!("    context in use      {}", self.session.n_ctx());
            }
            "parameters" => {
                let s = &self.params.sampler;
                let max = self.params.max_tokens.map_or(-1, |n| n as i64);
                for (k, v) in [
                    ("temperature", s.temperature.to_string()),
                    ("top_k", s.top_k.to_string()),
                    ("top_p", s.top_p.to_string()),
                    ("min_p", s.min_p.to_string()),
                    ("repeat_penalty", s.repeat_penalty.to_string()),
                    ("repeat_last_n", s.repeat_last_n.to_string()),
                    ("num_predict", max.to_string()),
                    ("num_ctx", self.session.n_ctx().to_string()),
                ] {
                    eprintln!("{k:<16}{v}");
                }
                for stop in &self.params.stop {
                    eprintln!("{:<16}{stop:?}", "stop");
                }
            }
            "template" => match self.entry.and_then(|e| e.template.as_deref()) {
                Some(t) => eprintln!("{t}"),
                None => eprintln!("{}", self.model.chat_template().source()),
            },
            "system" => match &self.system {
                Some(s) => eprintln!("{s}"),
                None => eprintln!("No system message was specified for this model."),
            },
            _ => bail!("usage: /show info|parameters|template|system"),
        }
        Ok(())
    }

    /// Writes a store model: this one (its layers when it is a store model, else its file)
    /// with the system message, the `/set` parameters and the conversation as `MESSAGE`s.
    fn save(&self, name: &str) -> Result<()> {
        if name.is_empty() || name.contains(char::is_whitespace) {
            bail!("usage: /save NAME");
        }
        let base = match self.entry {
            Some(e) => Base::Model(e.name.to_string()),
            None => Base::File(self.model.path().to_path_buf()),
        };
        let messages = self
            .messages
            .iter()
            .map(|m| Message {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect();
        let spec = CreateSpec {
            base,
            template: None,
            system: self.system.clone(),
            parameters: (!self.set_params.is_empty()).then(|| self.set_params.clone()),
            messages: Some(messages),
            license: None,
        };
        create(&Store::from_env(None), name, spec, &mut |_| {})?;
        eprintln!("Created new model '{name}'");
        if !self.set_params.is_empty() {
            let shown: Vec<String> = parameter_lines(&self.set_params)
                .into_iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            eprintln!("with parameters: {}", shown.join(", "));
        }
        Ok(())
    }
}

/// The first word and the rest, trimmed.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.split_once(char::is_whitespace) {
        Some((a, b)) => (a, b.trim()),
        None => (s, ""),
    }
}
