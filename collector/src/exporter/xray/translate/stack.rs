//! Best-effort parsers turning `exception.stacktrace` text into X-Ray stack frames.
//!
//! OpenTelemetry records a stack trace as the language's own text, while X-Ray wants
//! `{path, line, label}` frames, innermost first. Each parser reads the format its
//! language prints; when the resource does not say which language produced the span, every
//! parser is tried and the one that understood the most lines wins. Lines a parser does
//! not recognise are skipped, never guessed at.

use aurastream_proto::xray::StackFrame;

/// Frames kept per exception; the rest are counted in `truncated`.
pub(crate) const MAX_FRAMES: usize = 50;

/// Parses `text` as a stack trace of `language` (`telemetry.sdk.language`), or of whatever
/// language fits best when that is unknown.
pub(crate) fn parse(text: &str, language: Option<&str>) -> Vec<StackFrame> {
    match language {
        Some("rust") => rust(text),
        Some("python") => python(text),
        Some("java") => java(text),
        Some("nodejs" | "webjs" | "javascript") => javascript(text),
        Some("go") => go(text),
        Some("dotnet") => dotnet(text),
        _ => {
            let candidates = [
                rust(text),
                python(text),
                java(text),
                javascript(text),
                go(text),
                dotnet(text),
            ];
            candidates
                .into_iter()
                .max_by_key(|frames| {
                    let with_line = frames.iter().filter(|f| f.line.is_some()).count();
                    let with_label = frames.iter().filter(|f| f.label.is_some()).count();
                    (with_line, with_label)
                })
                .unwrap_or_default()
        }
    }
}

fn frame(path: Option<&str>, line: Option<u32>, label: Option<&str>) -> StackFrame {
    let clean = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    StackFrame {
        path: path.and_then(clean),
        line,
        label: label.and_then(clean),
    }
}

/// `path:line` or `path:line:column` → (path, line).
fn split_location(loc: &str) -> (&str, Option<u32>) {
    let mut parts = loc.rsplitn(3, ':');
    let last = parts.next().unwrap_or(loc);
    match (parts.next(), parts.next()) {
        (Some(line), Some(path)) if line.parse::<u32>().is_ok() && last.parse::<u32>().is_ok() => {
            (path, line.parse().ok())
        }
        (Some(rest), tail) if last.parse::<u32>().is_ok() => {
            let path = match tail {
                Some(t) => &loc[..t.len() + 1 + rest.len()],
                None => rest,
            };
            (path, last.parse().ok())
        }
        _ => (loc, None),
    }
}

/// `std::backtrace::Backtrace` as printed by `Display`:
/// ```text
///    0: app::handler::checkout
///              at ./src/handler.rs:42:9
/// ```
fn rust(text: &str) -> Vec<StackFrame> {
    let mut frames: Vec<StackFrame> = Vec::new();
    let mut last_was_label = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(loc) = t.strip_prefix("at ")
            && last_was_label
            && let Some(f) = frames.last_mut()
        {
            let (path, line) = split_location(loc);
            f.path = Some(path.to_owned());
            f.line = line;
            last_was_label = false;
            continue;
        }
        last_was_label = false;
        if let Some((index, label)) = t.split_once(": ")
            && !index.is_empty()
            && index.chars().all(|c| c.is_ascii_digit())
        {
            frames.push(frame(None, None, Some(strip_rust_hash(label))));
            last_was_label = true;
        }
    }
    frames
}

/// Drops the `::h0123456789abcdef` symbol hash the legacy mangling leaves on names.
fn strip_rust_hash(label: &str) -> &str {
    match label.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            head
        }
        _ => label,
    }
}

/// CPython tracebacks, outermost call first (reversed here). With chained exceptions the
/// last traceback printed is the one raised, so earlier ones are discarded.
/// ```text
///   File "/app/handler.py", line 12, in checkout
/// ```
fn python(text: &str) -> Vec<StackFrame> {
    let mut frames = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("During handling of the above exception")
            || t.starts_with("The above exception was the direct cause")
        {
            frames.clear();
            continue;
        }
        let Some(rest) = t.strip_prefix("File \"") else {
            continue;
        };
        let Some((path, rest)) = rest.split_once('"') else {
            continue;
        };
        let mut line_no = None;
        let mut label = None;
        for part in rest.split(", ") {
            if let Some(n) = part.trim().strip_prefix("line ") {
                line_no = n.trim().parse().ok();
            } else if let Some(l) = part.trim().strip_prefix("in ") {
                label = Some(l);
            }
        }
        frames.push(frame(Some(path), line_no, label));
    }
    frames.reverse();
    frames
}

