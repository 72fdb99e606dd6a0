//! Basic authentication against `basic_auth_users` (bcrypt hashes), and the
//! middleware that enforces it and adds `http_server_config.headers`.
//!
//! bcrypt is slow on purpose (tens to hundreds of milliseconds at the usual
//! costs), so it runs on the blocking pool, and a verified
//! (user, password, hash) triple is remembered in a small cache keyed by a
//! salted SHA-256 digest (no password is kept): a remote-write queue with
//! 50 shards pays one bcrypt per credential, not one per request. Failures
//! are never cached, so each guess costs the guesser a bcrypt. An unknown
//! user is checked against a dummy hash of the same cost, so the answer
//! takes as long as for a known user with a wrong password.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use ring::digest;

use super::{Access, Permissions, WebHandle};
use crate::metrics::METRICS;

/// Verified credentials remembered at most; the cache is emptied when full
/// (and on every reload of the web config).
const CACHE_ENTRIES: usize = 1024;

/// The cache of verified credentials.
pub(crate) struct AuthCache {
    salt: [u8; 32],
    ok: Mutex<HashSet<[u8; 32]>>,
}

impl AuthCache {
    pub(crate) fn new() -> AuthCache {
        use ring::rand::SecureRandom;
        let mut salt = [0u8; 32];
        // Without randomness the salt stays zero: the cache still works,
        // its keys are just unsalted digests.
        let _ = ring::rand::SystemRandom::new().fill(&mut salt);
        AuthCache {
            salt,
            ok: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn clear(&self) {
        self.ok.lock().clear();
    }

    fn key(&self, user: &str, password: &str, hash: &str) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for part in [
            &self.salt[..],
            user.as_bytes(),
            password.as_bytes(),
            hash.as_bytes(),
        ] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// Does `password` match the hash of `user`? `dummy` is the hash an
    /// unknown user is checked against.
    async fn verify(&self, hash: Option<&str>, dummy: &str, user: &str, password: &str) -> bool {
        let key = hash.map(|h| self.key(user, password, h));
        if key.is_some_and(|k| self.ok.lock().contains(&k)) {
            return true;
        }
        let against = hash.unwrap_or(dummy).to_string();
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &against).unwrap_or(false))
            .await
            .unwrap_or(false);
        match key {
            Some(k) if ok => {
                let mut set = self.ok.lock();
                if set.len() >= CACHE_ENTRIES {
                    set.clear();
                }
                set.insert(k);
                true
            }
            _ => false,
        }
    }
}

/// User and password of a `Basic` Authorization header.
fn basic_credentials(v: &HeaderValue) -> Option<(String, String)> {
    use base64::Engine as _;
    let s = v.to_str().ok()?;
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?,
    )
    .ok()?;
    let (u, p) = raw.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Counts and logs a refused request (`reason` is the
/// `tessera_http_refused_total` label) and answers it: 403 for
/// `forbidden`, else 401 with the basic-auth challenge.
fn refuse(reason: &str, path: &str, user: &str, why: &str) -> Response {
    METRICS.web_refused.inc(&[reason]);
    tracing::info!(path, user, "{why}");
    if reason == "forbidden" {
        (
            StatusCode::FORBIDDEN,
            format!("user {user:?} may not make this request (--web.writers, --web.readers)\n"),
        )
            .into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic")],
            "Unauthorized\n",
        )
            .into_response()
    }
}

/// What the middleware needs: the web config in force and the
/// permission flags.
#[derive(Clone)]
pub(crate) struct Guard {
    pub web: Arc<WebHandle>,
    pub perms: Permissions,
}

/// Middleware: checks credentials where the web config and
/// `--web.auth-required` ask for them (401) and the user's permission
/// (`--web.writers`, `--web.readers`: 403), then adds the configured
/// headers.
pub(crate) async fn enforce(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let web = guard.web.current();
    let access = Access::of(req.uri().path());
    let needed = !web.config.users.is_empty() && guard.perms.required.covers(access);
    let mut resp = if !needed {
        next.run(req).await
    } else {
        let path = req.uri().path().to_string();
        match req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(basic_credentials)
        {
            None => refuse(
                "no_credentials",
                &path,
                "",
                "401: no basic-auth credentials",
            ),
            Some((user, pw)) => {
                let hash = web.config.users.get(&user).map(String::as_str);
                let verified = guard
                    .web
                    .cache
                    .verify(hash, &web.dummy_hash, &user, &pw)
                    .await;
                if !verified {
                    refuse(
                        "bad_credentials",
                        &path,
                        &user,
                        "401: unknown user or wrong password",
                    )
                } else if !guard.perms.allows(&user, access) {
                    refuse(
                        "forbidden",
                        &path,
                        &user,
                        "403: user not in --web.writers / --web.readers",
                    )
                } else {
                    next.run(req).await
                }
            }
        }
    };
    for (name, value) in &web.config.headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_basic_credentials() {
        let v = HeaderValue::from_static("Basic YWxpY2U6czNjcjN0Onc=");
        assert_eq!(
            basic_credentials(&v),
            Some(("alice".into(), "s3cr3t:w".into()))
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer x")),
            None
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Basic !!")),
            None
        );
    }

    #[tokio::test]
    async fn caches_successes_only() {
        let cache = AuthCache::new();
        let hash = bcrypt::hash("pw", 4).unwrap();
        assert!(cache.verify(Some(&hash), &hash, "a", "pw").await);
        assert_eq!(cache.ok.lock().len(), 1);
        assert!(cache.verify(Some(&hash), &hash, "a", "pw").await);
        assert!(!cache.verify(Some(&hash), &hash, "a", "wrong").await);
        // An unknown user never passes, even with the dummy's password.
        assert!(!cache.verify(None, &hash, "b", "pw").await);
        assert_eq!(cache.ok.lock().len(), 1);
    }
}
