//! What the end-to-end load benchmarks share: the sinks of a pipeline named by a comma list,
//! and the bare subscriber the engine's receive rate is compared with.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// `[[sinks]]` sections for the sinks `sinks` names: `sqlite` (file `sqlite`), `parquet`
/// (directory `lake`), `mysql` (the machine's MariaDB, database `database`), `edge` (InfluxDB
/// on 8086, database `database`) and `cloud` (InfluxDB on 8087 with
/// `MILLSTREAM_TEST_INFLUX_CLOUD_USER`/`_PASSWORD`, windows only).
pub fn sink_sections(sinks: &str, sqlite: &str, lake: &str, database: &str) -> String {
    let mut text = String::new();
    if sinks.contains("sqlite") {
        text +=
            &format!("[[sinks]]\nname = \"sql\"\nkind = \"sqlite\"\nurl = \"sqlite://{sqlite}\"\n");
    }
    if sinks.contains("parquet") {
        text += &format!("[[sinks]]\nname = \"lake\"\nkind = \"parquet\"\ndir = \"{lake}\"\n");
    }
    if sinks.contains("mysql") {
        text += &format!(
            "[[sinks]]\nname = \"mysql\"\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/ms_{database}\"\n"
        );
    }
    if sinks.contains("edge") {
        text += &format!(
            "[[sinks]]\nname = \"edge\"\nkind = \"influx\"\nurl = \"http://127.0.0.1:8086\"\ndatabase = \"{database}\"\n"
        );
    }
    if sinks.contains("cloud") {
        let user =
            std::env::var("MILLSTREAM_TEST_INFLUX_CLOUD_USER").unwrap_or("millstream".into());
        let password = std::env::var("MILLSTREAM_TEST_INFLUX_CLOUD_PASSWORD")
            .unwrap_or("millstream-test".into());
        text += &format!(
            "[[sinks]]\nname = \"cloud\"\nkind = \"influx\"\nurl = \"http://127.0.0.1:8087\"\ndatabase = \"{database}\"\nusername = \"{user}\"\npassword = \"{password}\"\nstreams = [\"windows\"]\n"
        );
    }
    text
}

/// A rumqttc client counting every Sample message on the local broker, as the engine would
/// receive it; the count, and the client (to disconnect).
pub async fn bare_subscriber(client_id: &str) -> (AsyncClient, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let mut options = MqttOptions::new(client_id, "127.0.0.1", 1883);
    options.set_max_packet_size(64 << 20, 64 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    client
        .subscribe("Sample/+/+", QoS::AtLeastOnce)
        .await
        .unwrap();
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(_)) = event {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (client, count)
}
