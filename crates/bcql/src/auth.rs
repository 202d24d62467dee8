//! Roles and password authentication (`PasswordAuthenticator`, on with
//! `--use_cassandra_authentication`).
//!
//! Roles live in the meta table `system_bcql.roles`: role name → JSON [`RoleDef`]. Passwords
//! are kept as salted PBKDF2-HMAC-SHA256 hashes, never in clear. When authentication is on
//! and no role exists yet, the superuser `cassandra` (password `cassandra`) is created, as
//! Cassandra does. Role statements need a superuser when authentication is on; anyone may
//! change their own password.

use std::sync::Arc;

use client::Table;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::OnceCell;

use crate::error::{code, CqlError, Result};
use crate::exec::{ColSpec, Outcome, Rows};
use crate::parser::{RoleOpts, RoleStmt};
use crate::schema::Catalog;
use crate::types::{self, CqlType, Value};

/// The class name drivers see in AUTHENTICATE.
pub const AUTHENTICATOR: &str = "org.apache.cassandra.auth.PasswordAuthenticator";
/// The role created when authentication is on and no role exists.
const DEFAULT_ROLE: &str = "cassandra";
/// PBKDF2 rounds per password check.
const ROUNDS: u32 = 4096;

/// A stored role.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct RoleDef {
    name: String,
    /// `pbkdf2-sha256$rounds$salt$hash` (hex); `None` without a password.
    salted_hash: Option<String>,
    login: bool,
    superuser: bool,
}

/// Authentication state shared by a server's connections.
pub struct Auth {
    /// Whether clients must log in.
    pub enabled: bool,
    roles: OnceCell<Arc<Table>>,
}

impl Auth {
    pub fn new(enabled: bool) -> Self {
        Auth {
            enabled,
            roles: OnceCell::new(),
        }
    }

    async fn table(&self, catalog: &Catalog) -> Result<&Arc<Table>> {
        self.roles
            .get_or_try_init(|| async {
                let t = catalog.meta_table("roles").await?;
                if self.enabled && catalog.client.scan_all(&t).await?.is_empty() {
                    let def = RoleDef {
                        name: DEFAULT_ROLE.into(),
                        salted_hash: Some(hash_password(DEFAULT_ROLE)),
                        login: true,
                        superuser: true,
                    };
                    put(catalog, &t, &def, true).await?;
                }
                Ok::<_, CqlError>(t)
            })
            .await
    }

