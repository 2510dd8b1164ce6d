//! [`ReadBody`]: reads a body to its end, or to just past a size limit, for the layers that
//! must see a request body before sending it (retry replay, idempotency fingerprints,
//! shadow copies) or a response before storing it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Body;
use pin_project_lite::pin_project;

use super::ReplayBody;

pin_project! {
    /// A future reading a body to its end, or to just past `limit` bytes.
    ///
    /// It resolves to [`Read::Complete`] (every byte and the trailers) or [`Read::Over`]
    /// (what was read, more than the limit, with the rest of the body still unread in the
    /// reader: [`into_replay`](Self::into_replay) or [`into_inner`](Self::into_inner)
    /// continues it). A body of one chunk is not copied; several chunks are gathered into
    /// one buffer.
    ///
    /// Polling it once with a no-op waker reads a body whose frames are already there
    /// (`Full`, `Empty`, a collected body) without waiting; a body still streaming is
    /// `Pending`, and the reader can be kept and polled again later.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
    /// use palisade_core::body::{Read, ReadBody};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut reader = std::pin::pin!(ReadBody::new(Full::new(Bytes::from("hello")), 64));
    /// match reader.as_mut().await.unwrap() {
    ///     Read::Complete { data, trailers } => assert_eq!((&data[..], trailers), (&b"hello"[..], None)),
    ///     Read::Over { .. } => unreachable!(),
    /// }
    ///
    /// // Over the limit: what was read, then the rest.
    /// let mut reader = ReadBody::new(Full::new(Bytes::from("hello")), 2);
    /// let read = (&mut reader).await.unwrap();
    /// assert!(matches!(read, Read::Over { .. }));
    /// let body = reader.into_replay(read);
    /// assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
    /// # }
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct ReadBody<B> {
        #[pin]
        body: B,
        collected: Collected,
        trailers: Option<HeaderMap>,
        limit: usize,
        done: bool,
    }
}

/// What [`ReadBody`] read.
#[derive(Debug)]
pub enum Read {
    /// The whole body, within the limit, and its trailers.
    Complete {
        /// Every data frame, in one buffer.
        data: Bytes,
        /// The trailers, if the body had any.
        trailers: Option<HeaderMap>,
    },
    /// More than the limit: the bytes read so far (the limit and at most one chunk more).
    /// The rest is still in the reader.
    Over {
        /// What was read.
        prefix: Bytes,
    },
}

impl<B> ReadBody<B> {
    /// Reads `body` up to `limit` bytes.
    pub fn new(body: B, limit: usize) -> Self {
        Self {
            body,
            collected: Collected::Empty,
            trailers: None,
            limit,
            done: false,
        }
    }

    /// The body, with what was read of it gone (after [`Read::Over`], the unread rest).
    pub fn into_inner(self) -> B {
        self.body
    }

    /// The body to send on after `read`: the buffered copy (with its trailers), or, past
    /// the limit, what was read followed by the rest.
    pub fn into_replay(self, read: Read) -> ReplayBody<B> {
        match read {
            Read::Complete { data, trailers } => ReplayBody::with_trailers(data, trailers),
            Read::Over { prefix } => ReplayBody::prefixed(prefix, self.body),
        }
    }
}

impl<B> fmt::Debug for ReadBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadBody")
            .field("read", &self.collected.len())
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<B: Body<Data = Bytes>> Future for ReadBody<B> {
    type Output = Result<Read, B::Error>;

    /// # Panics
    /// If polled again after it resolved.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        assert!(!*this.done, "ReadBody polled after it resolved");
        loop {
            let Some(frame) = std::task::ready!(this.body.as_mut().poll_frame(cx)) else {
                break;
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => {
                    *this.done = true;
                    return Poll::Ready(Err(e));
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    let over = this.collected.len().saturating_add(data.len()) > *this.limit;
                    this.collected.push(data);
                    if over {
                        *this.done = true;
                        let prefix = this.collected.finish();
                        return Poll::Ready(Ok(Read::Over { prefix }));
                    }
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        *this.trailers = Some(t);
                    }
                }
            }
        }
        *this.done = true;
        Poll::Ready(Ok(Read::Complete {
            data: this.collected.finish(),
            trailers: this.trailers.take(),
        }))
    }
}

/// Data frames read so far: none, one (kept as is), or several (gathered).
enum Collected {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Collected {
    fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::One(b) => b.len(),
            Self::Many(b) => b.len(),
        }
    }

    fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        *self = match std::mem::replace(self, Self::Empty) {
            Self::Empty => Self::One(data),
            Self::One(first) => {
                let mut buf = BytesMut::with_capacity(first.len() + data.len());
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&data);
                Self::Many(buf)
            }
            Self::Many(mut buf) => {
                buf.extend_from_slice(&data);
                Self::Many(buf)
            }
        };
    }

    fn finish(&mut self) -> Bytes {
        match std::mem::replace(self, Self::Empty) {
            Self::Empty => Bytes::new(),
            Self::One(b) => b,
            Self::Many(b) => b.freeze(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Frame;
    use http_body_util::{BodyExt, Empty, Full};

    /// A body yielding the given frames, each ready at once.
    struct Chunks(std::collections::VecDeque<Frame<Bytes>>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn chunks(parts: &[&'static str], trailer: bool) -> Chunks {
        let mut frames: std::collections::VecDeque<_> = parts
            .iter()
            .map(|p| Frame::data(Bytes::from_static(p.as_bytes())))
            .collect();
        if trailer {
            let mut t = HeaderMap::new();
            t.insert("x-sum", "1".parse().unwrap());
            frames.push_back(Frame::trailers(t));
        }
        Chunks(frames)
    }

    #[tokio::test]
    async fn reads_within_and_past_the_limit() {
        let read = ReadBody::new(Empty::<Bytes>::new(), 0).await.unwrap();
        assert!(matches!(read, Read::Complete { ref data, trailers: None } if data.is_empty()));

        // One chunk: the same buffer, not a copy.
        let chunk = Bytes::from_static(b"abc");
        let ptr = chunk.as_ptr();
        let Read::Complete { data, .. } = ReadBody::new(Full::new(chunk), 3).await.unwrap() else {
            panic!("within the limit");
        };
        assert_eq!(data.as_ptr(), ptr);

        // Several chunks and trailers.
        let Read::Complete { data, trailers } = ReadBody::new(chunks(&["ab", "", "cd"], true), 4)
            .await
            .unwrap()
        else {
            panic!("within the limit");
        };
        assert_eq!(
            (&data[..], trailers.unwrap()["x-sum"].as_bytes()),
            (&b"abcd"[..], &b"1"[..])
        );

        // Past the limit: the prefix, then the rest.
        let mut reader = ReadBody::new(chunks(&["ab", "cd", "ef"], true), 3);
        let read = (&mut reader).await.unwrap();
        let Read::Over { prefix } = &read else {
            panic!("over the limit");
        };
        assert_eq!(&prefix[..], b"abcd");
        let body = reader.into_replay(read).collect().await.unwrap();
        assert_eq!(body.trailers().unwrap()["x-sum"], "1");
        assert_eq!(body.to_bytes(), "abcdef");
    }

    #[tokio::test]
    #[should_panic(expected = "polled after it resolved")]
    async fn polled_twice_panics() {
        let mut reader = ReadBody::new(Empty::<Bytes>::new(), 0);
        let _ = (&mut reader).await;
        let _ = (&mut reader).await;
    }
}