/// `Throwable.printStackTrace()`; only the outer exception (stops at `Caused by:`).
/// ```text
///     at com.example.Checkout.pay(Checkout.java:42)
/// ```
fn java(text: &str) -> Vec<StackFrame> {
    let mut frames = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Caused by:") {
            break;
        }
        let Some(rest) = t.strip_prefix("at ") else {
            continue;
        };
        let Some(inner) = rest.strip_suffix(')') else {
            continue;
        };
        let Some((label, loc)) = inner.rsplit_once('(') else {
            continue;
        };
        if label.contains(' ') {
            continue;
        }
        let (path, line) = match loc.rsplit_once(':') {
            Some((p, l)) => (p, l.parse().ok()),
            None => (loc, None),
        };
        frames.push(frame(Some(path), line, Some(label)));
    }
    frames
}

/// V8 `Error.stack`:
/// ```text
///     at checkout (/app/handler.js:12:7)
///     at /app/index.js:3:1
/// ```
fn javascript(text: &str) -> Vec<StackFrame> {
    let mut frames = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("at ") else {
            continue;
        };
        let (label, loc) = match rest.strip_suffix(')').and_then(|r| r.rsplit_once(" (")) {
            Some((label, loc)) => (Some(label), loc),
            None => (None, rest),
        };
        // A Java or .NET frame is not a JavaScript one.
        if label.is_none() && (loc.contains('(') || loc.contains(' ')) {
            continue;
        }
        let (path, line) = split_location(loc);
        frames.push(frame(Some(path), line, label));
    }
    frames
}

/// Go `runtime.Stack` / panic output: a function line, then a tab-indented `file:line`.
/// ```text
/// main.checkout(0x1)
///         /app/main.go:42 +0x1d
/// ```
fn go(text: &str) -> Vec<StackFrame> {
    let mut frames = Vec::new();
    let mut label: Option<&str> = None;
    for line in text.lines() {
        if line.starts_with('\t') || line.starts_with("        ") {
            let Some(func) = label.take() else {
                continue;
            };
            let loc = line.trim();
            let loc = loc.split(" +0x").next().unwrap_or(loc);
            let (path, line_no) = match loc.rsplit_once(':') {
                Some((p, l)) => (p, l.parse().ok()),
                None => (loc, None),
            };
            if line_no.is_some() {
                frames.push(frame(Some(path), line_no, Some(func)));
            }
            continue;
        }
        let t = line.trim();
        label = if t.starts_with("goroutine ") || t.is_empty() || t.starts_with("panic:") {
            None
        } else if let Some(creator) = t.strip_prefix("created by ") {
            Some(creator.split(" in goroutine").next().unwrap_or(creator))
        } else {
            t.rsplit_once('(')
                .map(|(f, _)| f)
                .filter(|f| !f.contains(' '))
        };
    }
    frames
}

