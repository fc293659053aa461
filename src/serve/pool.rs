//! The store threads: a few threads, each with its own connection to the
//! store (a `Store` stays on the thread that opened it), that run the
//! requests' store work. SQLite calls block — a write waits up to the busy
//! timeout while a run commits — and must not stall the event loop.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::store::Store;

/// Connections: WAL lets readers go side by side, and writes are one at a
/// time however many there are.
const CONNECTIONS: usize = 4;

type Job = Box<dyn FnOnce(&Store) + Send>;

pub struct Pool {
    jobs: mpsc::Sender<Job>,
}

impl Pool {
    /// Starts the threads, each opening its connection (the first brings
    /// the schema up to date): a store that cannot be opened fails here.
    /// They end when the pool is dropped.
    pub fn open(config: &crate::config::Config) -> Result<Arc<Pool>> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..CONNECTIONS {
            let (opened, ready) = mpsc::sync_channel(1);
            let (config, queue) = (config.clone(), Arc::clone(&queue));
            std::thread::Builder::new()
                .name(format!("store-{index}"))
                .spawn(move || {
                    let store = match Store::open_configured(&config) {
                        Ok(store) => {
                            let _ = opened.send(Ok(()));
                            store
                        }
                        Err(error) => {
                            let _ = opened.send(Err(error));
                            return;
                        }
                    };
                    // The lock is held while waiting for a job, not while
                    // doing it.
                    while let Ok(job) = queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .recv()
                    {
                        // A job that panics drops its answer (the request
                        // gets a 500); the thread goes on.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&store)));
                    }
                })
                .map_err(|source| Error::io("a store thread", source))?;
            ready
                .recv()
                .map_err(|_| Error::io("a store thread", std::io::Error::other("it died")))??;
        }
        Ok(Arc::new(Pool { jobs }))
    }

    /// Runs `work` on a store thread and waits for its answer.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            let _ = answer.send(work(store));
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::io("the store threads", std::io::Error::other("they are gone")))?;
        answered.await.unwrap_or_else(|_| {
            Err(Error::io(
                "a store thread",
                std::io::Error::other("it panicked"),
            ))
        })
    }
}
