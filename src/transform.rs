//! Subscription transforms: jq programs run on a message before delivery
//! (`transform`) or on a `/query` reply (`response_transform`).
//!
//! Programs are compiled once with jaq (jaq-core, jaq-std and jaq-json, so
//! the jq standard library is there) and then run on many messages. The
//! compiled filter is a table of terms and function pointers, which is
//! `Send + Sync`, so one `Transform` is shared by the worker pool behind an
//! `Arc`. The values a run works on (`jaq_json::Val`, built on `Rc`) are
//! created and dropped inside [`Transform::run`], on the calling thread.
//!
//! Limits, and what is not limited:
//! - We pull exactly one output: jaq's outputs are lazy, so `repeat(.)` or
//!   `range(1e18)` cost one step and later outputs are never evaluated.
//! - jaq's lexer, parser, compiler and interpreter recurse on the program's
//!   syntax tree, so a program is at most [`PROGRAM_BYTES_MAX`] bytes and an
//!   upper bound of its tree's depth at most [`PROGRAM_DEPTH_MAX`]. Such a
//!   program compiles and runs within [`STACK_BYTES`] of stack (a test checks
//!   it, in a debug build, with a wide margin): `compile` uses a thread of its
//!   own, and threads that call `run` must be given that much stack.
//! - Results nest at most [`OUTPUT_DEPTH_MAX`] deep and error messages are cut
//!   to [`ERROR_BYTES_MAX`] bytes.
//! - Not bounded, as jaq offers no fuel or depth budget: the CPU time and
//!   memory spent before the first output (`def f: f; f`,
//!   `last(range(1e18))`, `[range(1e9)]`) and the stack used by recursive
//!   definitions or by values the program nests deeply itself
//!   (`def f: 1 + f; f`), which can overflow the stack and abort the process.
//!   Only the caller can contain these, with a watchdog or a child process.

use std::{
    fmt::{self, Write as _},
    thread,
};

use jaq_core::{
    Compiler, Ctx, Exn, Vars,
    compile::Undefined,
    data::JustLut,
    load::{self, Arena, File, Loader, lex, parse},
};
use jaq_json::{Num, Val};
use serde::Deserialize as _;
use serde_json::{Map, Number, Value};

/// Largest program text accepted; real transforms are a few lines.
pub const PROGRAM_BYTES_MAX: usize = 64 * 1024;
/// Largest accepted bound on a program's syntax tree depth (see
/// `depth_bound`). A 100-field object construction with a pipe in each field
/// counts about 300.
pub const PROGRAM_DEPTH_MAX: usize = 1024;
/// Stack for threads that compile or run transforms. Running programs at
/// [`PROGRAM_DEPTH_MAX`] took up to 8 MiB in a debug build and 1 MiB in a
/// release build; the stack is virtual memory, touched only as deep as a
/// program goes.
pub const STACK_BYTES: usize = 32 * 1024 * 1024;
/// Deepest result accepted. serde_json refuses to parse deeper documents by
/// default, so a deeper body could be read back neither by us nor by most
/// receivers.
pub const OUTPUT_DEPTH_MAX: usize = 128;
/// Longest error text kept: it ends up in logs and alerts, and a failing
/// program can easily put a whole 10 MiB message in its error.
pub const ERROR_BYTES_MAX: usize = 1024;
/// Native filters left out: `env` would hand the server's environment, which
/// may hold secrets, to a program whose output leaves the building.
const FILTERS_EXCLUDED: &[&str] = &["env"];

type Data = JustLut<Val>;

/// A compiled jq program.
pub struct Transform {
    program: String,
    filter: jaq_core::Filter<Data>,
}

// The worker pool shares one compiled program between threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Transform>();
};

impl fmt::Debug for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transform")
            .field("program", &self.program)
            .finish_non_exhaustive()
    }
}

impl Transform {
    /// Compiles a jq program. The error is a human-readable message naming
    /// what is wrong and where, for the operator API's 400. Compiling happens
    /// on a thread with [`STACK_BYTES`] of stack, whatever the caller's.
    pub fn compile(program: &str) -> Result<Transform, String> {
        check_shape(program)?;
        thread::scope(|scope| {
            let compiler = thread::Builder::new()
                .name("jq-compile".to_owned())
                .stack_size(STACK_BYTES)
                .spawn_scoped(scope, || compile_here(program))
                .map_err(|e| format!("cannot start the jq compiler: {e}"))?;
            compiler
                .join()
                .unwrap_or_else(|_| Err("the jq compiler panicked".to_owned()))
        })
    }

