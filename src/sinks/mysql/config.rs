//! The MySQL sink's configuration turned into connection options, and its health check
//! (`millstream check`: logs in without needing the database to exist yet).

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

use crate::config::MysqlConfig;

/// Connection options from the sink's `url` (`mysql://user@host:3306/db?ssl-mode=required`),
/// `username` and `password`. The password is remembered as a secret, so messages never show it.
pub fn connect_options(config: &MysqlConfig) -> Result<MySqlConnectOptions, String> {
    let url = config.url.as_str();
    let mut options = MySqlConnectOptions::from_str(url)
        .map_err(|e| format!("bad MySQL URL {:?}: {e}", redact(url)))?;
    if let Some(user) = &config.username {
        options = options.username(user);
    }
    if let Some(password) = &config.password {
        options = options.password(password.expose());
    }
    if options.get_database().is_none_or(str::is_empty) {
        return Err("name the database: mysql://user@host:3306/<database>".into());
    }
    // A TLS option given in the URL is kept; otherwise TLS is used when the server offers it.
    if !url.contains("ssl-mode") && !url.contains("sslmode") {
        options = options.ssl_mode(MySqlSslMode::Preferred);
    }
    Ok(options
        .charset("utf8mb4")
        .timezone(Some("+00:00".into()))
        // Batches are 1,000-row statements: logging them (or warning that they are "slow")
        // would flood the log.
        .disable_statement_logging())
}

fn redact(url: &str) -> String {
    crate::config::redact_secrets(url)
}

/// Logs in (checks user and password) within `timeout`; the sink creates the database itself.
pub async fn healthcheck(config: &MysqlConfig, timeout: Duration) -> Result<(), String> {
    let options = connect_options(config)?;
    let attempt = async {
        use sqlx::{ConnectOptions, Connection};
        let connection = options.database("").connect().await?;
        connection.close().await
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(crate::config::redact_secrets(&format!(
            "cannot log in to MySQL: {e}"
        ))),
        Err(_) => Err(format!("MySQL: no answer within {} s", timeout.as_secs())),
    }
}
