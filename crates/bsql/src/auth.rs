//! Roles and passwords: `CREATE ROLE/USER ... [LOGIN] PASSWORD`, `ALTER ROLE/USER ...
//! PASSWORD`, `DROP ROLE/USER`, and the check `--bsql_enable_auth` makes at login
//! (SCRAM-SHA-256, in `server.rs`). A role is stored in `system_bsql.roles` as a SCRAM
//! verifier (salt, iteration count, salted password), never the password itself. Until a
//! role `yugabyte` is stored, it logs in with the password `yugabyte`, as in YugabyteDB.

use std::borrow::Cow;

use datafusion::sql::sqlparser::ast::{self, Statement};
use serde::{Deserialize, Serialize};

use crate::error::{SqlError, SqlResult};
use crate::session::{Output, Session};

/// The role that exists before any is created, and its password.
pub const DEFAULT_ROLE: &str = "yugabyte";
const DEFAULT_PASSWORD: &str = "yugabyte";
/// PBKDF2 iterations of stored verifiers (PostgreSQL's `scram_iterations` default).
pub const ITERATIONS: usize = 4096;

/// A stored role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleDef {
    pub name: String,
    pub login: bool,
    pub superuser: bool,
    /// SCRAM salt and salted password; empty: no password (cannot log in with one).
    pub salt: Vec<u8>,
    pub salted: Vec<u8>,
}

impl RoleDef {
    /// The role `yugabyte` before it is stored.
    pub fn default_role() -> RoleDef {
        let salt = b"aisql-default-role".to_vec();
        RoleDef {
            name: DEFAULT_ROLE.into(),
            login: true,
            superuser: true,
            salted: salted(DEFAULT_PASSWORD, &salt),
            salt,
        }
    }

    fn set_password(&mut self, password: Option<&str>) {
        match password {
            Some(p) => {
                self.salt = random_salt();
                self.salted = salted(p, &self.salt);
            }
            None => {
                self.salt.clear();
                self.salted.clear();
            }
        }
    }
}

fn salted(password: &str, salt: &[u8]) -> Vec<u8> {
    pgwire::api::auth::sasl::scram::gen_salted_password(password, salt, ITERATIONS)
}

fn random_salt() -> Vec<u8> {
    let mut salt = pgwire::api::auth::sasl::scram::random_nonce().into_bytes();
    salt.truncate(16);
    salt
}

/// `CREATE USER` and `ALTER USER` as `CREATE ROLE` / `ALTER ROLE` (the parser reads USER
/// another dialect's way); the flag says it was CREATE USER, whose default is LOGIN.
pub fn user_as_role(sql: &str) -> (Cow<'_, str>, bool) {
    let start = sql.len() - sql.trim_start().len();
    let mut words = sql[start..].split_whitespace();
    let (Some(first), Some(second)) = (words.next(), words.next()) else {
        return (Cow::Borrowed(sql), false);
    };
    let create = first.eq_ignore_ascii_case("create");
    if !(create || first.eq_ignore_ascii_case("alter")) || !second.eq_ignore_ascii_case("user") {
        return (Cow::Borrowed(sql), false);
    }
    let Some(at) = sql[start + first.len()..].find(second) else {
        return (Cow::Borrowed(sql), false);
    };
    let at = start + first.len() + at;
    let mut out = String::with_capacity(sql.len());
    out.push_str(&sql[..at]);
    out.push_str("ROLE");
    out.push_str(&sql[at + second.len()..]);
    (Cow::Owned(out), create)
}

fn password_text(p: &ast::Password) -> SqlResult<Option<String>> {
    match p {
        ast::Password::NullPassword => Ok(None),
        ast::Password::Password(ast::Expr::Value(v)) => match &v.value {
            ast::Value::SingleQuotedString(s) => Ok(Some(s.clone())),
            other => Err(SqlError::syntax(format!("invalid password {other}"))),
        },
        ast::Password::Password(other) => {
            Err(SqlError::syntax(format!("invalid password {other}")))
        }
    }
}

fn role_name(n: &ast::ObjectName) -> SqlResult<String> {
    let (_, name) = crate::ddl::table_name(n)?;
    Ok(name)
}

/// Run a role statement, or `None` if `stmt` is not one.
pub async fn execute(s: &Session, stmt: &Statement) -> Option<SqlResult<Output>> {
    Some(match stmt {
        Statement::CreateRole(c) => create(s, c).await,
        Statement::AlterRole { name, operation } => alter(s, name, operation).await,
        Statement::Drop {
            object_type: ast::ObjectType::Role | ast::ObjectType::User,
            if_exists,
            names,
            ..
        } => drop(s, names, *if_exists).await,
        _ => return None,
    })
}

async fn create(s: &Session, c: &ast::CreateRole) -> SqlResult<Output> {
    for n in &c.names {
        let name = role_name(n)?;
        let mut role = RoleDef {
            name: name.clone(),
            login: c.login.unwrap_or(false),
            superuser: c.superuser.unwrap_or(false),
            salt: Vec::new(),
            salted: Vec::new(),
        };
        if let Some(p) = &c.password {
            role.set_password(password_text(p)?.as_deref());
        }
        let taken = name == DEFAULT_ROLE || s.catalog.role(&name).await?.is_some();
        if taken || !s.catalog.put_role(&role, false).await? {
            if c.if_not_exists {
                continue;
            }
            return Err(SqlError::new(
                "42710",
                format!("role \"{name}\" already exists"),
            ));
        }
    }
    Ok(Output::tag("CREATE ROLE"))
}

async fn alter(s: &Session, name: &ast::Ident, op: &ast::AlterRoleOperation) -> SqlResult<Output> {
    let name = crate::ddl::ident(name);
    let mut role = match s.catalog.role(&name).await? {
        Some(r) => r,
        None if name == DEFAULT_ROLE => RoleDef::default_role(),
        None => {
            return Err(SqlError::new(
                "42704",
                format!("role \"{name}\" does not exist"),
            ))
        }
    };
    let ast::AlterRoleOperation::WithOptions { options } = op else {
        return Err(SqlError::unsupported(format!("ALTER ROLE {op}")));
    };
    for o in options {
        match o {
            ast::RoleOption::Password(p) => role.set_password(password_text(p)?.as_deref()),
            ast::RoleOption::Login(b) => role.login = *b,
            ast::RoleOption::SuperUser(b) => role.superuser = *b,
            _ => {} // accepted, not enforced (as the other privileges)
        }
    }
    s.catalog.put_role(&role, true).await?;
    Ok(Output::tag("ALTER ROLE"))
}

async fn drop(s: &Session, names: &[ast::ObjectName], if_exists: bool) -> SqlResult<Output> {
    for n in names {
        let name = role_name(n)?;
        if name == s.user {
            return Err(SqlError::new(
                "55006",
                "current user cannot be dropped".to_owned(),
            ));
        }
        if !s.catalog.drop_role(&name).await? && !if_exists {
            return Err(SqlError::new(
                "42704",
                format!("role \"{name}\" does not exist"),
            ));
        }
    }
    Ok(Output::tag("DROP ROLE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_user_reads_as_create_role() {
        let (sql, user) = user_as_role("  create user bob with password 'x'");
        assert_eq!(
            (sql.as_ref(), user),
            ("  create ROLE bob with password 'x'", true)
        );
        let (sql, user) = user_as_role("ALTER USER bob PASSWORD 'y'");
        assert_eq!((sql.as_ref(), user), ("ALTER ROLE bob PASSWORD 'y'", false));
        let (sql, user) = user_as_role("select user");
        assert_eq!((sql.as_ref(), user), ("select user", false));
    }
}