    /// Runs the program on a JSON value. `Ok(None)` when the first output is
    /// `null` or there is none (`empty`): the log is then `Filtered`. Later
    /// outputs are ignored. A runtime error is `Err(message)`. The calling
    /// thread needs [`STACK_BYTES`] of stack.
    pub fn run(&self, input: &Value) -> Result<Option<Value>, String> {
        let input = Val::deserialize(input).map_err(|e| format!("cannot read input: {e}"))?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        match self.filter.id.run((ctx, input)).next() {
            None => Ok(None),
            // NaN becomes `null` too, and is filtered like it.
            Some(Ok(output)) => Ok(Some(to_json(&output, 0)?).filter(|json| !json.is_null())),
            Some(Err(exn)) => Err(exception_text(exn)),
        }
    }

    /// The program text as given to [`Transform::compile`].
    pub fn program(&self) -> &str {
        &self.program
    }
}

fn compile_here(program: &str) -> Result<Transform, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, ..)| !FILTERS_EXCLUDED.contains(name));
    let arena = Arena::default();
    let file = File {
        code: program,
        path: (),
    };
    let modules = Loader::new(defs)
        .load(&arena, file)
        .map_err(|errs| load_errors(program, errs))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| compile_errors(program, errs))?;
    Ok(Transform {
        program: program.to_owned(),
        filter,
    })
}

/// Refuses programs too large or too deep for jaq's recursion.
fn check_shape(program: &str) -> Result<(), String> {
    if program.len() > PROGRAM_BYTES_MAX {
        let bytes = program.len();
        return Err(format!(
            "program is {bytes} bytes, more than the {PROGRAM_BYTES_MAX} allowed"
        ));
    }
    let depth = depth_bound(program);
    if depth > PROGRAM_DEPTH_MAX {
        return Err(format!(
            "program is too deeply nested: its depth counts {depth}, more than the \
             {PROGRAM_DEPTH_MAX} allowed (each bracket, operator and keyword counts)"
        ));
    }
    Ok(())
}

/// Symbols that may each add a level to jaq's syntax tree.
const OPERATOR_CHARS: &str = "|,:;+-*/%=<>!?";
/// Keywords that may each add a level to jaq's syntax tree.
const KEYWORDS: &[&str] = &[
    "and", "or", "as", "if", "then", "elif", "else", "reduce", "foreach", "try", "catch", "def",
    "label",
];

/// One open bracket, string or interpolation while scanning a program.
struct Level {
    closer: char,
    /// Operators, keywords and brackets seen directly inside this level.
    steps: usize,
    /// The deepest level closed inside this one.
    inner: usize,
}

/// An upper bound on the depth of jaq's syntax tree for `program`, found
/// without recursion. A level's depth is at most one, plus one per operator,
/// keyword or bracket directly inside it (a chain of k operators parses as a
/// tree k deep), plus the depth of its deepest inner level.
fn depth_bound(program: &str) -> usize {
    let close = |levels: &mut Vec<Level>| {
        if let [.., outer, inner] = &mut levels[..] {
            outer.inner = outer.inner.max(1 + inner.steps + inner.inner);
            levels.pop();
        }
    };
    let open = |levels: &mut Vec<Level>, closer| {
        levels.last_mut().expect("the root level stays open").steps += 1;
        levels.push(Level {
            closer,
            steps: 0,
            inner: 0,
        });
    };
    let mut levels = vec![Level {
        closer: '\0',
        steps: 0,
        inner: 0,
    }];
    let mut chars = program.chars().peekable();
    while let Some(c) = chars.next() {
        let top = levels.last_mut().expect("the root level stays open");
        match (top.closer, c) {
            ('"', '"') => close(&mut levels),
            ('"', '\\') => {
                if chars.next() == Some('(') {
                    open(&mut levels, ')');
                }
            }
            ('"', _) => {}
            (_, '#') => chars.by_ref().take_while(|&c| c != '\n').for_each(drop),
            (_, '"') => open(&mut levels, '"'),
            (_, '(') => open(&mut levels, ')'),
            (_, '[') => open(&mut levels, ']'),
            (_, '{') => open(&mut levels, '}'),
            (closer, _) if closer == c => close(&mut levels),
            (_, c) if OPERATOR_CHARS.contains(c) => top.steps += 1,
            (_, c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut word = String::from(c);
                while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    word.push(c);
                }
                top.steps += usize::from(KEYWORDS.contains(&word.as_str()));
            }
            _ => {}
        }
    }
    while levels.len() > 1 {
        close(&mut levels);
    }
    levels[0].steps + levels[0].inner
}

