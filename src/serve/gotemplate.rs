//! The subset of Go's text/template that Ollama Modelfile `TEMPLATE`s use: `{{ .Field }}`,
//! `$.Field`, `if`/`else if`/`else`/`end`, `range .Messages`, the functions `eq ne and or not
//! len`, string/number literals, parentheses, `{{-`/`-}}` trimming and `{{/* comments */}}`.
//! Templates that use `.Messages` see the whole conversation; older per-turn templates
//! (`.System`/`.Prompt`/`.Response`) are applied once per user turn, as Ollama does.

use serde_json::{json, Value};

use crate::serve::http::backend::ChatTurn;

/// A Modelfile `TEMPLATE` written in Jinja rather than Go.
pub fn looks_like_jinja(t: &str) -> bool {
    t.contains("{%") || t.contains("messages") && !t.contains(".Messages")
}

#[derive(Debug, Clone)]
enum Expr {
    Field(bool /* from $ */, Vec<String>),
    Str(String),
    Num(f64),
    Bool(bool),
    Call(String, Vec<Expr>),
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Out(Expr),
    If(Vec<(Expr, Vec<Node>)>, Vec<Node>),
    Range(Expr, Vec<Node>, Vec<Node>),
}

enum Tok {
    Text(String),
    Action(String),
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            let t = if trim_next { rest.trim_start() } else { rest };
            out.push(Tok::Text(t.to_string()));
            break;
        };
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let (trim_prev, after) = match after
            .strip_prefix("- ")
            .or(after.strip_prefix("-\n"))
            .or(after.strip_prefix("-\t"))
        {
            Some(a) => (true, a),
            None => (false, after),
        };
        if trim_prev {
            text = text.trim_end();
        }
        if !text.is_empty() {
            out.push(Tok::Text(text.to_string()));
        }
        let close = after.find("}}").ok_or("unclosed action")?;
        let mut action = &after[..close];
        trim_next = false;
        if let Some(a) = action
            .strip_suffix(" -")
            .or(action.strip_suffix("\n-"))
            .or(action.strip_suffix("\t-"))
        {
            action = a;
            trim_next = true;
        }
        let action = action.trim();
        if !(action.starts_with("/*") && action.ends_with("*/")) {
            out.push(Tok::Action(action.to_string()));
        }
        rest = &after[close + 2..];
    }
    Ok(out)
}

fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut depth = 0;
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' => {
                cur.push(c);
                let close = c;
                loop {
                    let Some(d) = chars.next() else {
                        return Err("unterminated string".into());
                    };
                    cur.push(d);
                    if d == '\\' && close == '"' {
                        if let Some(e) = chars.next() {
                            cur.push(e);
                        }
                    } else if d == close {
                        break;
                    }
                }
            }
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    Ok(words)
}

fn parse_expr(s: &str) -> Result<Expr, String> {
    let words = split_words(s.trim())?;
    if words.is_empty() {
        return Err("empty expression".into());
    }
    let args: Vec<Expr> = words
        .iter()
        .map(|w| parse_operand(w))
        .collect::<Result<_, _>>()?;
    if let Expr::Call(name, a) = &args[0] {
        if a.is_empty() {
            return Ok(Expr::Call(name.clone(), args[1..].to_vec()));
        }
    }
    if args.len() == 1 {
        Ok(args.into_iter().next().unwrap())
    } else {
        Err(format!("cannot call a non-function in {s:?}"))
    }
}

fn parse_operand(w: &str) -> Result<Expr, String> {
    if let Some(inner) = w.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        return parse_expr(inner);
    }
    if w.starts_with('"') {
        return serde_json::from_str::<String>(w)
            .map(Expr::Str)
            .map_err(|_| format!("bad string {w}"));
    }
    if let Some(raw) = w.strip_prefix('`').and_then(|x| x.strip_suffix('`')) {
        return Ok(Expr::Str(raw.to_string()));
    }
    if w == "true" || w == "false" {
        return Ok(Expr::Bool(w == "true"));
    }
    if let Ok(n) = w.parse::<f64>() {
        return Ok(Expr::Num(n));
    }
    if w == "." || w == "$" {
        return Ok(Expr::Field(w == "$", vec![]));
    }
    if let Some(path) = w.strip_prefix("$.") {
        return Ok(Expr::Field(
            true,
            path.split('.').map(String::from).collect(),
        ));
    }
    if let Some(path) = w.strip_prefix('.') {
        return Ok(Expr::Field(
            false,
            path.split('.').map(String::from).collect(),
        ));
    }
    if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(Expr::Call(w.to_string(), vec![]));
    }
    Err(format!("unsupported template syntax {w:?}"))
}

