//! Compiling a jq program so that no record can crash the process: every function the program
//! (or jq's library) defines runs behind a guard that fails the evaluation once the jq thread's
//! stack is nearly used up, and `tojson` refuses values nested too deep to print on the stack.

use std::cell::Cell;

use jaq_core::box_iter::box_once;
use jaq_core::load::parse::{Def, Pattern, Term};
use jaq_core::load::{Arena, File, Lexer, Loader, Parser, lex::StrPart};
use jaq_core::native::{Filter as NativeFilter, bome, v};
use jaq_core::path::{Part, Path};
use jaq_core::{Bind, Compiler, DataT, Error, Exn, Native, PathsPtr, RunPtr, UpdatePtr, data};
use jaq_json::Val;

use super::values::too_deep;

/// The data the compiled filter runs with.
pub type Data = data::JustLut<Val>;
/// A compiled program.
pub type Filter = jaq_core::compile::Filter<Native<Data>>;

/// Stack size of the thread jq programs run on.
pub const STACK_BYTES: usize = 16 * 1024 * 1024;
/// Past this much stack in use, a guarded call fails instead of going deeper; the rest is room
/// for what runs between two guarded calls.
const STACK_LIMIT: usize = 12 * 1024 * 1024;
/// The name of the guard (not a name a jq program can write by accident).
const GUARD: &str = "__weir_guard";
/// The name the user's program is compiled under.
const MAIN: &str = "__weir_main";