fn load_errors(program: &str, errs: load::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (_file, err) in errs {
        match err {
            load::Error::Io(errs) => {
                for (path, why) in errs {
                    messages.push(format!("cannot load module {path:?}: {why}"));
                }
            }
            load::Error::Lex(errs) => {
                for (expect, at) in errs {
                    messages.push(lex_error(program, expect, at));
                }
            }
            load::Error::Parse(errs) => {
                for (expect, found) in errs {
                    messages.push(parse_error(program, expect, found));
                }
            }
        }
    }
    messages.join("; ")
}

fn parse_error(program: &str, expect: parse::Expect<&str>, found: &str) -> String {
    let at = location(program, found);
    let expected = expect.as_str();
    let found = match found {
        "" => "the end of the program".to_owned(),
        found => format!("`{}`", shorten(found, 40)),
    };
    format!("syntax error: expected {expected}, found {found}{at}")
}

fn lex_error(program: &str, expect: lex::Expect<&str>, at: &str) -> String {
    match expect {
        // The slice is the opening delimiter itself, so point at it.
        lex::Expect::Delim(open) => {
            let at = location(program, open);
            format!("syntax error: `{open}` is never closed{at}")
        }
        expect => {
            let at = location(program, at);
            format!("syntax error: expected {}{at}", expect.as_str())
        }
    }
}

fn compile_errors(program: &str, errs: jaq_core::compile::Errors<&str, ()>) -> String {
    let messages = errs.into_iter().flat_map(|(_file, errs)| errs);
    let messages = messages.map(|(name, undefined)| {
        let at = location(program, name);
        match undefined {
            Undefined::Filter(arity) => format!("undefined filter `{name}/{arity}`{at}"),
            other => format!("undefined {} `{name}`{at}", other.as_str()),
        }
    });
    messages.collect::<Vec<_>>().join("; ")
}

/// " at line L, column C" for a slice of the program, or nothing when the
/// slice lies elsewhere (in the standard library, say).
fn location(program: &str, part: &str) -> String {
    let offset = (part.as_ptr() as usize).checked_sub(program.as_ptr() as usize);
    let Some(before) = offset.and_then(|offset| program.get(..offset)) else {
        return String::new();
    };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!(" at line {line}, column {column}")
}

/// The first `chars_max` characters of `text`, with an ellipsis if cut.
fn shorten(text: &str, chars_max: usize) -> String {
    match text.char_indices().nth(chars_max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The message of a runtime exception, cut to [`ERROR_BYTES_MAX`] bytes.
fn exception_text(exn: Exn<'_, Val>) -> String {
    match exn.get_err() {
        Ok(err) => {
            // Writing stops once the buffer is full, so a huge value in the
            // error is never rendered whole; the `fmt::Error` that stops it is
            // expected.
            let mut text = Bounded(String::new());
            let _ = write!(text, "{err}");
            // `error("boom")` renders as the JSON string `"boom"`: show the
            // text itself, as jq does.
            match serde_json::from_str::<String>(&text.0) {
                Ok(unquoted) => unquoted,
                Err(_) => text.0,
            }
        }
        // `halt` and `halt_error` would end the whole process if we let them.
        Err(exn) => match exn.get_halt() {
            Ok(code) => format!("program called halt with exit code {code}"),
            Err(_) => "program ended with an unexpected exception".to_owned(),
        },
    }
}

/// A string that takes at most [`ERROR_BYTES_MAX`] bytes and then refuses
/// more, ending with an ellipsis.
struct Bounded(String);

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = ERROR_BYTES_MAX.saturating_sub(self.0.len());
        if s.len() <= room {
            self.0.push_str(s);
            return Ok(());
        }
        let end = (0..=room)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        self.0.push_str(&s[..end]);
        self.0.push('…');
        Err(fmt::Error)
    }
}

