//! Modelfile parser (Ollama's grammar): one `INSTRUCTION arguments` per line, instructions
//! case-insensitive, `#` comment lines, values to end of line or quoted with `"…"` / `"""…"""`
//! (both may span lines), UTF-8 BOM and CRLF accepted.

use std::fmt;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Modelfile {
    /// The `FROM` argument as written (a path or a model name).
    pub from: String,
    /// `PARAMETER name value`, in file order (`stop` may repeat).
    pub parameters: Vec<(String, String)>,
    pub template: Option<String>,
    pub system: Option<String>,
    pub messages: Vec<(String, String)>,
    pub license: Vec<String>,
    pub adapters: Vec<String>,
    pub requires: Option<String>,
}

#[derive(Debug, PartialEq)]
pub struct ModelfileError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ModelfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "Modelfile: {}", self.message)
        } else {
            write!(f, "Modelfile line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for ModelfileError {}

struct Cursor<'a> {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    _src: &'a str,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.chars.get(self.pos + i) == Some(&c))
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }
    fn skip_inline_space(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }
    fn rest_of_line(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            s.push(c);
            self.bump();
        }
        s.trim_end_matches('\r').trim().to_string()
    }
    fn err(&self, message: impl Into<String>) -> ModelfileError {
        ModelfileError {
            line: self.line,
            message: message.into(),
        }
    }
    /// A word up to the next whitespace.
    fn word(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                break;
            }
            s.push(c);
            self.bump();
        }
        s
    }
    /// A value: `"""…"""`, `"…"` (with `\"` and `\\` escapes), or the rest of the line.
    fn value(&mut self) -> Result<String, ModelfileError> {
        self.skip_inline_space();
        if self.starts_with("\"\"\"") {
            let start = self.line;
            self.pos += 3;
            let mut s = String::new();
            loop {
                if self.starts_with("\"\"\"") {
                    self.pos += 3;
                    break;
                }
                match self.bump() {
                    Some(c) => s.push(c),
                    None => {
                        return Err(ModelfileError {
                            line: start,
                            message: "unterminated \"\"\"".into(),
                        })
                    }
                }
            }
            self.expect_line_end()?;
            Ok(s.replace("\r\n", "\n"))
        } else if self.peek() == Some('"') {
            let start = self.line;
            self.bump();
            let mut s = String::new();
            loop {
                match self.bump() {
                    Some('\\') if matches!(self.peek(), Some('"' | '\\')) => {
                        s.push(self.bump().unwrap())
                    }
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => {
                        return Err(ModelfileError {
                            line: start,
                            message: "unterminated quote".into(),
                        })
                    }
                }
            }
            self.expect_line_end()?;
            Ok(s.replace("\r\n", "\n"))
        } else {
            Ok(self.rest_of_line())
        }
    }
    fn expect_line_end(&mut self) -> Result<(), ModelfileError> {
        let rest = self.rest_of_line();
        if rest.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("unexpected text after closing quote: {rest:?}")))
        }
    }
}

pub fn parse(src: &str) -> Result<Modelfile, ModelfileError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut c = Cursor {
        chars: src.chars().collect(),
        pos: 0,
        line: 1,
        _src: src,
    };
    let mut mf = Modelfile::default();
    let mut have_from = false;
    loop {
        // Skip blank space between instructions.
        while matches!(c.peek(), Some(ch) if ch.is_whitespace()) {
            c.bump();
        }
        let Some(ch) = c.peek() else { break };
        if ch == '#' {
            c.rest_of_line();
            continue;
        }
        let line = c.line;
        let instruction = c.word().to_ascii_lowercase();
        match instruction.as_str() {
            "from" => {
                if have_from {
                    return Err(ModelfileError {
                        line,
                        message: "more than one FROM line".into(),
                    });
                }
                mf.from = c.value()?;
                have_from = true;
            }
            "parameter" => {
                c.skip_inline_space();
                let name = c.word().to_ascii_lowercase();
                if name.is_empty() {
                    return Err(ModelfileError {
                        line,
                        message: "PARAMETER needs a name and a value".into(),
                    });
                }
                let value = c.value()?;
                if value.is_empty() {
                    return Err(ModelfileError {
                        line,
                        message: format!("PARAMETER {name} has no value"),
                    });
                }
                mf.parameters.push((name, value));
            }
            "template" => mf.template = Some(c.value()?),
            "system" => mf.system = Some(c.value()?),
            "license" => mf.license.push(c.value()?),
            "adapter" => mf.adapters.push(c.value()?),
            "requires" => mf.requires = Some(c.value()?),
            "message" => {
                c.skip_inline_space();
                let role = c.word().to_ascii_lowercase();
                if !matches!(role.as_str(), "system" | "user" | "assistant") {
                    return Err(ModelfileError {
                        line,
                        message: format!(
                            "MESSAGE role must be system, user or assistant, not {role:?}"
                        ),
                    });
                }
                mf.messages.push((role, c.value()?));
            }
            "draft" | "renderer" | "parser" => {
                return Err(ModelfileError {
                    line,
                    message: format!(
                        "{} is not supported by this engine",
                        instruction.to_uppercase()
                    ),
                })
            }
            other => {
                return Err(ModelfileError {
                    line,
                    message: format!("unknown instruction {other:?}"),
                });
            }
        }
        if mf.from.is_empty() && have_from {
            return Err(ModelfileError {
                line,
                message: "FROM needs a path or a model name".into(),
            });
        }
    }
    if !have_from {
        return Err(ModelfileError {
            line: 0,
            message: "no FROM line".into(),
        });
    }
    Ok(mf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_example() {
        let src = "\u{feff}# comment\r\nFROM ./model.gguf\r\nparameter temperature 0.6\nPARAMETER stop \"<|eot_id|>\"\nPARAMETER stop User:\nSYSTEM \"\"\"You are\nconcise.\"\"\"\nTEMPLATE \"{{ .Prompt }}\"\nMESSAGE user hi there\nMESSAGE assistant \"Hello.\"\nLICENSE \"\"\"MIT\"\"\"\n";
        let mf = parse(src).unwrap();
        assert_eq!(mf.from, "./model.gguf");
        assert_eq!(
            mf.parameters,
            vec![
                ("temperature".into(), "0.6".into()),
                ("stop".into(), "<|eot_id|>".into()),
                ("stop".into(), "User:".into())
            ]
        );
        assert_eq!(mf.system.as_deref(), Some("You are\nconcise."));
        assert_eq!(mf.template.as_deref(), Some("{{ .Prompt }}"));
        assert_eq!(
            mf.messages,
            vec![
                ("user".into(), "hi there".into()),
                ("assistant".into(), "Hello.".into())
            ]
        );
        assert_eq!(mf.license, vec!["MIT".to_string()]);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse("PARAMETER top_k 4\n").unwrap_err().message,
            "no FROM line"
        );
        let e = parse("FROM x\nBOGUS y\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("FROM x\nSYSTEM \"\"\"open\n").is_err());
        assert!(parse("FROM x\nMESSAGE tool hi\n").is_err());
        assert!(parse("FROM a\nFROM b\n").is_err());
    }

    #[test]
    fn escaped_quotes() {
        let mf = parse("FROM x\nSYSTEM \"say \\\"hi\\\"\"\n").unwrap();
        assert_eq!(mf.system.as_deref(), Some("say \"hi\""));
    }
}
