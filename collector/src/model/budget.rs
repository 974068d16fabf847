//! A pipeline's item budget: how much telemetry it may hold at once.
//!
//! A receiver takes a [`Ticket`] for the items of a request before acknowledging it; the
//! ticket travels with the data through the batch processor and the exporters and returns
//! its items to the budget when the last exporter is done with them. When the budget is
//! spent, [`ItemBudget::try_admit`] fails at once and the receiver answers
//! `UNAVAILABLE` / 503: memory stays bounded and nothing acknowledged is ever dropped to make
//! room.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::memory::ByteClaim;

#[derive(Clone)]
pub struct ItemBudget {
    semaphore: Arc<Semaphore>,
    capacity: usize,
    held: Gauge,
    /// Woken whenever a ticket gives items back, so a flush can wait for the pipeline to
    /// empty without polling.
    released: Arc<Notify>,
    /// Items of the last request refused as [`AdmitError::Full`], 0 once one is admitted:
    /// see [`ItemBudget::refuses_now`].
    last_refused: Arc<AtomicUsize>,
}

/// Why a request could not be admitted.
#[derive(Debug, PartialEq, Eq)]
pub enum AdmitError {
    /// The pipeline is full right now; the sender should retry later.
    Full,
    /// The request alone holds more items than the pipeline ever may.
    TooLarge { items: usize, capacity: usize },
}

