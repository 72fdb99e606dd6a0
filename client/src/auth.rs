//! Basic-auth credentials from a password file, as Prometheus'
//! `basic_auth.password_file`: the file is read again when it changes
//! (a rotated Kubernetes Secret), checked at most once a second.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use hyper::header::HeaderValue;
use parking_lot::Mutex;

use crate::ClientError;

/// How often the password file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// A user and the file holding its password (a trailing newline ignored).
#[derive(Debug)]
pub struct BasicAuth {
    user: String,
    file: PathBuf,
    current: Mutex<Current>,
}

#[derive(Debug)]
struct Current {
    header: HeaderValue,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl BasicAuth {
    /// Reads the password now; an unreadable file is an error naming it.
    pub fn new(user: &str, file: &Path) -> Result<BasicAuth, ClientError> {
        let (header, modified) = read(user, file)?;
        Ok(BasicAuth {
            user: user.to_string(),
            file: file.to_path_buf(),
            current: Mutex::new(Current {
                header,
                modified,
                checked: Instant::now(),
            }),
        })
    }

    /// The `Authorization` header value, re-reading the file when its
    /// modification time changed. A file that cannot be read now keeps the
    /// last password (the rotation is probably half-written).
    pub fn header(&self) -> HeaderValue {
        let mut c = self.current.lock();
        if c.checked.elapsed() >= RECHECK {
            c.checked = Instant::now();
            let modified = std::fs::metadata(&self.file)
                .and_then(|m| m.modified())
                .ok();
            if modified != c.modified
                && let Ok((header, modified)) = read(&self.user, &self.file)
            {
                c.header = header;
                c.modified = modified;
            }
        }
        c.header.clone()
    }
}

fn read(user: &str, file: &Path) -> Result<(HeaderValue, Option<SystemTime>), ClientError> {
    let err = |reason: String| ClientError::File {
        what: "password file",
        path: file.to_path_buf(),
        reason,
    };
    let modified = std::fs::metadata(file).and_then(|m| m.modified()).ok();
    let pw = std::fs::read_to_string(file).map_err(|e| err(e.to_string()))?;
    let token = base64::engine::general_purpose::STANDARD
        .encode(format!("{user}:{}", pw.trim_end_matches(['\r', '\n'])));
    let mut v = HeaderValue::from_str(&format!("Basic {token}"))
        .map_err(|_| err("the credentials are not a valid header".into()))?;
    v.set_sensitive(true);
    Ok((v, modified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rereads_the_password_file_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "first\n").unwrap();
        let auth = BasicAuth::new("tier", &f).unwrap();
        let basic = |pw: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("tier:{pw}"))
            )
        };
        assert_eq!(auth.header().to_str().unwrap(), basic("first"));
        std::fs::write(&f, "second").unwrap();
        // A modification time surely different from the first write's.
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(later)
            .unwrap();
        auth.current.lock().checked -= RECHECK;
        assert_eq!(auth.header().to_str().unwrap(), basic("second"));
        std::fs::remove_file(&f).unwrap();
        auth.current.lock().checked -= RECHECK;
        assert_eq!(
            auth.header().to_str().unwrap(),
            basic("second"),
            "a vanished file keeps the last password"
        );
    }

    #[test]
    fn a_missing_password_file_is_named() {
        let e = BasicAuth::new("u", Path::new("/nonexistent/pw")).unwrap_err();
        assert!(
            e.to_string().contains("password file /nonexistent/pw"),
            "{e}"
        );
    }
}
