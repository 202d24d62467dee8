//! Command-line helpers shared by every binary.
//!
//! Flags are gflags-style long options with underscores (`--webserver_port 10000` or
//! `--webserver_port=10000`). [`expand_flagfile`] inlines `--flagfile=PATH` arguments (one
//! `--flag=value` per line, `#` comments) before clap parses the command line.

use std::net::SocketAddr;

/// Errors from flag helpers.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("--flagfile {path}: {source}")]
    Flagfile {
        path: String,
        source: std::io::Error,
    },
    #[error("--flagfile needs a path")]
    FlagfileMissingPath,
}

/// Replace every `--flagfile PATH` / `--flagfile=PATH` in `args` (the first element is the
/// program name) with the lines of that file. Lines are trimmed; blank lines and lines
/// starting with `#` are skipped.
pub fn expand_flagfile(args: Vec<String>) -> Result<Vec<String>, FlagError> {
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let path = if a == "--flagfile" || a == "-flagfile" {
            Some(it.next().ok_or(FlagError::FlagfileMissingPath)?)
        } else {
            a.strip_prefix("--flagfile=")
                .or_else(|| a.strip_prefix("-flagfile="))
                .map(str::to_owned)
        };
        match path {
            Some(path) => {
                let text =
                    std::fs::read_to_string(&path).map_err(|source| FlagError::Flagfile {
                        path: path.clone(),
                        source,
                    })?;
                for line in text.lines() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    out.push(line.to_owned());
                }
            }
            None => out.push(a),
        }
    }
    Ok(out)
}

/// Parse a comma-separated list of `host:port` addresses (for clap `value_parser`).
pub fn parse_addr_list(s: &str) -> Result<Vec<String>, String> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        parse_host_port(part)?;
        v.push(part.to_owned());
    }
    if v.is_empty() {
        return Err("expected at least one host:port".into());
    }
    Ok(v)
}

/// Check that `s` looks like `host:port` with a valid port number.
pub fn parse_host_port(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not host:port"))?;
    if host.is_empty() {
        return Err(format!("'{s}' has an empty host"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("'{s}' has an invalid port '{port}'"))?;
    Ok(s.to_owned())
}

/// Resolve `host:port` to a socket address (first match).
pub fn resolve(s: &str) -> std::io::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("cannot resolve {s}"),
        )
    })
}

/// The port of a `host:port` string, if it has one.
pub fn port_of(s: &str) -> Option<u16> {
    s.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flagfile_is_inlined() {
        let dir = std::env::temp_dir().join(format!("aisql-flagfile-{}", std::process::id()));
        std::fs::write(
            &dir,
            "# comment\n--webserver_port=1234\n\n--fs_data_dirs=/x\n",
        )
        .unwrap();
        let args = vec![
            "prog".to_string(),
            format!("--flagfile={}", dir.display()),
            "--replication_factor=3".into(),
        ];
        let out = expand_flagfile(args).unwrap();
        assert_eq!(
            out,
            vec![
                "prog",
                "--webserver_port=1234",
                "--fs_data_dirs=/x",
                "--replication_factor=3"
            ]
        );
        std::fs::remove_file(dir).ok();
    }

    #[test]
    fn addr_lists() {
        assert_eq!(parse_addr_list("a:1,b:2").unwrap(), vec!["a:1", "b:2"]);
        assert!(parse_addr_list("a").is_err());
        assert!(parse_addr_list("a:99999").is_err());
    }
}