fn parse_nodes(
    toks: &[Tok],
    pos: &mut usize,
    stop: &[&str],
) -> Result<(Vec<Node>, String), String> {
    let mut nodes = Vec::new();
    while *pos < toks.len() {
        match &toks[*pos] {
            Tok::Text(t) => {
                nodes.push(Node::Text(t.clone()));
                *pos += 1;
            }
            Tok::Action(a) => {
                let kw = a.split_whitespace().next().unwrap_or("");
                if stop.contains(&kw) {
                    *pos += 1;
                    return Ok((nodes, a.clone()));
                }
                *pos += 1;
                match kw {
                    "if" => {
                        let mut branches = vec![];
                        let mut cond = parse_expr(&a[2..])?;
                        let els;
                        loop {
                            let (body, end) = parse_nodes(toks, pos, &["else", "end"])?;
                            branches.push((cond, body));
                            if end == "end" {
                                els = vec![];
                                break;
                            }
                            let rest = end["else".len()..].trim();
                            if let Some(c) = rest.strip_prefix("if ") {
                                cond = parse_expr(c)?;
                                continue;
                            }
                            let (body, _) = parse_nodes(toks, pos, &["end"])?;
                            els = body;
                            break;
                        }
                        nodes.push(Node::If(branches, els));
                    }
                    "range" => {
                        let spec = a[5..].trim();
                        let expr = match spec.split_once(":=") {
                            Some((_, e)) => e,
                            None => spec,
                        };
                        let e = parse_expr(expr)?;
                        let (body, end) = parse_nodes(toks, pos, &["else", "end"])?;
                        let els = if end == "else" {
                            parse_nodes(toks, pos, &["end"])?.0
                        } else {
                            vec![]
                        };
                        nodes.push(Node::Range(e, body, els));
                    }
                    "else" | "end" => return Err(format!("unexpected {{{{ {a} }}}}")),
                    "with" | "define" | "template" | "block" => {
                        return Err(format!("'{kw}' is not supported"))
                    }
                    _ => nodes.push(Node::Out(parse_expr(a)?)),
                }
            }
        }
    }
    if stop.is_empty() {
        Ok((nodes, String::new()))
    } else {
        Err(format!("missing {{{{ {} }}}}", stop.join(" / ")))
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn eval(e: &Expr, dot: &Value, root: &Value) -> Result<Value, String> {
    Ok(match e {
        Expr::Str(s) => Value::String(s.clone()),
        Expr::Num(n) => json!(n),
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Field(from_root, path) => {
            let mut v = if *from_root { root } else { dot };
            for p in path {
                v = v.get(p).unwrap_or(&Value::Null);
            }
            v.clone()
        }
        Expr::Call(name, args) => {
            let a: Vec<Value> = args
                .iter()
                .map(|x| eval(x, dot, root))
                .collect::<Result<_, _>>()?;
            let arg = |i: usize| a.get(i).cloned().unwrap_or(Value::Null);
            match name.as_str() {
                "eq" => Value::Bool(a.len() >= 2 && a[1..].iter().any(|x| *x == a[0])),
                "ne" => Value::Bool(arg(0) != arg(1)),
                "not" => Value::Bool(!truthy(&arg(0))),
                "and" => a
                    .iter()
                    .find(|x| !truthy(x))
                    .or(a.last())
                    .cloned()
                    .unwrap_or(Value::Null),
                "or" => a
                    .iter()
                    .find(|x| truthy(x))
                    .or(a.last())
                    .cloned()
                    .unwrap_or(Value::Null),
                "len" => json!(match arg(0) {
                    Value::String(s) => s.chars().count(),
                    Value::Array(x) => x.len(),
                    Value::Object(o) => o.len(),
                    _ => 0,
                }),
                "json" => Value::String(arg(0).to_string()),
                "currentDate" => {
                    Value::String(crate::serve::http::reply::now_rfc3339()[..10].to_string())
                }
                other => return Err(format!("function {other:?} is not supported")),
            }
        }
    })
}

fn print(v: &Value, out: &mut String) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

fn exec(nodes: &[Node], dot: &Value, root: &Value, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Out(e) => print(&eval(e, dot, root)?, out),
            Node::If(branches, els) => {
                let mut done = false;
                for (c, body) in branches {
                    if truthy(&eval(c, dot, root)?) {
                        exec(body, dot, root, out)?;
                        done = true;
                        break;
                    }
                }
                if !done {
                    exec(els, dot, root, out)?;
                }
            }
            Node::Range(e, body, els) => match eval(e, dot, root)? {
                Value::Array(items) if !items.is_empty() => {
                    for it in &items {
                        exec(body, it, root, out)?;
                    }
                }
                _ => exec(els, dot, root, out)?,
            },
        }
    }
    Ok(())
}

