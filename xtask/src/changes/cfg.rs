//! Does a `[target.'…'.dependencies]` table apply to a Rust target? A triple is compared as
//! written; a `cfg(…)` expression is evaluated from the triple's parts. A key it does not know
//! makes the answer "cannot tell" (`None`), which callers treat as "applies".

/// `Some(true)` when `spec` applies to any of `triples`, `Some(false)` when to none, `None`
/// when it cannot tell.
pub fn applies(spec: &str, triples: &[String]) -> Option<bool> {
    let spec = spec.trim();
    let Some(body) = spec.strip_prefix("cfg(").and_then(|s| s.strip_suffix(')')) else {
        return Some(triples.iter().any(|t| t == spec));
    };
    let expr = Parser::new(body).expr()?;
    let mut unknown = false;
    for t in triples {
        match expr.eval(&facts(t)) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => unknown = true,
        }
    }
    if unknown {
        None
    } else {
        Some(false)
    }
}

#[derive(Debug)]
enum Expr {
    Key(String),
    KeyValue(String, String),
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Not(Box<Expr>),
}

struct Facts {
    values: Vec<(&'static str, String)>,
    flags: Vec<&'static str>,
}

fn facts(triple: &str) -> Facts {
    let parts: Vec<&str> = triple.split('-').collect();
    let arch_raw = parts.first().copied().unwrap_or("");
    let arch = match arch_raw {
        a if a.starts_with("armv") || a == "arm" => "arm",
        a if a.starts_with("riscv64") => "riscv64",
        "powerpc64le" => "powerpc64",
        "i686" | "i586" => "x86",
        a => a,
    };
    let vendor = parts.get(1).copied().unwrap_or("unknown");
    let os = match parts.get(2).copied().unwrap_or("none") {
        "darwin" => "macos",
        o => o,
    };
    let env = parts.get(3).map_or("", |e| {
        if e.starts_with("gnu") {
            "gnu"
        } else if e.starts_with("musl") {
            "musl"
        } else {
            e
        }
    });
    let family = match os {
        "windows" => "windows",
        "linux" | "macos" | "freebsd" | "netbsd" | "openbsd" | "android" => "unix",
        _ => "",
    };
    let width = match arch {
        "arm" | "x86" => "32",
        _ => "64",
    };
    let endian = if arch == "s390x" { "big" } else { "little" };
    let mut flags = Vec::new();
    if !family.is_empty() {
        flags.push(if family == "unix" { "unix" } else { "windows" });
    }
    Facts {
        values: vec![
            ("target_arch", arch.to_string()),
            ("target_vendor", vendor.to_string()),
            ("target_os", os.to_string()),
            ("target_env", env.to_string()),
            ("target_family", family.to_string()),
            ("target_pointer_width", width.to_string()),
            ("target_endian", endian.to_string()),
        ],
        flags,
    }
}

impl Expr {
    fn eval(&self, f: &Facts) -> Option<bool> {
        match self {
            Expr::Key(k) => match k.as_str() {
                "unix" | "windows" => Some(f.flags.contains(&k.as_str())),
                // cargo evaluates target tables with `rustc --print cfg`, where
                // debug_assertions is on whatever the profile says.
                "debug_assertions" => Some(true),
                "test" | "miri" | "doc" => Some(false),
                _ => None,
            },
            Expr::KeyValue(k, v) => f
                .values
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, val)| val == v),
            Expr::All(xs) => {
                let mut unknown = false;
                for x in xs {
                    match x.eval(f) {
                        Some(false) => return Some(false),
                        None => unknown = true,
                        Some(true) => {}
                    }
                }
                (!unknown).then_some(true)
            }
            Expr::Any(xs) => {
                let mut unknown = false;
                for x in xs {
                    match x.eval(f) {
                        Some(true) => return Some(true),
                        None => unknown = true,
                        Some(false) => {}
                    }
                }
                (!unknown).then_some(false)
            }
            Expr::Not(x) => x.eval(f).map(|b| !b),
        }
    }
}

struct Parser<'a> {
    s: &'a str,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser { s }
    }

    fn ws(&mut self) {
        self.s = self.s.trim_start();
    }

    fn ident(&mut self) -> Option<String> {
        self.ws();
        let end = self
            .s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.s.len());
        if end == 0 {
            return None;
        }
        let id = self.s[..end].to_string();
        self.s = &self.s[end..];
        Some(id)
    }

    fn eat(&mut self, c: char) -> bool {
        self.ws();
        match self.s.strip_prefix(c) {
            Some(rest) => {
                self.s = rest;
                true
            }
            None => false,
        }
    }

    fn expr(&mut self) -> Option<Expr> {
        let id = self.ident()?;
        if self.eat('(') {
            let mut list = Vec::new();
            while !self.eat(')') {
                list.push(self.expr()?);
                self.eat(',');
            }
            return match id.as_str() {
                "all" => Some(Expr::All(list)),
                "any" => Some(Expr::Any(list)),
                "not" if list.len() == 1 => Some(Expr::Not(Box::new(list.pop()?))),
                _ => None,
            };
        }
        if self.eat('=') {
            self.ws();
            let rest = self.s.strip_prefix('"')?;
            let end = rest.find('"')?;
            let v = rest[..end].to_string();
            self.s = &rest[end + 1..];
            return Some(Expr::KeyValue(id, v));
        }
        Some(Expr::Key(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn cfg_expressions_for_linux_targets() {
        let linux = t(&["x86_64-unknown-linux-gnu"]);
        assert_eq!(applies("cfg(windows)", &linux), Some(false));
        assert_eq!(applies("cfg(unix)", &linux), Some(true));
        assert_eq!(applies("cfg(target_os = \"linux\")", &linux), Some(true));
        assert_eq!(
            applies("cfg(all(unix, not(target_arch = \"aarch64\")))", &linux),
            Some(true)
        );
        assert_eq!(
            applies(
                "cfg(any(target_os = \"macos\", target_os = \"ios\"))",
                &linux
            ),
            Some(false)
        );
        assert_eq!(applies("x86_64-pc-windows-msvc", &linux), Some(false));
        assert_eq!(applies("x86_64-unknown-linux-gnu", &linux), Some(true));
        assert_eq!(
            applies("cfg(tokio_unstable)", &linux),
            None,
            "unknown: cannot tell"
        );
        assert_eq!(applies("cfg(any(windows, tokio_unstable))", &linux), None);
        assert_eq!(
            applies("cfg(debug_assertions)", &linux),
            Some(true),
            "as cargo evaluates it, even for --release"
        );
        assert_eq!(
            applies("cfg(all(windows, tokio_unstable))", &linux),
            Some(false)
        );
        let arm = t(&["aarch64-unknown-linux-gnu"]);
        assert_eq!(applies("cfg(target_arch = \"aarch64\")", &arm), Some(true));
        assert_eq!(
            applies("cfg(target_pointer_width = \"64\")", &arm),
            Some(true)
        );
    }
}
