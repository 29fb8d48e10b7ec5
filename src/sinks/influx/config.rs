//! The InfluxDB sink's health check (`millstream check`): the server answers and, for 1.x,
//! the user may write (or create) the database; for 2.x, the token may write the bucket.

use std::time::Duration;

use super::InfluxWriter;
use crate::config::{InfluxConfig, redact_secrets};

pub async fn healthcheck(config: &InfluxConfig, timeout: Duration) -> Result<(), String> {
    let writer = InfluxWriter::from_config(config)?;
    match tokio::time::timeout(timeout, writer.check()).await {
        Ok(result) => result.map_err(|e| redact_secrets(&e)),
        Err(_) => Err(format!(
            "InfluxDB: no answer within {} s",
            timeout.as_secs()
        )),
    }
}