/// Parses a template without rendering it (what `create` checks a `TEMPLATE` with).
pub fn check(template: &str) -> Result<(), String> {
    let toks = lex(template)?;
    let mut pos = 0;
    parse_nodes(&toks, &mut pos, &[]).map(|_| ())
}

pub fn render(template: &str, data: &Value) -> Result<String, String> {
    let toks = lex(template)?;
    let mut pos = 0;
    let (nodes, _) = parse_nodes(&toks, &mut pos, &[])?;
    let mut out = String::new();
    exec(&nodes, data, data, &mut out)?;
    Ok(out)
}

/// Renders a conversation for generation (the last turn's response left empty).
pub fn render_chat(template: &str, msgs: &[ChatTurn]) -> Result<String, String> {
    let system: Vec<&str> = msgs
        .iter()
        .filter(|m| m.role == "system")
        .map(|m| m.content.as_str())
        .collect();
    let system = system.join("\n\n");
    if template.contains(".Messages") {
        let messages: Vec<Value> = msgs
            .iter()
            .map(|m| json!({"Role": m.role, "Content": m.content}))
            .collect();
        let data = json!({"System": system, "Messages": messages, "Prompt": "", "Response": "", "Tools": null});
        return render(template, &data);
    }
    // Per-turn template: one rendering per user message, with the assistant reply after it.
    let turns: Vec<&ChatTurn> = msgs.iter().filter(|m| m.role != "system").collect();
    let mut out = String::new();
    let mut first = true;
    let mut i = 0;
    while i < turns.len() || first {
        let (prompt, response) = match turns.get(i) {
            Some(t) if t.role == "user" => {
                let resp = turns
                    .get(i + 1)
                    .filter(|r| r.role == "assistant")
                    .map(|r| r.content.clone());
                i += if resp.is_some() { 2 } else { 1 };
                (t.content.clone(), resp.unwrap_or_default())
            }
            Some(t) => {
                i += 1;
                (String::new(), t.content.clone())
            }
            None => (String::new(), String::new()),
        };
        let data = json!({"System": if first { system.as_str() } else { "" }, "Prompt": prompt, "Response": response});
        out.push_str(&render(template, &data)?);
        first = false;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(r: &str, c: &str) -> ChatTurn {
        ChatTurn {
            role: r.into(),
            content: c.into(),
        }
    }

    #[test]
    fn bitnet_messages_template() {
        let t = r#"{{- range .Messages }}{{ if eq .Role "system" }}System{{ else if eq .Role "user" }}User{{ else }}Assistant{{ end }}: {{ .Content }}<|eot_id|>{{ end }}Assistant: "#;
        let out = render_chat(
            t,
            &[
                turn("system", "Be terse."),
                turn("user", "hi"),
                turn("assistant", "Hello."),
                turn("user", "2+2?"),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "System: Be terse.<|eot_id|>User: hi<|eot_id|>Assistant: Hello.<|eot_id|>User: 2+2?<|eot_id|>Assistant: "
        );
    }

    #[test]
    fn per_turn_template() {
        let t = "{{ if .System }}<s>{{ .System }}</s>\n{{ end }}{{ if .Prompt }}Q: {{ .Prompt }}\n{{ end }}A: {{ .Response }}";
        let out = render_chat(
            t,
            &[
                turn("system", "S"),
                turn("user", "a"),
                turn("assistant", "b"),
                turn("user", "c"),
            ],
        )
        .unwrap();
        assert_eq!(out, "<s>S</s>\nQ: a\nA: bQ: c\nA: ");
        assert_eq!(
            render_chat("{{ .Prompt }}", &[turn("user", "x")]).unwrap(),
            "x"
        );
    }

    #[test]
    fn trimming_functions_and_errors() {
        let d = json!({"A": "x", "L": [1, 2]});
        assert_eq!(render("a  {{- .A -}}  b", &d).unwrap(), "axb");
        assert_eq!(
            render(
                "{{ len .L }}{{ if and .A (ne .A \"y\") }}!{{ end }}{{/* c */}}",
                &d
            )
            .unwrap(),
            "2!"
        );
        assert_eq!(
            render("{{ range .L }}[{{ . }}]{{ end }}", &d).unwrap(),
            "[1][2]"
        );
        assert!(render("{{ if .A }}", &d).is_err());
        assert!(render("{{ template \"x\" }}", &d).is_err());
    }
}