/// .NET `Exception.StackTrace`:
/// ```text
///    at Shop.Checkout.Pay(Int32 amount) in /src/Checkout.cs:line 42
/// ```
fn dotnet(text: &str) -> Vec<StackFrame> {
    let mut frames = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("at ") else {
            continue;
        };
        match rest.rsplit_once(" in ") {
            Some((label, loc)) => {
                let (path, line) = match loc.rsplit_once(":line ") {
                    Some((p, l)) => (p, l.trim().parse().ok()),
                    None => (loc, None),
                };
                frames.push(frame(Some(path), line, Some(label)));
            }
            None if rest.ends_with(')') && rest.contains(' ') || rest.ends_with("()") => {
                frames.push(frame(None, None, Some(rest)));
            }
            None => {}
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, line: u32, label: &str) -> StackFrame {
        StackFrame {
            path: Some(path.into()),
            line: Some(line),
            label: Some(label.into()),
        }
    }

    const RUST: &str = "   0: std::backtrace::Backtrace::create
             at /rustc/abc/library/std/src/backtrace.rs:331:13
   1: shop::checkout::pay::h0123456789abcdef
             at ./src/checkout.rs:42:9
   2: main
";

    const PYTHON: &str = "Traceback (most recent call last):
  File \"/app/main.py\", line 30, in <module>
    main()
  File \"/app/shop/checkout.py\", line 12, in pay
    raise ValueError(\"no card\")
ValueError: no card
";

    const JAVA: &str = "java.lang.IllegalStateException: no card
\tat com.shop.Checkout.pay(Checkout.java:42)
\tat com.shop.Main.main(Main.java:7)
\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)
Caused by: java.io.IOException: down
\tat com.shop.Card.read(Card.java:3)
";

    const JS: &str = "Error: no card
    at pay (/app/checkout.js:12:7)
    at async Server.<anonymous> (/app/server.js:40:3)
    at /app/index.js:3:1
";

    const GO: &str = "goroutine 1 [running]:
main.pay(0x1)
\t/app/checkout.go:42 +0x1d
main.main()
\t/app/main.go:8 +0x18
created by net/http.(*Server).Serve in goroutine 5
\t/usr/local/go/src/net/http/server.go:3285 +0x4b4
";

    const DOTNET: &str = "System.InvalidOperationException: no card
   at Shop.Checkout.Pay(Int32 amount) in /src/Checkout.cs:line 42
   at Shop.Program.Main()
";

    #[test]
    fn each_language_is_parsed() {
        let cases: [(&str, &str, Vec<StackFrame>); 6] = [
            (
                "rust",
                RUST,
                vec![
                    f(
                        "/rustc/abc/library/std/src/backtrace.rs",
                        331,
                        "std::backtrace::Backtrace::create",
                    ),
                    f("./src/checkout.rs", 42, "shop::checkout::pay"),
                    StackFrame {
                        label: Some("main".into()),
                        ..Default::default()
                    },
                ],
            ),
            (
                "python",
                PYTHON,
                vec![
                    f("/app/shop/checkout.py", 12, "pay"),
                    f("/app/main.py", 30, "<module>"),
                ],
            ),
            (
                "java",
                JAVA,
                vec![
                    f("Checkout.java", 42, "com.shop.Checkout.pay"),
                    f("Main.java", 7, "com.shop.Main.main"),
                    StackFrame {
                        path: Some("Native Method".into()),
                        line: None,
                        label: Some(
                            "java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0"
                                .into(),
                        ),
                    },
                ],
            ),
            (
                "nodejs",
                JS,
                vec![
                    f("/app/checkout.js", 12, "pay"),
                    f("/app/server.js", 40, "async Server.<anonymous>"),
                    StackFrame {
                        path: Some("/app/index.js".into()),
                        line: Some(3),
                        label: None,
                    },
                ],
            ),
            (
                "go",
                GO,
                vec![
                    f("/app/checkout.go", 42, "main.pay"),
                    f("/app/main.go", 8, "main.main"),
                    f(
                        "/usr/local/go/src/net/http/server.go",
                        3285,
                        "net/http.(*Server).Serve",
                    ),
                ],
            ),
            (
                "dotnet",
                DOTNET,
                vec![
                    f("/src/Checkout.cs", 42, "Shop.Checkout.Pay(Int32 amount)"),
                    StackFrame {
                        label: Some("Shop.Program.Main()".into()),
                        ..Default::default()
                    },
                ],
            ),
        ];
        for (language, text, want) in cases {
            assert_eq!(parse(text, Some(language)), want, "{language}");
            // Without the language hint the best parser is found anyway.
            assert_eq!(parse(text, None), want, "{language} detected");
        }
    }

    #[test]
    fn python_keeps_only_the_raised_traceback() {
        let text = format!(
            "{PYTHON}\nDuring handling of the above exception, another exception occurred:\n\n\
             Traceback (most recent call last):\n  File \"/app/retry.py\", line 5, in again\n"
        );
        assert_eq!(
            parse(&text, Some("python")),
            vec![f("/app/retry.py", 5, "again")]
        );
    }

    #[test]
    fn garbage_gives_no_frames() {
        for lang in [None, Some("rust"), Some("java"), Some("go"), Some("python")] {
            assert!(parse("something went wrong\n\n:::\nat", lang).is_empty());
        }
    }

    #[test]
    fn locations_with_columns_and_colons() {
        assert_eq!(split_location("/a/b.rs:10:5"), ("/a/b.rs", Some(10)));
        assert_eq!(split_location("/a/b.go:10"), ("/a/b.go", Some(10)));
        assert_eq!(split_location("C:/a/b.js:10:5"), ("C:/a/b.js", Some(10)));
        assert_eq!(split_location("native"), ("native", None));
    }
}
