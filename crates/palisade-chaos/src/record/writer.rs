//! The writer thread: the request path hands finished drafts over a bounded channel and
//! never touches the file; a full channel drops the draft and counts it.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::record::draft::Draft;

pub(crate) enum Msg {
    Entry(Box<Draft>),
    Flush(oneshot::Sender<io::Result<()>>),
}

/// Counters shared by the recorder's services, its handle and its writer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sampled: AtomicU64,
    pub(crate) unsampled: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) write_errors: AtomicU64,
}

/// The sending end, shared by every service of one recorder.
#[derive(Debug)]
pub(crate) struct Sink {
    tx: mpsc::Sender<Msg>,
    pub(crate) counters: Arc<Counters>,
}

impl Sink {
    /// Starts the writer thread over `out` with room for `capacity` exchanges in flight.
    pub(crate) fn start(out: Box<dyn Write + Send>, capacity: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        std::thread::Builder::new()
            .name("palisade-record".into())
            .spawn(move || run(rx, io::BufWriter::new(out), &c))?;
        Ok(Self { tx, counters })
    }

    /// Hands a finished exchange to the writer without waiting; counts a drop when full.
    pub(crate) fn send(&self, draft: Box<Draft>) {
        if self.tx.try_send(Msg::Entry(draft)).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until everything sent before is written and flushed.
    pub(crate) async fn flush(&self) -> io::Result<()> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Flush(ack))
            .await
            .map_err(|_| io::Error::other("the recording's writer stopped"))?;
        done.await
            .map_err(|_| io::Error::other("the recording's writer stopped"))?
    }
}

fn run(mut rx: mpsc::Receiver<Msg>, mut out: io::BufWriter<Box<dyn Write + Send>>, c: &Counters) {
    let mut line = Vec::with_capacity(1024);
    let mut failed: Option<io::Error> = None;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Entry(draft) => {
                line.clear();
                let exchange = draft.into_exchange();
                let res = serde_json::to_writer(&mut line, &exchange)
                    .map_err(io::Error::from)
                    .and_then(|()| {
                        line.push(b'\n');
                        out.write_all(&line)
                    });
                match res {
                    Ok(()) => c.written.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failed.get_or_insert(e);
                        c.write_errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
                if rx.is_empty()
                    && let Err(e) = out.flush()
                {
                    failed.get_or_insert(e);
                }
            }
            Msg::Flush(ack) => {
                let res = match (failed.take(), out.flush()) {
                    (Some(e), _) | (None, Err(e)) => Err(e),
                    (None, Ok(())) => Ok(()),
                };
                let _ = ack.send(res);
            }
        }
    }
    let _ = out.flush();
}
