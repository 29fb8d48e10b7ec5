//! The SQLite sink's health check (`millstream check`): the database's directory can be
//! written (the sink creates the file and tables itself).

use std::path::Path;

use crate::config::SqliteConfig;

pub fn healthcheck(config: &SqliteConfig) -> Result<(), String> {
    let text = config.url.as_str();
    let path = text
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let parent = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::sinks::writable(parent)
}
