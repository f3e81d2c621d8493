//! Instance-wide concurrency limits on router calls: one pool for the instance and one
//! per region, so a slow region cannot take every slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Limits {
    instance: Arc<Semaphore>,
    per_region: u32,
    regions: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// The job's, the region's and the instance's permits for one router call.
pub struct CallPermits {
    _job: OwnedSemaphorePermit,
    _instance: OwnedSemaphorePermit,
    _region: OwnedSemaphorePermit,
}

impl Limits {
    pub fn new(instance: u32, per_region: u32) -> Limits {
        Limits {
            instance: Arc::new(Semaphore::new(instance as usize)),
            per_region,
            regions: Mutex::new(HashMap::new()),
        }
    }

    fn region(&self, region: &str) -> Arc<Semaphore> {
        let mut map = self.regions.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(region.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_region as usize)))
            .clone()
    }

    /// Waits for a job slot, a region slot, then an instance slot (narrowest first, so
    /// a saturated job or region never holds instance slots while it waits).
    pub async fn acquire(&self, job: &Arc<Semaphore>, region: &str) -> Option<CallPermits> {
        let job = job.clone().acquire_owned().await.ok()?;
        let region = self.region(region).acquire_owned().await.ok()?;
        let instance = self.instance.clone().acquire_owned().await.ok()?;
        Some(CallPermits {
            _job: job,
            _instance: instance,
            _region: region,
        })
    }

    pub fn instance_available(&self) -> usize {
        self.instance.available_permits()
    }
}
