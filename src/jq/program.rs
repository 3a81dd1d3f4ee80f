//! Subscription transforms: jq programs run on a message before delivery
//! (`transform`) or on a `/query` reply (`response_transform`).
//!
//! Programs are compiled once with jaq (jaq-core, jaq-std and jaq-json, so the
//! jq standard library is there) and run on many messages. The compiled filter
//! is a table of terms and function pointers, which is `Send + Sync`, so one
//! `Transform` is shared by the worker pool behind an `Arc`. The values a run
//! works on (`jaq_json::Val`, built on `Rc`) live only inside
//! [`Transform::run`], on the calling thread.
//!
//! Limits, and what is not limited:
//! - We pull exactly one output: jaq's outputs are lazy, so `repeat(.)` or
//!   `range(1e18)` cost one step and later outputs are never evaluated.
//! - jaq's lexer, parser, compiler and interpreter recurse on the syntax tree,
//!   so a program has at most [`PROGRAM_BYTES_MAX`] bytes and
//!   [`PROGRAM_STEPS_MAX`] brackets, operators and keywords, which bound the
//!   tree's depth. Such a program compiles and runs within [`STACK_BYTES`] of
//!   stack, as a test checks: `compile` uses a thread of its own; threads that
//!   call `run` need that much stack.
//! - Results nest at most [`OUTPUT_DEPTH_MAX`] deep; error texts are cut to
//!   [`ERROR_CHARS_MAX`] characters.
//! - Not bounded, as jaq has no fuel or depth budget: the CPU time and memory
//!   spent before the first output (`def f: f; f`, `last(range(1e18))`,
//!   `[range(1e9)]`), and the stack taken by recursive definitions
//!   (`def f: 1 + f; f`) or by values the program nests deeply, which can
//!   overflow and abort the process. The engine therefore runs programs in
//!   child processes with a time limit (`super::sandbox`); only the
//!   operator API's compile check runs here.

use std::{fmt, thread};

use jaq_core::{
    Compiler, Ctx, Exn, Vars,
    compile::{self, Undefined},
    data::JustLut,
    load::{self, Arena, File, Loader, lex},
};
use jaq_json::{Num, Val};
use serde::Deserialize as _;
use serde_json::{Map, Number, Value};

/// Largest program accepted; real transforms are a few lines.
pub const PROGRAM_BYTES_MAX: usize = 64 * 1024;
/// Most brackets, operator characters and keywords accepted in a program (see
/// `steps`). A 100-field object with a pipe in each field has 300.
pub const PROGRAM_STEPS_MAX: usize = 1024;
/// Stack for threads that compile or run transforms. At [`PROGRAM_STEPS_MAX`]
/// compiling took up to 12 MiB and running 8 MiB in a debug build, 2 MiB and
/// 1 MiB in a release build; the stack is virtual memory, touched only as
/// deep as a program goes.
pub const STACK_BYTES: usize = 32 * 1024 * 1024;
/// Deepest result accepted: serde_json refuses deeper documents by default,
/// so neither we nor most receivers could read the body back.
pub const OUTPUT_DEPTH_MAX: usize = 128;
/// Longest error text kept: it goes to logs and alerts, and a failing program
/// can put a whole 10 MiB message in its error.
pub const ERROR_CHARS_MAX: usize = 1000;
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
        let program = &self.program;
        f.debug_struct("Transform").field("program", program).finish_non_exhaustive()
    }
}

