//! The parquet sink's health check (`millstream check`): files can be created in the lake's
//! directory (or where it would be created).

use crate::config::ParquetConfig;

pub fn healthcheck(config: &ParquetConfig) -> Result<(), String> {
    crate::sinks::writable(&config.dir)
}