thread_local! {
    /// The address of a local at the top of the jq thread's stack (0 on other threads).
    static STACK_TOP: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as the jq thread, its stack starting about here.
pub fn mark_stack_top() {
    let here = 0u8;
    STACK_TOP.with(|t| t.set(&here as *const u8 as usize));
}

fn stack_exhausted() -> bool {
    let here = 0u8;
    let top = STACK_TOP.with(Cell::get);
    top != 0 && top.saturating_sub(&here as *const u8 as usize) > STACK_LIMIT
}

fn guard_error<'a>() -> Exn<'a, Val> {
    Exn::from(Error::str(
        "jq recursion too deep for this record (bounded so that no record can crash Weir)",
    ))
}

/// `__weir_guard(f)`: runs `f` (for values, paths and updates) unless the stack is nearly used up.
fn guard<D: for<'a> DataT<V<'a> = Val>>() -> NativeFilter<Native<D>> {
    let run: RunPtr<D> = |mut cv| {
        let (f, fc) = cv.0.pop_fun();
        if stack_exhausted() {
            return box_once(Err(guard_error()));
        }
        f.run((fc, cv.1))
    };
    let paths: PathsPtr<D> = |mut cv| {
        let (f, fc) = cv.0.pop_fun();
        if stack_exhausted() {
            return box_once(Err(guard_error()));
        }
        f.paths((fc, cv.1))
    };
    let update: UpdatePtr<D> = |mut cv, upd| {
        let (f, fc) = cv.0.pop_fun();
        if stack_exhausted() {
            return box_once(Err(guard_error()));
        }
        f.update((fc, cv.1), upd)
    };
    (
        GUARD,
        [Bind::Fun(())].into(),
        Native::<D>::new(run).with_paths(paths).with_update(update),
    )
}

/// `tojson` that refuses values nested deeper than the output limit instead of recursing.
fn tojson<D: for<'a> DataT<V<'a> = Val>>() -> NativeFilter<Native<D>> {
    let run: RunPtr<D> = |cv| {
        if too_deep(&cv.1) {
            return bome(Err(Error::str(
                "tojson: the value nests too deep to be written as JSON",
            )));
        }
        bome(Ok(Val::utf8_str(cv.1.to_string())))
    };
    ("tojson", v(0), Native::<D>::new(run))
}

/// Wraps the body of every definition inside `t` in the guard.
fn guard_defs(t: &mut Term<&str>) {
    match t {
        Term::Def(defs, body) => {
            for d in defs.iter_mut() {
                guard_def(d);
            }
            guard_defs(body);
        }
        Term::Id | Term::Recurse | Term::Num(_) | Term::Break(_) | Term::Var(_) => {}
        Term::Str(_, parts) => {
            for p in parts {
                if let StrPart::Term(t) = p {
                    guard_defs(t);
                }
            }
        }
        Term::Arr(a) => {
            if let Some(a) = a {
                guard_defs(a);
            }
        }
        Term::Obj(entries) => {
            for (k, v) in entries {
                guard_defs(k);
                if let Some(v) = v {
                    guard_defs(v);
                }
            }
        }
        Term::Neg(a) | Term::Label(_, a) => guard_defs(a),
        Term::BinOp(a, _, b) => {
            guard_defs(a);
            guard_defs(b);
        }
        Term::Fold(_, xs, pattern, args) => {
            guard_defs(xs);
            guard_pattern(pattern);
            for a in args {
                guard_defs(a);
            }
        }
        Term::TryCatch(a, b) => {
            guard_defs(a);
            if let Some(b) = b {
                guard_defs(b);
            }
        }
        Term::IfThenElse(branches, otherwise) => {
            for (c, b) in branches {
                guard_defs(c);
                guard_defs(b);
            }
            if let Some(o) = otherwise {
                guard_defs(o);
            }
        }
        Term::Call(_, args) => {
            for a in args {
                guard_defs(a);
            }
        }
        Term::Path(a, path) => {
            guard_defs(a);
            guard_path(path);
        }
    }
}

fn guard_path(path: &mut Path<Term<&str>>) {
    for (part, _) in &mut path.0 {
        match part {
            Part::Index(i) => guard_defs(i),
            Part::Range(a, b) => {
                for t in [a, b].into_iter().flatten() {
                    guard_defs(t);
                }
            }
        }
    }
}

fn guard_pattern(p: &mut Pattern<&str>) {
    match p {
        Pattern::Var(_) => {}
        Pattern::Arr(items) => items.iter_mut().for_each(guard_pattern),
        Pattern::Obj(entries) => {
            for (k, v) in entries {
                guard_defs(k);
                guard_pattern(v);
            }
        }
    }
}

fn guard_def(d: &mut Def<&str>) {
    guard_defs(&mut d.body);
    let body = std::mem::take(&mut d.body);
    d.body = Term::Call(GUARD, vec![body]);
}

fn describe<T: std::fmt::Debug>(errs: &T) -> String {
    let s = format!("{errs:?}");
    match s.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

/// Compiles a program with every definition guarded; errors say what is wrong.
pub(crate) fn compile(code: &str) -> Result<Filter, String> {
    let tokens = Lexer::new(code)
        .lex()
        .map_err(|e| format!("jq program does not parse: {}", describe(&e)))?;
    let mut main: Term<&str> = Parser::new(&tokens)
        .parse(|p| p.term())
        .map_err(|e| format!("jq program does not parse: {}", describe(&e)))?;
    guard_defs(&mut main);
    let library = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
        .map(|mut d| {
            guard_def(&mut d);
            d
        });
    let prelude = library.chain(std::iter::once(Def {
        name: MAIN,
        args: Vec::new(),
        body: main,
    }));
    let natives = jaq_core::funs::<Data>()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, _, _)| *name != "tojson")
        .chain([guard::<Data>(), tojson::<Data>()]);
    let arena = Arena::default();
    let modules = Loader::new(prelude)
        .load(
            &arena,
            File {
                code: MAIN,
                path: (),
            },
        )
        .map_err(|errs| {
            format!(
                "jq program does not parse: {}",
                describe(&errs.into_iter().map(|(_, e)| e).collect::<Vec<_>>())
            )
        })?;
    Compiler::default()
        .with_funs(natives)
        .compile(modules)
        .map_err(|errs| {
            format!(
                "jq program does not compile: {}",
                describe(&errs.into_iter().map(|(_, e)| e).collect::<Vec<_>>())
            )
        })
}