    async fn get(&self, catalog: &Catalog, name: &str) -> Result<Option<RoleDef>> {
        let t = self.table(catalog).await?;
        Ok(catalog
            .client
            .get(t, name.as_bytes())
            .await?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Check a SASL PLAIN token (`authzid \0 user \0 password`); the user on success.
    pub async fn login(&self, catalog: &Catalog, token: &[u8]) -> Result<String> {
        let parts: Vec<&[u8]> = token.split(|b| *b == 0).collect();
        let (user, pass) = match parts.as_slice() {
            [_, user, pass] | [user, pass] => (
                String::from_utf8_lossy(user).into_owned(),
                String::from_utf8_lossy(pass).into_owned(),
            ),
            _ => {
                return Err(CqlError::new(
                    code::BAD_CREDENTIALS,
                    "Authentication failed: malformed PLAIN token",
                ))
            }
        };
        let bad = || {
            CqlError::new(
                code::BAD_CREDENTIALS,
                format!("Provided username {user} and/or password are incorrect"),
            )
        };
        let role = self.get(catalog, &user).await?.ok_or_else(bad)?;
        let ok = role
            .salted_hash
            .as_deref()
            .is_some_and(|h| verify_password(&pass, h));
        if !ok {
            return Err(bad());
        }
        if !role.login {
            return Err(CqlError::new(
                code::BAD_CREDENTIALS,
                format!("{user} is not permitted to log in"),
            ));
        }
        Ok(user)
    }

    /// Run a role statement for `user` (the logged-in role; `None` without authentication).
    pub async fn execute(
        &self,
        catalog: &Catalog,
        stmt: &RoleStmt,
        user: Option<&str>,
    ) -> Result<Outcome> {
        let t = self.table(catalog).await?.clone();
        let superuser = match user {
            Some(u) if self.enabled => self.get(catalog, u).await?.is_some_and(|r| r.superuser),
            _ => true,
        };
        let denied = || {
            CqlError::new(
                code::UNAUTHORIZED,
                format!(
                    "User {} does not have sufficient privileges to perform the requested operation",
                    user.unwrap_or("anonymous")
                ),
            )
        };
        match stmt {
            RoleStmt::Create {
                name,
                if_not_exists,
                opts,
            } => {
                if !superuser {
                    return Err(denied());
                }
                let def = RoleDef {
                    name: name.clone(),
                    salted_hash: opts.password.as_deref().map(hash_password),
                    login: opts.login.unwrap_or(false),
                    superuser: opts.superuser.unwrap_or(false),
                };
                if !put(catalog, &t, &def, true).await? && !if_not_exists {
                    return Err(CqlError::invalid(format!("{name} already exists")));
                }
                Ok(Outcome::Void)
            }
            RoleStmt::Alter { name, opts } => {
                let own_password =
                    user == Some(name.as_str()) && opts.login.is_none() && opts.superuser.is_none();
                if !superuser && !own_password {
                    return Err(denied());
                }
                if user == Some(name.as_str()) && opts.superuser.is_some() {
                    return Err(CqlError::new(
                        code::UNAUTHORIZED,
                        "You aren't allowed to alter your own superuser status",
                    ));
                }
                let mut def = self
                    .get(catalog, name)
                    .await?
                    .ok_or_else(|| CqlError::invalid(format!("{name} doesn't exist")))?;
                apply(&mut def, opts);
                put(catalog, &t, &def, false).await?;
                Ok(Outcome::Void)
            }
            RoleStmt::Drop { name, if_exists } => {
                if !superuser {
                    return Err(denied());
                }
                if self.enabled && user == Some(name.as_str()) {
                    return Err(CqlError::invalid(
                        "Cannot DROP primary role for current login",
                    ));
                }
                if self.get(catalog, name).await?.is_none() {
                    if *if_exists {
                        return Ok(Outcome::Void);
                    }
                    return Err(CqlError::invalid(format!("{name} doesn't exist")));
                }
                catalog.client.delete(&t, name.as_bytes()).await?;
                Ok(Outcome::Void)
            }
            RoleStmt::List { users } => {
                let mut roles: Vec<RoleDef> = catalog
                    .client
                    .scan_all(&t)
                    .await?
                    .into_iter()
                    .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
                    .collect();
                roles.sort_by(|a, b| a.name.cmp(&b.name));
                if *users {
                    roles.retain(|r| r.login);
                }
                let col = |name: &str, ty: CqlType| ColSpec {
                    ks: "system_auth".into(),
                    table: "roles".into(),
                    name: name.into(),
                    ty,
                };
                let enc = |ty: &CqlType, v: Value| types::encode(ty, &v).map(Some);
                let mut rows = Vec::new();
                let cols = if *users {
                    for r in &roles {
                        rows.push(vec![
                            enc(&CqlType::Text, Value::Text(r.name.clone()))?,
                            enc(&CqlType::Boolean, Value::Bool(r.superuser))?,
                        ]);
                    }
                    vec![col("name", CqlType::Text), col("super", CqlType::Boolean)]
                } else {
                    let opts = CqlType::Map(Box::new(CqlType::Text), Box::new(CqlType::Text));
                    for r in &roles {
                        rows.push(vec![
                            enc(&CqlType::Text, Value::Text(r.name.clone()))?,
                            enc(&CqlType::Boolean, Value::Bool(r.superuser))?,
                            enc(&CqlType::Boolean, Value::Bool(r.login))?,
                            enc(&opts, Value::Map(Vec::new()))?,
                        ]);
                    }
                    vec![
                        col("role", CqlType::Text),
                        col("super", CqlType::Boolean),
                        col("login", CqlType::Boolean),
                        col("options", opts),
                    ]
                };
                Ok(Outcome::Rows(Rows {
                    cols,
                    rows,
                    paging_state: None,
                }))
            }
        }
    }
}

fn apply(def: &mut RoleDef, o: &RoleOpts) {
    if let Some(p) = &o.password {
        def.salted_hash = Some(hash_password(p));
    }
    if let Some(l) = o.login {
        def.login = l;
    }
    if let Some(s) = o.superuser {
        def.superuser = s;
    }
}

/// Store `def`; with `if_absent`, only if no role has its name (false if one had).
async fn put(catalog: &Catalog, t: &Table, def: &RoleDef, if_absent: bool) -> Result<bool> {
    catalog
        .put_meta_row(t, def.name.as_bytes(), def, if_absent)
        .await
}

fn pbkdf2(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 32] {
    let mac = || Hmac::<Sha256>::new_from_slice(password).expect("HMAC takes any key length");
    let mut m = mac();
    m.update(salt);
    m.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = m.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..rounds {
        let mut m = mac();
        m.update(&u);
        u = m.finalize().into_bytes().into();
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hash_password(password: &str) -> String {
    let salt = *uuid::Uuid::new_v4().as_bytes();
    let h = pbkdf2(password.as_bytes(), &salt, ROUNDS);
    format!("pbkdf2-sha256${ROUNDS}${}${}", hex(&salt), hex(&h))
}

fn verify_password(password: &str, stored: &str) -> bool {
    let mut it = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(rounds), Some(salt), Some(hash), None) =
        (it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return false;
    };
    let (Ok(rounds), Some(salt), Some(hash)) = (rounds.parse::<u32>(), unhex(salt), unhex(hash))
    else {
        return false;
    };
    if rounds == 0 || rounds > 1_000_000 {
        return false;
    }
    let got = pbkdf2(password.as_bytes(), &salt, rounds);
    // Constant time: compare every byte.
    got.len() == hash.len() && got.iter().zip(&hash).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_rfc_7914_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1.
        assert_eq!(
            hex(&pbkdf2(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("secret");
        assert!(verify_password("secret", &h));
        assert!(!verify_password("Secret", &h));
        assert!(!verify_password("secret", "garbage"));
        assert_ne!(h, hash_password("secret"), "salted");
    }
}