/// Converts a jaq result to JSON. Integers stay integers while they fit in
/// 64 bits, like every number serde_json can hold; floats stay floats; NaN
/// becomes `null` and infinities the largest finite floats, as in jq.
fn to_json(val: &Val, depth: usize) -> Result<Value, String> {
    let nested = || {
        (depth < OUTPUT_DEPTH_MAX)
            .then_some(depth + 1)
            .ok_or_else(|| format!("result nests deeper than {OUTPUT_DEPTH_MAX} levels"))
    };
    Ok(match val {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => num_to_json(n),
        Val::TStr(s) | Val::BStr(s) => Value::String(String::from_utf8_lossy(s).into_owned()),
        Val::Arr(items) => {
            let depth = nested()?;
            let items = items.iter().map(|item| to_json(item, depth));
            Value::Array(items.collect::<Result<_, _>>()?)
        }
        Val::Obj(entries) => {
            let depth = nested()?;
            let mut map = Map::new();
            for (key, value) in entries.iter() {
                let key = match key {
                    Val::TStr(k) | Val::BStr(k) => String::from_utf8_lossy(k).into_owned(),
                    other => {
                        let key = shorten(&other.to_string(), 40);
                        return Err(format!("object key {key} is not a string"));
                    }
                };
                map.insert(key, to_json(value, depth)?);
            }
            Value::Object(map)
        }
    })
}

fn num_to_json(n: &Num) -> Value {
    match n {
        Num::Int(i) => Value::from(*i),
        Num::BigInt(i) => {
            let text = i.to_string();
            match (text.parse::<i64>(), text.parse::<u64>()) {
                (Ok(i), _) => Value::from(i),
                (_, Ok(u)) => Value::from(u),
                _ => float_to_json(text.parse().unwrap_or(f64::NAN)),
            }
        }
        Num::Float(f) => float_to_json(*f),
        Num::Dec(text) => float_to_json(text.parse().unwrap_or(f64::NAN)),
    }
}

