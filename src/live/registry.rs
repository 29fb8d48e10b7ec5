//! What is known about each device outside the data stream: its model (names and types of its
//! items, from the NC-Link probe), its NC-Link version, when it was first and last seen. Fed by
//! the source's events; read by the HTTP API.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::id::Id;
use crate::nclink::model::DeviceModel;

/// One device.
#[derive(Debug, Clone, Default)]
pub struct DeviceInfo {
    pub model: Option<Arc<DeviceModel>>,
    pub version: Option<String>,
    pub first_seen: i64,
    /// Receive time of its last message.
    pub last_seen: i64,
}

/// Every device seen.
#[derive(Debug, Default)]
pub struct Registry {
    devices: RwLock<BTreeMap<Id, DeviceInfo>>,
}

impl Registry {
    pub fn seen(&self, device: &Id, at: i64) {
        let mut devices = self.devices.write().expect("registry lock");
        let info = devices.entry(device.clone()).or_insert_with(|| DeviceInfo {
            first_seen: at,
            ..DeviceInfo::default()
        });
        info.last_seen = info.last_seen.max(at);
    }

    pub fn set_model(&self, device: &Id, model: Arc<DeviceModel>) {
        let mut devices = self.devices.write().expect("registry lock");
        devices.entry(device.clone()).or_default().model = Some(model);
    }

    pub fn set_version(&self, device: &Id, version: String) {
        let mut devices = self.devices.write().expect("registry lock");
        devices.entry(device.clone()).or_default().version = Some(version);
    }

    pub fn get(&self, device: &str) -> Option<DeviceInfo> {
        self.devices
            .read()
            .expect("registry lock")
            .get(device)
            .cloned()
    }

    pub fn all(&self) -> Vec<(Id, DeviceInfo)> {
        self.devices
            .read()
            .expect("registry lock")
            .iter()
            .map(|(d, i)| (d.clone(), i.clone()))
            .collect()
    }
}