impl Transform {
    /// Compiles a jq program. The error is a human-readable message naming
    /// what is wrong and where, for the operator API's 400. Compiling happens
    /// on a thread with [`STACK_BYTES`] of stack, whatever the caller's.
    pub fn compile(program: &str) -> Result<Transform, String> {
        check_shape(program)?;
        thread::scope(|scope| {
            let builder = thread::Builder::new().name("jq-compile".to_owned());
            let compiler = builder
                .stack_size(STACK_BYTES)
                .spawn_scoped(scope, || compile_here(program))
                .map_err(|e| format!("cannot start the jq compiler: {e}"))?;
            let panicked = |_| Err("the jq compiler panicked".to_owned());
            compiler.join().unwrap_or_else(panicked)
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
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
    let funs = funs.filter(|(name, ..)| !FILTERS_EXCLUDED.contains(name));
    let arena = Arena::default();
    let file = File { code: program, path: () };
    let modules = Loader::new(defs).load(&arena, file).map_err(|errs| load_errors(program, errs))?;
    let filter = Compiler::default().with_funs(funs).compile(modules).map_err(|errs| compile_errors(program, errs))?;
    Ok(Transform { program: program.to_owned(), filter })
}

/// Refuses programs too large or too complex for jaq's recursion.
fn check_shape(program: &str) -> Result<(), String> {
    let bytes = program.len();
    if bytes > PROGRAM_BYTES_MAX {
        return Err(format!("program is {bytes} bytes, more than the {PROGRAM_BYTES_MAX} allowed"));
    }
    let steps = steps(program);
    if steps > PROGRAM_STEPS_MAX {
        return Err(format!(
            "program is too complex: it has {steps} brackets, operators and keywords, \
             more than the {PROGRAM_STEPS_MAX} allowed"
        ));
    }
    Ok(())
}

const OPERATOR_CHARS: &str = "|,:;+-*/%=<>!?";
const KEYWORDS: &[&str] =
    &["and", "or", "as", "if", "then", "elif", "else", "reduce", "foreach", "try", "catch", "def", "label"];

/// Counts the brackets, quotes, operator characters and keywords of
/// `program` outside strings and comments, without recursion. Each may add a
/// level to jaq's syntax tree (a chain of k operators parses as a tree k
/// deep), so their number bounds the tree's depth. Closing brackets count too,
/// as jaq takes more stack per nested bracket than per operator.
fn steps(program: &str) -> usize {
    // What closes each open bracket, string or string interpolation.
    let mut open = Vec::new();
    let mut steps = 0;
    let mut chars = program.chars().peekable();
    while let Some(c) = chars.next() {
        let closer = open.last().copied();
        let step = match (closer, c) {
            (Some('"'), '"') => open.pop().is_some(),
            // The guard consumes the escaped character either way.
            (Some('"'), '\\') if chars.next() == Some('(') => {
                open.push(')');
                true
            }
            (Some('"'), _) => false,
            (_, '#') => {
                chars.by_ref().take_while(|&c| c != '\n').for_each(drop);
                false
            }
            (_, '"' | '(' | '[' | '{') => {
                open.push(match c {
                    '(' => ')',
                    '[' => ']',
                    '{' => '}',
                    _ => '"',
                });
                true
            }
            _ if Some(c) == closer => open.pop().is_some(),
            _ if OPERATOR_CHARS.contains(c) => true,
            _ if c.is_ascii_alphabetic() || c == '_' => {
                let mut word = String::from(c);
                while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    word.push(c);
                }
                KEYWORDS.contains(&word.as_str())
            }
            _ => false,
        };
        steps += usize::from(step);
    }
    steps
}

fn load_errors(program: &str, errs: load::Errors<&str, ()>) -> String {
    let messages = errs.into_iter().flat_map(|(_file, err)| match err {
        load::Error::Io(errs) => {
            errs.into_iter().map(|(path, why)| format!("cannot load module {path:?}: {why}")).collect()
        }
        load::Error::Lex(errs) => errs.into_iter().map(|(expect, at)| lex_error(program, expect, at)).collect(),
        load::Error::Parse(errs) => errs
            .into_iter()
            .map(|(expect, found)| {
                let (expected, at) = (expect.as_str(), location(program, found));
                let found = match found {
                    "" => "the end of the program".to_owned(),
                    found => format!("`{}`", shorten(found, 40)),
                };
                format!("syntax error: expected {expected}, found {found}{at}")
            })
            .collect::<Vec<_>>(),
    });
    messages.collect::<Vec<_>>().join("; ")
}

fn lex_error(program: &str, expect: lex::Expect<&str>, at: &str) -> String {
    match expect {
        // This slice is the opening delimiter itself, so point at it.
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

fn compile_errors(program: &str, errs: compile::Errors<&str, ()>) -> String {
    let errs = errs.into_iter().flat_map(|(_file, errs)| errs);
    let messages = errs.map(|(name, undefined)| {
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

/// The text of a runtime exception, cut to [`ERROR_CHARS_MAX`] characters.
fn exception_text(exn: Exn<'_, Val>) -> String {
    match exn.get_err() {
        Ok(err) => {
            // `error("boom")` renders as the JSON string `"boom"`: show the
            // text itself, as jq does.
            let text = err.to_string();
            shorten(&serde_json::from_str(&text).unwrap_or(text), ERROR_CHARS_MAX)
        }
        // `halt` and `halt_error` would end the whole process if we let them.
        Err(exn) => match exn.get_halt() {
            Ok(code) => format!("program called halt with exit code {code}"),
            Err(_) => "program ended with an unexpected exception".to_owned(),
        },
    }
}

/// Converts a jaq result to JSON. Integers stay integers while they fit in
/// 64 bits, like every number serde_json holds; floats stay floats; NaN
/// becomes `null` and infinities the largest finite floats, as in jq.
fn to_json(val: &Val, depth: usize) -> Result<Value, String> {
    let nested = || match depth < OUTPUT_DEPTH_MAX {
        true => Ok(depth + 1),
        false => Err(format!("result nests deeper than {OUTPUT_DEPTH_MAX} levels")),
    };
    Ok(match val {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(Num::Int(i)) => Value::from(*i),
        Val::Num(Num::Float(f)) => float_to_json(*f),
        Val::Num(Num::BigInt(i)) => number_to_json(&i.to_string()),
        Val::Num(Num::Dec(text)) => number_to_json(text),
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
                let (Val::TStr(key) | Val::BStr(key)) = key else {
                    let key = shorten(&key.to_string(), 40);
                    return Err(format!("object key {key} is not a string"));
                };
                map.insert(String::from_utf8_lossy(key).into_owned(), to_json(value, depth)?);
            }
            Value::Object(map)
        }
    })
}

/// A big integer or a decimal literal: serde_json keeps it an integer if it
/// fits in 64 bits and makes it a float otherwise.
fn number_to_json(text: &str) -> Value {
    let float = || float_to_json(text.parse().unwrap_or(f64::NAN));
    serde_json::from_str(text).unwrap_or_else(|_| float())
}

fn float_to_json(f: f64) -> Value {
    let f = if f.is_infinite() { f.signum() * f64::MAX } else { f };
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn run(program: &str, input: Value) -> Result<Option<Value>, String> {
        Transform::compile(program).unwrap().run(&input)
    }

    fn compile_error(program: &str) -> String {
        Transform::compile(program).unwrap_err()
    }

    /// Runs each program on `input`; an expected `null` stands for `Ok(None)`,
    /// a filtered message.
    fn check(input: &Value, cases: &[(&str, Result<Value, &str>)]) {
        for (program, expected) in cases {
            let expected = match expected {
                Ok(Value::Null) => Ok(None),
                Ok(value) => Ok(Some(value.clone())),
                Err(text) => Err(text.to_string()),
            };
            assert_eq!(run(program, input.clone()), expected, "{program}");
        }
    }

    #[test]
    fn rewrites_deletes_and_filters() {
        let patient = json!({"Meta": {"EventType": "NewPatient"}, "Patient": {
            "Identifiers": [{"ID": "1", "IDType": "MR"}, {"ID": "2", "IDType": "SSN"}],
            "Demographics": {"FirstName": "Timothy", "SSN": "123-45-6789"}}});
        let [mut tested, mut deleted, mut kept] = [(); 3].map(|_| patient.clone());
        tested["Meta"]["Test"] = json!(true);
        deleted["Patient"]["Demographics"] = json!({"FirstName": "Timothy"});
        kept["Patient"]["Identifiers"] = json!([{"ID": "1", "IDType": "MR"}]);
        check(
            &patient,
            &[
                (".", Ok(patient.clone())),
                (".Meta.EventType", Ok(json!("NewPatient"))),
                (".Meta.Test = true", Ok(tested)),
                ("del(.Patient.Demographics.SSN)", Ok(deleted)),
                (r#".Patient.Identifiers |= map(select(.IDType != "SSN"))"#, Ok(kept)),
                (r#"select(.Meta.EventType == "NewPatient")"#, Ok(patient.clone())),
                (r#"select(.Meta.EventType == "Other")"#, Ok(json!(null))),
                ("if .x then . else empty end", Ok(json!(null))),
                ("null", Ok(json!(null))),
                (".Missing", Ok(json!(null))),
                ("empty", Ok(json!(null))),
            ],
        );
    }

    #[test]
    fn outputs_strings_and_errors() {
        let input = json!({"Meta": {"EventType": "NewPatient"}, "n": 7, "a": "text"});
        check(
            &input,
            &[
                ("1, 2, 3", Ok(json!(1))),
                ("null, 2", Ok(json!(null))),
                (r#"1, error("later")"#, Ok(json!(1))),
                // Later outputs are never evaluated, so endless streams end at once.
                ("repeat(.)", Ok(input.clone())),
                ("range(1e18)", Ok(json!(0))),
                (r#""\(.Meta.EventType | ascii_downcase)-\(.n | tostring)""#, Ok(json!("newpatient-7"))),
                (r#"error("boom")"#, Err("boom")),
                ("error({code: 7})", Err(r#"{"code":7}"#)),
                (".a.b", Err(r#"cannot index "text" with "b""#)),
                // `halt` must not end the process.
                ("halt", Err("program called halt with exit code 0")),
                ("{(1): 2}", Err("object key 1 is not a string")),
            ],
        );
        let err = run("error(.)", json!("x".repeat(10 * ERROR_CHARS_MAX))).unwrap_err();
        assert_eq!(err, "x".repeat(ERROR_CHARS_MAX) + "…");
    }

    #[test]
    fn unicode_and_numbers_are_preserved() {
        let input = json!({"name": "Zoë Ñúñez 山田太郎 🏥", "note": "a\u{0}b\"c\\",
            "i": 12345678901234_i64, "n": -42, "u": u64::MAX, "f": 1.5, "one": 1.0});
        let out = run(".", input.clone()).unwrap().unwrap();
        assert_eq!(out.to_string(), input.to_string());
        assert!(out["i"].is_i64() && out["u"].is_u64() && out["one"].is_f64());
        check(
            &input,
            &[
                (".name | length", Ok(json!(16))),
                (".i + 1", Ok(json!(12345678901235_i64))),
                (".f * 2", Ok(json!(3.0))),
                ("0.25, 1e400", Ok(json!(0.25))),
                ("nan", Ok(json!(null))),
                ("infinite", Ok(json!(f64::MAX))),
            ],
        );
    }

    #[test]
    fn compile_errors_say_what_and_where() {
        let cases = [
            (".a |", "syntax error: expected term, found the end of the program at line 1, column 5"),
            (
                ".a\n| if . then 1 else 2",
                "syntax error: expected end, found the end of the program at line 2, column 21",
            ),
            (".a | (1 + 2", "syntax error: `(` is never closed at line 1, column 6"),
            (". | frobnicate(1)", "undefined filter `frobnicate/1` at line 1, column 5"),
            ("$nope", "undefined variable `$nope` at line 1, column 1"),
            // The environment may hold secrets, so `env` is not offered.
            ("env", "undefined filter `env/0` at line 1, column 1"),
        ];
        for (program, expected) in cases {
            assert_eq!(compile_error(program), expected);
        }
    }

    #[test]
    fn oversized_programs_and_results_are_refused() {
        assert!(compile_error(&format!(". # {}", "x".repeat(PROGRAM_BYTES_MAX))).contains("bytes"));
        for program in ["[".repeat(2000), "1 + ".repeat(1100) + "1", "-".repeat(1100) + "1"] {
            assert!(compile_error(&program).contains("too complex"), "{program:.20}");
        }
        // Brackets and operators in strings and comments do not count.
        let quoted = format!(r#""{}" # {}"#, "(+".repeat(1000), "[".repeat(1000));
        assert_eq!(run(&quoted, json!(null)), Ok(Some(json!("(+".repeat(1000)))));
        let err = run("reduce range(200) as $i (.; [.])", json!(1)).unwrap_err();
        assert_eq!(err, "result nests deeper than 128 levels");
        assert!(run("reduce range(100) as $i (.; [.])", json!(1)).is_ok());
    }

    #[test]
    fn programs_at_the_limit_fit_the_stack() {
        let shapes: [fn(usize) -> String; 14] = [
            |n| "[".repeat(n) + "." + &"]".repeat(n),
            |n| "(".repeat(n) + "." + &")".repeat(n),
            |n| "{a:".repeat(n) + "." + &"}".repeat(n),
            |n| r#""\("#.repeat(n) + "." + &r#")""#.repeat(n),
            |n| "[.[] | ".repeat(n) + "." + &"]".repeat(n),
            |n| "if . then ".repeat(n) + "1" + &" else 2 end".repeat(n),
            |n| "reduce .[] as $x (0; ".repeat(n) + "." + &")".repeat(n),
            |n| "1 + ".repeat(n) + "1",
            |n| ". | ".repeat(n) + ".",
            |n| "-".repeat(n) + "1",
            |n| "[".to_owned() + &"1, ".repeat(n) + "1]",
            |n| ".".to_owned() + &"[0]".repeat(n),
            |n| "{".to_owned() + &(0..n).map(|i| format!("a{i}: .x, ")).collect::<String>() + "}",
            |n| (0..n).map(|i| format!("def f{i}: 1; ")).collect::<String>() + ".",
        ];
        // Debug builds take the most stack; an overflow aborts the test run.
        let checks = move || {
            for shape in shapes {
                let n = (1..).find(|&n| steps(&shape(n)) > PROGRAM_STEPS_MAX);
                let transform = Transform::compile(&shape(n.unwrap() - 1)).unwrap();
                let _ = transform.run(&json!([[1]]));
            }
        };
        let builder = thread::Builder::new().stack_size(STACK_BYTES);
        builder.spawn(checks).unwrap().join().unwrap();
    }

    #[test]
    fn shared_between_threads_and_debug_printed() {
        // `Transform: Send + Sync` is also asserted at compile time.
        let transform = Arc::new(Transform::compile(".n + 1").unwrap());
        assert_eq!(transform.program(), ".n + 1");
        assert!(format!("{transform:?}").contains(r#"program: ".n + 1""#));
        let runs: Vec<_> = (0..4)
            .map(|n| (Arc::clone(&transform), json!({"n": n})))
            .map(|(transform, input)| thread::spawn(move || transform.run(&input)))
            .collect();
        for (n, run) in (1..).zip(runs) {
            assert_eq!(run.join().unwrap(), Ok(Some(json!(n))));
        }
    }
}
