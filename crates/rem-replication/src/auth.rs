//! Authentication of every RPC: a token the server requires on each request.
//!
//! A server always has a token. When none is configured (`P8_SERVER_TOKEN`, or the
//! older `P8_REPLICATION_TOKEN`), [`server_token`] creates a random one in the file
//! `<database>/TOKEN`, readable by its owner only (mode 0600), and reuses it on later
//! starts; local clients read that file ([`read_token_file`]). [`Auth`] checks the
//! token in an interceptor, before the request reaches a service, comparing in
//! constant time.

use std::io::Write;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

use crate::{Error, Result};

/// Metadata key carrying the token.
pub const TOKEN_HEADER: &str = "x-rem-token";

/// Name of the token file inside the database directory.
pub const TOKEN_FILE: &str = "TOKEN";

/// Path of the token file of the database at `db`.
pub fn token_path(db: &Path) -> PathBuf {
    db.join(TOKEN_FILE)
}

/// The token of a server for the database at `db`: `configured` when given, else the
/// token file's (created with a new random token when missing).
pub fn server_token(db: &Path, configured: Option<&str>) -> Result<String> {
    if let Some(t) = configured.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(t.to_string());
    }
    let path = token_path(db);
    if let Some(t) = read_token_file(db)? {
        restrict(&path)?;
        return Ok(t);
    }
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw)
        .map_err(|e| Error::Internal(format!("cannot make a random token: {e}")))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    // Written beside, then renamed: the file appears whole, with its mode already set.
    let tmp = db.join(format!(".{TOKEN_FILE}.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("cannot write the token file {}", path.display()), e)
    })?;
    Ok(token)
}

/// The token in the token file of the database at `db`, if there is one.
pub fn read_token_file(db: &Path) -> Result<Option<String>> {
    let path = token_path(db);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(
            format!("cannot read the token file {}", path.display()),
            e,
        )),
    }
}

/// Makes `path` readable by its owner only.
fn restrict(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io(format!("cannot restrict {}", path.display()), e))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The interceptor that admits only requests carrying the server's token.
#[derive(Clone)]
pub struct Auth {
    token: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(..)")
    }
}

impl Auth {
    /// Admits requests carrying `token` (which must not be empty).
    pub fn new(token: &str) -> Result<Auth> {
        if token.trim().is_empty() {
            return Err(Error::Unauthenticated("the server token is empty".into()));
        }
        Ok(Auth {
            token: token.trim().as_bytes().into(),
        })
    }

    /// Checks the token of a request.
    pub fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let given = req.metadata().get(TOKEN_HEADER).map(|v| v.as_bytes());
        match given {
            Some(given) if bool::from(given.ct_eq(&self.token)) => Ok(()),
            Some(_) => {
                tracing::warn!("refused a request with a wrong token");
                Err(Status::unauthenticated(
                    "wrong token (the server's token is in its database folder's TOKEN file, or P8_SERVER_TOKEN)",
                ))
            }
            None => {
                tracing::warn!("refused a request without a token");
                Err(Status::unauthenticated(
                    "this server requires a token; set P8_SERVER_TOKEN (its value is in the served database folder's TOKEN file)",
                ))
            }
        }
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.check(&req)?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_token_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = server_token(dir.path(), None).unwrap();
        assert_eq!(a.len(), 64);
        let b = server_token(dir.path(), None).unwrap();
        assert_eq!(a, b, "the token is reused");
        assert_eq!(
            read_token_file(dir.path()).unwrap().as_deref(),
            Some(a.as_str())
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(token_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(server_token(dir.path(), Some(" given ")).unwrap(), "given");
    }

    #[test]
    fn requests_need_the_exact_token() {
        let auth = Auth::new("s3cret").unwrap();
        let with = |t: Option<&str>| {
            let mut r = Request::new(());
            if let Some(t) = t {
                r.metadata_mut().insert(TOKEN_HEADER, t.parse().unwrap());
            }
            auth.check(&r).map_err(|s| s.code())
        };
        assert_eq!(with(Some("s3cret")), Ok(()));
        assert_eq!(with(Some("s3cre")), Err(tonic::Code::Unauthenticated));
        assert_eq!(with(Some("s3cretx")), Err(tonic::Code::Unauthenticated));
        assert_eq!(with(None), Err(tonic::Code::Unauthenticated));
        assert!(Auth::new("  ").is_err());
    }
}
