//! Request bodies with a read deadline, and response bodies that mark the request done.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use crate::registry::Busy;
use crate::stats::{ConnectionStats, Deadline};

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// The client did not send the whole body in time.
    TimedOut(Duration),
    /// The connection failed while reading.
    Read(hyper::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TimedOut(limit) => write!(
                f,
                "request body not received within the body timeout ({} ms)",
                limit.as_millis()
            ),
            BodyError::Read(e) => write!(f, "cannot read the request body: {e}"),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::TimedOut(_) => None,
            BodyError::Read(e) => Some(e),
        }
    }
}

/// A request's body: the whole of it must arrive within the body timeout, counted from the
/// first time the handler has to wait for it. A stalled body ends with
/// [`BodyError::TimedOut`], so the handler answers and the connection's slot is freed.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    limit: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
    stats: Arc<ConnectionStats>,
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming, limit: Duration, stats: Arc<ConnectionStats>) -> Self {
        Self {
            inner,
            limit,
            deadline: None,
            timed_out: false,
            stats,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(Some(Err(BodyError::TimedOut(this.limit))));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::Read)));
        }
        let limit = this.limit;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if deadline.as_mut().poll(cx).is_ready() {
            this.timed_out = true;
            this.stats.time_out(Deadline::Body);
            return Poll::Ready(Some(Err(BodyError::TimedOut(limit))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        !self.timed_out && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body; the request counts as in flight until it is sent or dropped.
pub struct ResponseBody<B> {
    inner: Pin<Box<B>>,
    _busy: Busy,
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, busy: Busy) -> Self {
        Self {
            inner: Box::pin(inner),
            _busy: busy,
        }
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.inner.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