fn float_to_json(f: f64) -> Value {
    let f = if f.is_infinite() {
        f.signum() * f64::MAX
    } else {
        f
    };
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(program: &str, input: Value) -> Result<Option<Value>, String> {
        Transform::compile(program).unwrap().run(&input)
    }

    fn compile_error(program: &str) -> String {
        Transform::compile(program).unwrap_err()
    }

    fn patient() -> Value {
        json!({
            "Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient"},
            "Patient": {
                "Identifiers": [
                    {"ID": "0000000001", "IDType": "MR"},
                    {"ID": "123-45-6789", "IDType": "SSN"}
                ],
                "Demographics": {"FirstName": "Timothy", "SSN": "123-45-6789"}
            }
        })
    }

    #[test]
    fn identity_returns_the_input() {
        assert_eq!(run(".", patient()), Ok(Some(patient())));
    }

    #[test]
    fn rewrites_a_field() {
        let out = run(".Meta.Test = true", patient()).unwrap().unwrap();
        assert_eq!(out["Meta"]["Test"], json!(true));
        assert_eq!(out["Meta"]["EventType"], json!("NewPatient"));
    }

    #[test]
    fn deletes_a_field() {
        let out = run("del(.Patient.Demographics.SSN)", patient());
        let mut expected = patient();
        expected["Patient"]["Demographics"]
            .as_object_mut()
            .unwrap()
            .remove("SSN");
        assert_eq!(out, Ok(Some(expected)));
    }

    #[test]
    fn updates_with_map_and_select() {
        let program = r#".Patient.Identifiers |= map(select(.IDType != "SSN"))"#;
        let out = run(program, patient()).unwrap().unwrap();
        assert_eq!(
            out["Patient"]["Identifiers"],
            json!([{"ID": "0000000001", "IDType": "MR"}])
        );
    }

    #[test]
    fn select_passes_or_filters() {
        let program = r#"select(.Meta.EventType == "NewPatient")"#;
        assert_eq!(run(program, patient()), Ok(Some(patient())));
        let mut other = patient();
        other["Meta"]["EventType"] = json!("PatientUpdate");
        assert_eq!(run(program, other), Ok(None));
        assert_eq!(
            run("if .x then . else empty end", json!({"x": false})),
            Ok(None)
        );
    }

    #[test]
    fn null_and_empty_filter() {
        assert_eq!(run("null", patient()), Ok(None));
        assert_eq!(run(".Missing", patient()), Ok(None));
        assert_eq!(run("empty", patient()), Ok(None));
    }

    #[test]
    fn first_of_several_outputs_wins() {
        assert_eq!(run("1, 2, 3", json!(null)), Ok(Some(json!(1))));
        assert_eq!(run("null, 2", json!(null)), Ok(None));
        // Only the first output is pulled, so endless streams end at once.
        assert_eq!(run("repeat(.)", json!("a")), Ok(Some(json!("a"))));
        assert_eq!(run("range(1e18)", json!(null)), Ok(Some(json!(0))));
        assert_eq!(run("1, error(\"later\")", json!(null)), Ok(Some(json!(1))));
    }

    #[test]
    fn standard_library_and_strings() {
        let program = r#""\(.Meta.EventType | ascii_downcase)-\(.n | tostring)""#;
        let input = json!({"Meta": {"EventType": "NewPatient"}, "n": 7});
        assert_eq!(run(program, input), Ok(Some(json!("newpatient-7"))));
        assert_eq!(
            run(".Meta.EventType", patient()),
            Ok(Some(json!("NewPatient")))
        );
    }

    #[test]
    fn runtime_errors_are_messages() {
        assert_eq!(run(r#"error("boom")"#, json!(null)), Err("boom".to_owned()));
        let err = run(".a.b", json!({"a": "text"})).unwrap_err();
        assert!(
            err.contains("cannot index") && err.contains("text"),
            "{err}"
        );
        let err = run("error({code: 7})", json!(null)).unwrap_err();
        assert_eq!(err, r#"{"code":7}"#);
    }

    #[test]
    fn halt_is_an_error_not_an_exit() {
        let err = run("halt", json!(null)).unwrap_err();
        assert!(err.contains("halt"), "{err}");
    }

    #[test]
    fn long_errors_are_cut() {
        let big = "x".repeat(10 * ERROR_BYTES_MAX);
        let err = run("error(.)", json!(big)).unwrap_err();
        assert!(
            err.len() <= ERROR_BYTES_MAX + '…'.len_utf8(),
            "{}",
            err.len()
        );
        assert!(err.ends_with('…'));
    }

    #[test]
    fn syntax_errors_say_what_and_where() {
        let err = compile_error(".a |");
        assert!(
            err.contains("syntax error") && err.contains("end of the program"),
            "{err}"
        );
        assert!(err.contains("line 1, column 5"), "{err}");
        let err = compile_error(".a\n| if . then 1 else 2");
        assert!(err.contains("expected") && err.contains("line 2"), "{err}");
        let err = compile_error(".a | (1 + 2");
        assert!(
            err.contains("`(` is never closed at line 1, column 6"),
            "{err}"
        );
    }

    #[test]
    fn undefined_names_are_reported() {
        let err = compile_error(". | frobnicate(1)");
        assert_eq!(err, "undefined filter `frobnicate/1` at line 1, column 5");
        let err = compile_error("$nope");
        assert!(err.contains("undefined variable `$nope`"), "{err}");
        // The environment may hold secrets, so `env` is not offered.
        assert!(compile_error("env").contains("undefined filter `env/0`"));
    }

    #[test]
    fn oversized_and_overdeep_programs_are_refused() {
        let long = format!(". # {}", "x".repeat(PROGRAM_BYTES_MAX));
        assert!(compile_error(&long).contains("bytes"));
        for deep in [
            "[".repeat(600),
            "1 + ".repeat(1100) + "1",
            "-".repeat(1100) + "1",
        ] {
            assert!(
                compile_error(&deep).contains("too deeply nested"),
                "{deep:.20}"
            );
        }
        // Brackets and operators inside strings and comments do not count.
        let quoted = format!(r#""{}" # {}"#, "(+".repeat(1000), "[".repeat(1000));
        assert_eq!(
            run(&quoted, json!(null)),
            Ok(Some(json!("(+".repeat(1000))))
        );
    }

    /// The deepest program of a shape that `check_shape` accepts.
    fn deepest(shape: fn(usize) -> String) -> String {
        let fits = |n| depth_bound(&shape(n)) <= PROGRAM_DEPTH_MAX;
        let n = (1..).find(|&n| !fits(n)).unwrap() - 1;
        shape(n)
    }

    #[test]
    fn programs_at_the_depth_limit_fit_the_stack() {
        let shapes: [fn(usize) -> String; 14] = [
            |n| "[".repeat(n) + "." + &"]".repeat(n),
            |n| "(".repeat(n) + "." + &")".repeat(n),
            |n| "{a:".repeat(n) + "." + &"}".repeat(n),
            |n| "\"\\(".repeat(n) + "." + &")\"".repeat(n),
            |n| "(1 + ".repeat(n) + "1" + &")".repeat(n),
            |n| "[.[] | ".repeat(n) + "." + &"]".repeat(n),
            |n| "if . then ".repeat(n) + "1" + &" else 2 end".repeat(n),
            |n| "1 + ".repeat(n) + "1",
            |n| ". | ".repeat(n) + ".",
            |n| "[".to_owned() + &"1, ".repeat(n) + "1]",
            |n| "{".to_owned() + &(0..n).map(|i| format!("a{i}: .x, ")).collect::<String>() + "}",
            |n| "-".repeat(n) + "1",
            |n| ".".to_owned() + &"[0]".repeat(n),
            |n| (0..n).map(|i| format!("def f{i}: 1; ")).collect::<String>() + ".",
        ];
        // Debug builds use the most stack; a run that overflows aborts the test.
        let checks = thread::Builder::new()
            .stack_size(STACK_BYTES)
            .spawn(move || {
                for shape in shapes {
                    let program = deepest(shape);
                    let transform = Transform::compile(&program).unwrap();
                    let _ = transform.run(&json!([[1]]));
                }
            });
        checks.unwrap().join().unwrap();
    }

    #[test]
    fn overdeep_results_are_refused() {
        let err = run("reduce range(200) as $i (.; [.])", json!(1)).unwrap_err();
        assert!(err.contains("nests deeper"), "{err}");
        let ok = run("reduce range(100) as $i (.; [.])", json!(1));
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn unicode_is_preserved() {
        let input = json!({"name": "Zoë Ñúñez 山田太郎 🏥", "note": "a\u{0}b\"c\\"});
        assert_eq!(run(".", input.clone()), Ok(Some(input.clone())));
        assert_eq!(run(".name | length", input), Ok(Some(json!(16))));
    }

    #[test]
    fn numbers_keep_their_kind() {
        let input =
            json!({"i": 12345678901234_i64, "neg": -42, "u": u64::MAX, "f": 1.5, "one": 1.0});
        let out = run(".", input.clone()).unwrap().unwrap();
        assert_eq!(out, input);
        assert!(out["i"].is_i64() && out["u"].is_u64());
        assert!(out["f"].is_f64() && out["one"].is_f64());
        assert_eq!(out.to_string(), input.to_string());
        assert_eq!(
            run(".i + 1", input.clone()),
            Ok(Some(json!(12345678901235_i64)))
        );
        assert_eq!(run(".f * 2", input.clone()), Ok(Some(json!(3.0))));
        assert_eq!(run("0.25", json!(null)), Ok(Some(json!(0.25))));
        assert_eq!(run("nan", json!(null)), Ok(None));
        assert_eq!(run("infinite", json!(null)), Ok(Some(json!(f64::MAX))));
    }

    #[test]
    fn non_string_keys_are_refused() {
        let err = run("{(1): 2}", json!(null));
        assert!(err.is_err(), "{err:?}");
    }

    #[test]
    fn debug_shows_the_program() {
        let transform = Transform::compile(".Meta").unwrap();
        assert_eq!(transform.program(), ".Meta");
        assert!(format!("{transform:?}").contains("\".Meta\""));
    }

    #[test]
    fn shared_between_threads() {
        // `Transform: Send + Sync` is also asserted at compile time above.
        let transform = std::sync::Arc::new(Transform::compile(".n + 1").unwrap());
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let transform = std::sync::Arc::clone(&transform);
                std::thread::spawn(move || transform.run(&json!({"n": n})))
            })
            .collect();
        let outputs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let expected: Vec<_> = (1..=4).map(|n| Ok(Some(json!(n)))).collect();
        assert_eq!(outputs, expected);
    }
}
