//! Shared test helpers: PostgreSQL fixtures with a schema of their own.

#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "postgres")]
pub use pg::*;

#[cfg(feature = "postgres")]
mod pg {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::Arc;

    use palisade_workflow::pg::{Schema, migrate};
    use tokio_postgres::{Client, NoTls};

    /// The server tests use.
    pub fn database_url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
    }

    /// A connection whose driver task runs on the current runtime.
    pub async fn connect() -> Result<Arc<Client>, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(&database_url(), NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Arc::new(client))
    }

    /// A migrated schema `palisade_wf_<random>`, dropped when the fixture is dropped.
    pub struct PgFixture {
        pub client: Arc<Client>,
        pub schema: Schema,
    }

    impl PgFixture {
        /// `None` (with a printed reason) when no server answers outside CI.
        pub async fn new() -> Option<Self> {
            let client = match connect().await {
                Ok(c) => c,
                Err(e) => {
                    assert!(
                        std::env::var("CI").as_deref() != Ok("true"),
                        "PostgreSQL at {} is required under CI: {e}",
                        database_url()
                    );
                    eprintln!("skipping: no PostgreSQL at {}: {e}", database_url());
                    return None;
                }
            };
            let n = RandomState::new().hash_one(std::time::SystemTime::now());
            let schema = Schema::new(&format!("palisade_wf_{n:016x}")).unwrap();
            migrate(&client, &schema).await.unwrap();
            Some(Self { client, schema })
        }
    }

    impl Drop for PgFixture {
        fn drop(&mut self) {
            let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
            // Drop runs outside any runtime's async context: clean up on a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Ok(c) = connect().await {
                        let _ = c.batch_execute(&sql).await;
                    }
                });
            })
            .join();
        }
    }
}