impl ItemBudget {
    pub fn new(capacity: usize, held: Gauge, capacity_gauge: Gauge) -> ItemBudget {
        capacity_gauge.set(capacity as i64);
        ItemBudget {
            semaphore: Arc::new(Semaphore::new(capacity)),
            capacity,
            held,
            released: Arc::new(Notify::new()),
            last_refused: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Whether a request is sure to be refused as [`AdmitError::Full`] before its size is
    /// known: the last request was refused and its items still do not fit. Lets a receiver
    /// answer 503 before reading and decoding a body, so that under overload refusing
    /// costs almost nothing and the core goes to the data already admitted. Once the
    /// pipeline frees room for that request, bodies are read again.
    pub fn refuses_now(&self) -> bool {
        let wanted = self.last_refused.load(Ordering::Relaxed);
        wanted > 0 && self.semaphore.available_permits() < wanted
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items held right now.
    pub fn held(&self) -> usize {
        self.capacity - self.semaphore.available_permits()
    }

    /// Resolves once nothing is held: every item admitted so far has been exported (or
    /// accounted for as failed). Items admitted while waiting are waited for too.
    pub async fn wait_empty(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a release between the check and the await
            // still wakes this waiter.
            released.as_mut().enable();
            if self.held() == 0 {
                return;
            }
            released.await;
        }
    }

    pub fn try_admit(&self, items: usize) -> Result<Ticket, AdmitError> {
        if items > self.capacity {
            return Err(AdmitError::TooLarge {
                items,
                capacity: self.capacity,
            });
        }
        let n = u32::try_from(items).map_err(|_| AdmitError::TooLarge {
            items,
            capacity: self.capacity,
        })?;
        match self.semaphore.clone().try_acquire_many_owned(n) {
            Ok(permit) => {
                self.last_refused.store(0, Ordering::Relaxed);
                self.held.inc_by(items as i64);
                Ok(Ticket {
                    permit: Some(permit),
                    held: self.held.clone(),
                    settle: Vec::new(),
                    bytes: None,
                    released: self.released.clone(),
                })
            }
            Err(TryAcquireError::NoPermits) | Err(TryAcquireError::Closed) => {
                self.last_refused.store(items, Ordering::Relaxed);
                Err(AdmitError::Full)
            }
        }
    }
}

/// Items of one batch, counted against the pipeline's budget until dropped.
#[derive(Debug)]
pub struct Ticket {
    permit: Option<OwnedSemaphorePermit>,
    held: Gauge,
    /// Senders waiting for these items to be settled (written to an exporter's queue on
    /// disk, exported, or dropped with a reason): each request's sender closes when the
    /// last ticket holding it is dropped, which is what its receiver waits for before
    /// acknowledging (see `Consumer::try_consume_durable` in `component`).
    settle: Vec<Arc<Waiter>>,
    /// The items' bytes, when the pipeline has a memory limit.
    bytes: Option<ByteClaim>,
    released: Arc<Notify>,
}

/// Why items admitted to a pipeline could not be kept: the queue on disk refused them.
/// The cause is the queue's typed error (this layer does not know the queue), shared by
/// every request whose items were in the refused batch.
#[derive(Debug, Clone, thiserror::Error)]
#[error("queue storage: {0}")]
pub struct NotKept(pub Arc<dyn std::error::Error + Send + Sync>);

/// Two refusals are the same when they have the same cause, or causes that say the same.
impl PartialEq for NotKept {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for NotKept {}

/// One request's side of [`Ticket::watch`], held by every ticket with items of it.
#[derive(Debug)]
struct Waiter {
    /// Never sent: dropped with the last ticket holding the request, which is the signal.
    done: tokio::sync::oneshot::Sender<()>,
    refused: Arc<OnceLock<NotKept>>,
}

/// What the receiver of a request waits on: the request's items are settled.
#[derive(Debug)]
pub struct SettleWatch {
    done: tokio::sync::oneshot::Receiver<()>,
    refused: Arc<OnceLock<NotKept>>,
}

impl SettleWatch {
    /// Resolves once every part of the request is settled; `Err` when a part could not
    /// be kept (see [`Ticket::refuse`]), so the request must not be acknowledged.
    pub async fn wait(self) -> Result<(), NotKept> {
        let _ = self.done.await;
        match self.refused.get() {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }
}

impl Ticket {
    pub fn items(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }

    /// Lets the request whose items these are be waited for until they are settled.
    pub fn watch(&mut self) -> SettleWatch {
        let (done, rx) = tokio::sync::oneshot::channel();
        let refused = Arc::new(OnceLock::new());
        self.settle.push(Arc::new(Waiter {
            done,
            refused: refused.clone(),
        }));
        SettleWatch { done: rx, refused }
    }

    /// Tells the senders waiting for these items that they could not be kept (the queue on
    /// disk failed): each is answered with a retryable error instead of an acknowledgement
    /// and still owns its data. Done only when every request with items here has a sender
    /// still waiting, since a sender that is not waiting cannot be told; returns whether it
    /// was done. The items of a refused request are then not this pipeline's to deliver.
    pub fn refuse(&self, reason: &NotKept) -> bool {
        let all_waiting =
            !self.settle.is_empty() && self.settle.iter().all(|w| !w.done.is_closed());
        if all_waiting {
            for w in &self.settle {
                let _ = w.refused.set(reason.clone());
            }
        }
        all_waiting
    }

    /// Counts the items' bytes against the pipeline's memory limit too.
    pub fn claim_bytes(&mut self, claim: ByteClaim) {
        match &mut self.bytes {
            Some(mine) => mine.merge(claim),
            None => self.bytes = Some(claim),
        }
    }

    /// Joins another ticket of the same budget into this one.
    pub fn merge(&mut self, mut other: Ticket) {
        self.settle.append(&mut other.settle);
        if let Some(claim) = other.bytes.take() {
            self.claim_bytes(claim);
        }
        match (&mut self.permit, other.permit.take()) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
    }

    /// Splits off a ticket for `n` of this ticket's items (all of them if it holds fewer).
    pub fn split(&mut self, n: usize) -> Ticket {
        let n = n.min(self.items());
        // Bytes go with the items, in proportion (a batch's items are of similar size).
        let total = self.items();
        let bytes = match &mut self.bytes {
            Some(claim) if n == total => Some(claim.split(claim.bytes())),
            Some(claim) => Some(claim.split(claim.bytes() * n / total.max(1))),
            None => None,
        };
        let permit = if n == self.items() {
            self.permit.take()
        } else {
            self.permit.as_mut().and_then(|p| p.split(n))
        };
        Ticket {
            permit,
            held: self.held.clone(),
            // Both parts hold the waiters: a request is settled when all of it is.
            settle: self.settle.clone(),
            bytes,
            released: self.released.clone(),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let n = self.items();
        if n > 0 {
            self.held.dec_by(n as i64);
            // The permits go back before waiters look at `held()`.
            drop(self.permit.take());
            self.released.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(capacity: usize) -> (ItemBudget, Gauge) {
        let held = Gauge::default();
        (
            ItemBudget::new(capacity, held.clone(), Gauge::default()),
            held,
        )
    }

    #[test]
    fn admits_until_full_and_releases_on_drop() {
        let (b, held) = budget(10);
        let t1 = b.try_admit(6).unwrap();
        assert_eq!(b.try_admit(5).unwrap_err(), AdmitError::Full);
        let t2 = b.try_admit(4).unwrap();
        assert_eq!(held.get(), 10);
        drop(t1);
        assert_eq!(b.held(), 4);
        assert_eq!(held.get(), 4);
        drop(t2);
        assert_eq!(held.get(), 0);
    }

    #[test]
    fn refuses_without_reading_until_the_last_refused_request_fits() {
        let (b, _) = budget(10);
        assert!(!b.refuses_now(), "nothing refused yet");
        let held = b.try_admit(6).unwrap();
        assert!(!b.refuses_now());
        assert_eq!(b.try_admit(5).unwrap_err(), AdmitError::Full);
        assert!(b.refuses_now(), "5 items still do not fit in the 4 free");
        drop(held);
        assert!(!b.refuses_now(), "room for the refused request again");
        let _small = b.try_admit(1).unwrap();
        assert!(!b.refuses_now(), "an admission clears the refusal");
    }

    #[test]
    fn oversize_request_is_too_large_not_full() {
        let (b, _) = budget(10);
        assert_eq!(
            b.try_admit(11).unwrap_err(),
            AdmitError::TooLarge {
                items: 11,
                capacity: 10
            }
        );
    }

    #[tokio::test]
    async fn waiters_are_released_when_every_part_is_dropped() {
        let (b, _) = budget(10);
        let mut t = b.try_admit(4).unwrap();
        let watch = t.watch();
        let part = t.split(2);
        let mut other = b.try_admit(1).unwrap();
        other.merge(part);
        drop(t);
        let waiting = tokio::spawn(watch.wait());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "part of the request is still held");
        drop(other);
        assert_eq!(waiting.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_refused_part_refuses_the_whole_request_once_it_is_settled() {
        let (b, _) = budget(10);
        let mut t = b.try_admit(4).unwrap();
        let watch = t.watch();
        let part = t.split(2);
        let full = NotKept(Arc::new(std::io::Error::other("disk full")));
        assert!(part.refuse(&full));
        drop(part);
        let waiting = tokio::spawn(watch.wait());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the other part is still held");
        drop(t);
        let refused = waiting.await.unwrap().unwrap_err();
        assert!(Arc::ptr_eq(&refused.0, &full.0), "the cause itself");
        assert_eq!(refused.to_string(), "queue storage: disk full");
    }

    #[test]
    fn nothing_is_refused_when_a_sender_no_longer_waits() {
        let (b, _) = budget(10);
        let mut t = b.try_admit(2).unwrap();
        let waiting = t.watch();
        let mut other = b.try_admit(1).unwrap();
        drop(other.watch());
        t.merge(other);
        let full = NotKept(Arc::new(std::io::Error::other("disk full")));
        assert!(!t.refuse(&full), "one request's sender is gone");
        assert!(waiting.refused.get().is_none());
        let untracked = b.try_admit(1).unwrap();
        assert!(!untracked.refuse(&full), "nobody waits for it");
    }

    #[test]
    fn merge_and_split_move_items_between_tickets() {
        let (b, held) = budget(10);
        let mut t = b.try_admit(3).unwrap();
        t.merge(b.try_admit(4).unwrap());
        assert_eq!(t.items(), 7);
        let part = t.split(5);
        assert_eq!((part.items(), t.items()), (5, 2));
        let rest = t.split(9);
        assert_eq!((rest.items(), t.items()), (2, 0));
        drop(part);
        assert_eq!(held.get(), 2);
        drop(rest);
        drop(t);
        assert_eq!((held.get(), b.held()), (0, 0));
    }

    #[tokio::test]
    async fn wait_empty_resolves_when_the_last_ticket_is_dropped() {
        let (b, _) = budget(10);
        b.wait_empty().await;
        let t1 = b.try_admit(3).unwrap();
        let t2 = b.try_admit(2).unwrap();
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.wait_empty().await }
        });
        tokio::task::yield_now().await;
        drop(t1);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "2 items are still held");
        drop(t2);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken by the release")
            .unwrap();
    }
}
