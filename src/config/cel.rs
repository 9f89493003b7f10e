//! A CEL expression of an http module (`fail_if_body_json_matches_cel`,
//! `fail_if_body_json_not_matches_cel`), compiled while the config loads so a bad one is a load
//! error with its line, as blackbox 0.27+ refuses it. The JSON body is bound to `body`.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// The only variable an expression may name, as in blackbox (`cel.Variable("body", DynType)`).
pub const CEL_BODY_VARIABLE: &str = "body";

/// Identifiers CEL itself defines: type names usable in `type(x) == int`.
const CEL_TYPE_NAMES: &[&str] = &[
    "bool",
    "bytes",
    "double",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// A compiled expression and its source. Shared by every probe of the module.
#[derive(Clone)]
pub struct CelExpression {
    source: String,
    program: Arc<cel::Program>,
}

impl CelExpression {
    /// Parses `source` and checks that it names no variable but `body`: blackbox's checker
    /// refuses an undeclared reference at load, and so do we.
    pub fn compile(source: &str) -> Result<Self, String> {
        let program = cel::Program::compile(source)
            .map_err(|e| format!("invalid CEL expression {source:?}: {}", one_line(&e)))?;
        let mut unknown = Vec::new();
        free_identifiers(program.expression(), &mut Vec::new(), &mut unknown);
        unknown.retain(|n| n != CEL_BODY_VARIABLE && !CEL_TYPE_NAMES.contains(&n.as_str()));
        if let Some(name) = unknown.first() {
            return Err(format!(
                "invalid CEL expression {source:?}: undeclared reference to {name:?} \
                 (the JSON body is `{CEL_BODY_VARIABLE}`)"
            ));
        }
        Ok(CelExpression {
            source: source.to_string(),
            program: Arc::new(program),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn program(&self) -> &Arc<cel::Program> {
        &self.program
    }
}

/// Identifiers that no enclosing comprehension (`all`, `exists`, `map`, …) binds.
fn free_identifiers(e: &IdedExpr, bound: &mut Vec<String>, out: &mut Vec<String>) {
    match &e.expr {
        Expr::Ident(name)
            if !name.starts_with('@') && !bound.contains(name) && !out.contains(name) =>
        {
            out.push(name.clone());
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                free_identifiers(target, bound, out);
            }
            for arg in &call.args {
                free_identifiers(arg, bound, out);
            }
        }
        Expr::Comprehension(c) => {
            free_identifiers(&c.iter_range, bound, out);
            free_identifiers(&c.accu_init, bound, out);
            let depth = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.iter().cloned());
            bound.push(c.accu_var.clone());
            for part in [&c.loop_cond, &c.loop_step, &c.result] {
                free_identifiers(part, bound, out);
            }
            bound.truncate(depth);
        }
        Expr::List(list) => {
            for item in &list.elements {
                free_identifiers(item, bound, out);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => free_identifiers(&f.value, bound, out),
                    EntryExpr::MapEntry(m) => {
                        free_identifiers(&m.key, bound, out);
                        free_identifiers(&m.value, bound, out);
                    }
                }
            }
        }
        Expr::Select(s) => free_identifiers(&s.operand, bound, out),
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let EntryExpr::StructField(f) = &entry.expr {
                    free_identifiers(&f.value, bound, out);
                }
            }
        }
        // Literals, and identifiers already seen or bound.
        _ => {}
    }
}

fn one_line(e: &impl fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Debug for CelExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl<'de> Deserialize<'de> for CelExpression {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        CelExpression::compile(&source).map_err(serde::de::Error::custom)
    }
}

impl Serialize for CelExpression {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_body_expressions_and_comprehensions() {
        for ok in [
            "body.status == 'ok'",
            "body.items.all(i, i.up)",
            "body.items.exists(x, x.name == 'a') && size(body.items) > 1",
            "type(body.n) == double",
            "has(body.ready) && body.ready",
        ] {
            CelExpression::compile(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn refuses_syntax_errors_and_unknown_variables() {
        let e = CelExpression::compile("body.status ==").unwrap_err();
        assert!(e.starts_with("invalid CEL expression"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = CelExpression::compile("foo.status == 'ok'").unwrap_err();
        assert!(e.contains("undeclared reference to \"foo\""), "{e}");
        // A comprehension variable is bound only inside its comprehension.
        let e = CelExpression::compile("body.items.all(i, i.up) && i.up").unwrap_err();
        assert!(e.contains("\"i\""), "{e}");
    }
}
